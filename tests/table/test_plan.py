"""The plan of a table request, checked as data without training: what it trains, skips, reuses
and refuses, and in which order; the request it is made from."""
import os.path as osp
from dataclasses import FrozenInstanceError, replace

import pytest

from mmdet_imbalance.table import results
from mmdet_imbalance.table.plan import plan_runs, requested_settings
from mmdet_imbalance.table.rows import get_row
from mmdet_imbalance.testing import fake_work_dir, table_request


def test_the_plan_skips_reuses_refuses_and_trains(tmp_path):
    request = table_request(tmp_path, rows='retinanet,ap-loss,dr-loss', seeds=2,
                            reuse_results=True)
    retina, ap_loss, dr_loss = (get_row(k) for k in ('retinanet', 'ap-loss', 'dr-loss'))
    # retinanet seed 0 finished in the work dir with the requested settings: skipped.
    fake_work_dir(request.run_dir(retina, 0), requested_settings(request, retina, 0), ap=30.0)
    # ap-loss seed 0 is in the results tree with the requested settings: reused.
    published = str(tmp_path / 'published')
    fake_work_dir(published, requested_settings(request, ap_loss, 0), ap=33.0)
    results.export_run(published, results.run_dir(request.results, 'mini', 'shapes', 0,
                                                   'ap-loss'))
    # dr-loss seed 1's work dir holds a run of another seed: a conflict.
    fake_work_dir(request.run_dir(dr_loss, 1), requested_settings(request, dr_loss, 0), ap=1.0)
    plan = plan_runs(request, list(request.rows))
    assert [(s, r.key) for s, r, _ in plan.skipped] == [(0, 'retinanet')]
    assert [(s, r.key) for s, r, _ in plan.reused] == [(0, 'ap-loss')]
    assert len(plan.conflicts) == 1 and 'seed: 0 -> 1' in plan.conflicts[0]
    # Every row of seed 0 before seed 1, in the request's order.
    assert [(s, r.key) for s, r in plan.train] == [(0, 'dr-loss'), (1, 'retinanet'),
                                                   (1, 'ap-loss')]


def test_without_reuse_the_tree_is_not_read_and_force_retrains(tmp_path):
    request = table_request(tmp_path, rows='retinanet')
    retina = get_row('retinanet')
    fake_work_dir(request.run_dir(retina, 0), requested_settings(request, retina, 0), ap=30.0)
    assert not plan_runs(request, [retina]).train
    forced = plan_runs(replace(request, force=True), [retina])
    assert [(s, r.key) for s, r in forced.train] == [(0, 'retinanet')]
    assert not osp.exists(request.run_dir(retina, 0))


def test_the_request_is_frozen_and_carries_the_seed_as_an_int(tmp_path):
    request = table_request(tmp_path, rows='retinanet', max_iters=5,
                            cfg_options=['optim_wrapper.optimizer.lr=0.5'])
    with pytest.raises(FrozenInstanceError):
        request.seeds = 3
    settings = requested_settings(request, get_row('retinanet'), 2)
    assert settings['seed'] == 2 and settings['max_iters'] == 5
    assert request.run_dir(get_row('retinanet'), 2).endswith(
        osp.join('mini-shapes', 'seed2', 'retinanet_mini'))
    with pytest.raises(ValueError, match='resolve it first'):
        table_request(tmp_path, precision='auto')
    with pytest.raises(ValueError, match='lr: each option must be key=value'):
        table_request(tmp_path, cfg_options=['lr'])

"""The committed results tree: export of a run, the table rebuilt from the tree alone, seeds that
accumulate, and records of other settings that are left out instead of mixed in."""
import json
import os
import os.path as osp

import pytest

from mmdet_imbalance.engine.run_record import RunRecord, read_record
from mmdet_imbalance.table import plan, results, runs
from mmdet_imbalance.testing import fake_work_dir, table_request
from mmdet_imbalance.table.rows import get_row

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def request(tmp_path, **kwargs):
    """A table request of this file's defaults (:func:`mmdet_imbalance.testing.table_request`)."""
    return table_request(tmp_path, **dict(dict(precision='bf16', from_results=True, rows='retinanet,ap-loss'), **kwargs))


def fake_run(work_dir, settings, ap, seconds=0.2, **kwargs):
    return fake_work_dir(str(work_dir), settings, ap, seconds, **kwargs)


def test_export_copies_the_record_config_eval_lines_and_curve(tmp_path):
    work = tmp_path / 'run'
    fake_run(work, dict(seed=0, precision='bf16'), ap=30.0)
    dest = results.run_dir(str(tmp_path / 'results'), 'mini', 'shapes', 0, 'retinanet')
    results.export_run(str(work), dest)
    assert sorted(os.listdir(dest)) == ['config.py', 'eval.log', 'run.json', 'scalars.json']
    copied = read_record(osp.join(dest, 'run.json'))
    assert copied.ap == pytest.approx(30.0) and copied.work_dir is None
    assert copied.settings['seed'] == 0
    assert open(osp.join(dest, 'eval.log')).read().splitlines() == [
        'bbox_mAP_copypaste: 0.300 0.500',
        'Iter(val) [2/2]    coco/bbox_mAP: 0.3000  imbalance/ap: 30.0000']
    unfinished = tmp_path / 'unfinished'
    RunRecord(status='running').write(str(unfinished))
    with pytest.raises(ValueError, match='no finished run'):
        results.export_run(str(unfinished), str(tmp_path / 'x'))


def test_table_from_the_results_tree_alone(tmp_path):
    args = request(tmp_path)
    aps = {('retinanet', 0): 30.0, ('ap-loss', 0): 33.0, ('retinanet', 1): 31.0,
           ('ap-loss', 1): 35.0}

    def add(key, seed, settings, ap, seconds):
        work = tmp_path / 'runs' / f'{key}-{seed}'
        fake_run(work, settings, ap, seconds)
        results.export_run(str(work), results.run_dir(args.results, 'mini', 'shapes', seed, key))

    for (key, seed), ap in aps.items():
        add(key, seed, plan.requested_settings(args, get_row(key), seed), ap,
            seconds=0.2 if key == 'retinanet' else 0.3)
    # A record of another recipe: never mixed into the table.
    stale = dict(plan.requested_settings(args, get_row('ap-loss'), 2), recipe_version=1)
    add('ap-loss', 2, stale, 99.0, 0.3)
    paths, failures = runs.run_table(args)
    assert not failures
    table = {r['key']: r for r in json.load(open(paths['json']))['rows']}
    # Both seeds of the tree count (seeds accumulate), the stale seed-2 record does not.
    assert table['retinanet']['seeds'] == 2 and table['ap-loss']['seeds'] == 2
    assert table['ap-loss']['ap_mean'] == pytest.approx(34.0)
    assert table['ap-loss']['delta_ap_mean'] == pytest.approx(3.5)  # paired: +3, +4
    assert table['ap-loss']['speed_ratio_mean'] == pytest.approx(1.5)
    md = open(paths['md']).read()
    assert 'recipe v' in md and 'Precision: bf16' in md and 'test CPU' in md
    assert 'Seeds per row: 0-1 (retinanet, ap-loss)' in md


def test_an_empty_tree_is_an_error_naming_where_it_looked(tmp_path):
    with pytest.raises(SystemExit, match='no run record .*mini-shapes'):
        runs.run_table(request(tmp_path))


def test_reuse_results_trains_only_the_seeds_the_tree_lacks(tmp_path, monkeypatch):
    """--reuse-results: seed 0 in the tree (same settings) is not trained again, seed 1 is; a tree
    record of other settings is never reused; the table holds both seeds and the tree's seed-0
    record is left as it was."""
    args = request(tmp_path, from_results=False, reuse_results=True, seeds=2)
    for key, ap in (('retinanet', 30.0), ('ap-loss', 33.0)):
        work = tmp_path / 'published' / key
        settings = plan.requested_settings(args, get_row(key), 0)
        if key == 'ap-loss':
            settings = dict(settings, recipe_version=1)
        fake_run(work, settings, ap)
        results.export_run(str(work), results.run_dir(args.results, 'mini', 'shapes', 0, key))
    published = osp.join(results.run_dir(args.results, 'mini', 'shapes', 0, 'retinanet'),
                         'run.json')
    before = open(published).read()
    trained = []

    def train(args, row, seed, progress, label):
        trained.append((row.key, seed))
        fake_run(args.run_dir(row, seed), plan.requested_settings(args, row, seed),
                 ap=31.0 + seed if row.key == 'retinanet' else 35.0)
        return 0, 'train_stdout.log', False

    monkeypatch.setattr(runs, 'train_run', train)
    paths, failures = runs.run_table(args)
    assert not failures
    assert sorted(trained) == [('ap-loss', 0), ('ap-loss', 1), ('retinanet', 1)]
    assert open(published).read() == before
    table = {r['key']: r for r in json.load(open(paths['json']))['rows']}
    assert table['retinanet']['seeds'] == 2
    assert table['retinanet']['ap_mean'] == pytest.approx(31.0)  # 30 (tree) and 32 (trained)
    exported = read_record(osp.join(results.run_dir(args.results, 'mini', 'shapes', 0, 'ap-loss'),
                                    'run.json'))
    assert exported.ap == 35.0 and exported.settings['recipe_version'] != 1


def test_reuse_results_refuses_force():
    import importlib.util
    spec = importlib.util.spec_from_file_location('table1_cli', osp.join(REPO, 'tools',
                                                                         'table1.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit):
        cli.parse_args(['--reuse-results', '--force'])


def test_a_tree_of_two_precisions_is_refused_naming_them(tmp_path):
    """Seeds added on a machine where --precision auto resolves otherwise must not mix into the
    table: the tree is refused, naming each precision and one of its runs."""
    args = request(tmp_path)
    for key, seed, precision in (('retinanet', 0, 'bf16'), ('ap-loss', 0, 'bf16'),
                                 ('retinanet', 1, 'fp32')):
        work = tmp_path / 'runs' / f'{key}-{seed}'
        fake_run(work, plan.requested_settings(args, get_row(key), seed, precision=precision),
                 ap=30.0)
        results.export_run(str(work), results.run_dir(args.results, 'mini', 'shapes', seed, key))
    with pytest.raises(SystemExit, match=r'bf16: 2 run\(s\), e\.g\. seed0/.*fp32: 1 run\(s\), '
                                         r'e\.g\. seed1/retinanet'):
        runs.run_table(args)


def test_reuse_results_refuses_seeds_of_another_precision_before_training(tmp_path, monkeypatch):
    args = request(tmp_path, from_results=False, reuse_results=True, seeds=2, precision='fp32')
    work = tmp_path / 'published'
    bf16_args = request(tmp_path)
    fake_run(work, plan.requested_settings(bf16_args, get_row('retinanet'), 0), ap=30.0)
    results.export_run(str(work), results.run_dir(args.results, 'mini', 'shapes', 0, 'retinanet'))
    trained = []
    monkeypatch.setattr(runs, 'train_run', lambda *a, **k: trained.append(a))
    with pytest.raises(SystemExit, match='are bf16, this request trains fp32; pass --precision '
                                         'bf16'):
        runs.run_table(args)
    assert trained == []

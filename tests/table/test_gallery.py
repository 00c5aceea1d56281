"""The detection gallery: which rows it shows, which checkpoint is a published run's, the command
that trains one again, the drawing of a cell, and tools/gallery.py end to end on a tiny shapes set
with stand-in checkpoints."""
import functools
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
import torch

from mmdet_imbalance.engine.run_record import RunRecord
from mmdet_imbalance.table import gallery, pictures, results
from mmdet_imbalance.table.published import expected_settings
from mmdet_imbalance.table.collect import RunResult, aggregate
from mmdet_imbalance.table.rows import get_row
from mmdet_imbalance.testing import fake_work_dir

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _runs(aps):
    return {seed: RunResult(work_dir='w', status='finished', source='run.json', ap=ap)
            for seed, ap in enumerate(aps)}


def test_the_gallery_shows_the_largest_effects_one_per_baseline():
    base = {'retinanet': _runs([50., 51.]), 'faster-rcnn': _runs([60., 61.])}
    rows = {'ghm-c': [20., 21.], 'ap-loss': [58., 59.], 'dr-loss': [57., 58.],
            'ohem': [45., 46.], 'isr': [62., 63.]}
    table = {key: aggregate(key, r, None) for key, r in base.items()}
    for key, aps in rows.items():
        table[key] = aggregate(key, _runs(aps), base[get_row(key).baseline])
    picked = [row.key for row in gallery.pick_rows(table, seed=0)]
    assert picked == ['ghm-c', 'ohem']  # -30 and -15; AP Loss shares GHM-C's baseline
    assert gallery.pick_rows(table, seed=2) == []


def test_a_checkpoint_counts_only_for_a_finished_run_of_the_published_settings(tmp_path):
    published = RunRecord(settings=dict(seed=0, precision='fp32', max_iters=600))
    dirs = []
    for name, settings, keep in (('other', dict(published.settings, max_iters=2), True),
                                 ('no-checkpoint', published.settings, False),
                                 ('kept', published.settings, True)):
        work = tmp_path / name
        fake_work_dir(str(work), settings, 50.0)
        if keep:
            (work / 'iter_600.pth').write_bytes(b'weights')
            (work / 'last_checkpoint').write_text(str(work / 'iter_600.pth'))
        dirs.append(str(work))
    assert gallery.find_checkpoint(published, dirs) == (str(tmp_path / 'kept' / 'iter_600.pth'),
                                                        dirs[2])
    assert gallery.find_checkpoint(published, dirs[:2]) == (None, None)


def test_a_run_is_trained_again_with_the_tables_own_command(tmp_path):
    """The command trains the row's config on the dataset, at the record's precision and seed,
    into the given work dir, as the package's train entry point reads it."""
    from mmdet_imbalance import train
    row = get_row('ghm-c')
    work = str(tmp_path / 'wd')
    cmd = gallery.train_command(row, 'shapes', 2, 'bf16', work, python='python')
    assert cmd[:3] == ['python', '-m', 'mmdet_imbalance.train']
    args = train.parse_args(cmd[3:])
    assert osp.samefile(args.config, osp.join(REPO, row.config('mini')))
    assert (args.work_dir, args.dataset, args.precision) == (work, 'shapes', 'bf16')
    assert args.cfg_options == {'randomness.seed': 2} and args.resume is None


def test_a_cell_draws_the_truth_and_the_detections_above_the_threshold():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    boxes, labels = np.array([[10., 10., 40., 40.]], dtype=np.float32), np.array([1])

    def detection(score):
        sample = DetDataSample()
        sample.pred_instances = InstanceData(bboxes=torch.tensor([[12., 12., 44., 44.]]),
                                             scores=torch.tensor([score]),
                                             labels=torch.tensor([1]))
        return sample

    out = gallery.cell(image, boxes, labels, [detection(0.9), detection(0.1)],
                       ('circle', 'square', 'triangle'), score_thr=0.3)
    width = 64 + gallery.SEPARATOR
    assert out.shape == (64, 3 * 64 + 2 * gallery.SEPARATOR, 3)
    truth, confident, unsure = (out[:, i * width:i * width + 64] for i in range(3))
    assert (truth != image).any() and (confident != image).any()
    assert (unsure == image).all()  # scored under the threshold: nothing drawn
    assert (truth[25, 10] != 128).any() and (truth[25, 25] == 128).all()  # the box's edge only


@pytest.fixture
def tiny_shapes(tmp_path, monkeypatch):
    """A 3 + 4 canvas shapes set at ``<tmp>/data/shapes`` (the configs' relative data root)."""
    from mmdet_imbalance.datasets import embedded, shapes
    spec = dict(embedded.EMBEDDED['shapes'],
                build=functools.partial(shapes.build, num_train=3, num_val=4))
    monkeypatch.setitem(embedded.EMBEDDED, 'shapes', spec)
    embedded.prepare('shapes', str(tmp_path / 'data' / 'shapes'))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_gallery_tool_draws_the_published_runs(tiny_shapes, capsys):
    from mmdet_imbalance.testing import build_detector
    root = str(tiny_shapes / 'results')
    probe = RunRecord(settings=dict(precision='fp32'))
    for key, ap in (('retinanet', 50.0), ('ghm-c', 20.0)):
        row = get_row(key)
        settings = expected_settings('mini', 'shapes', key, 0, probe)
        work = gallery.work_dir_of(str(tiny_shapes / 'work_dirs' / 'table1'), 'shapes', 0, row)
        fake_work_dir(work, settings, ap)
        results.export_run(work, results.run_dir(root, 'mini', 'shapes', 0, key))
        model = build_detector(osp.join(REPO, row.config('mini')), shrink=False)
        torch.save(dict(meta=dict(dataset_meta=dict(classes=('circle', 'square', 'triangle'))),
                        state_dict=model.state_dict()), osp.join(work, 'iter_600.pth'))
        with open(osp.join(work, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(work, 'iter_600.pth'))
    path = osp.join(REPO, 'tools', 'gallery.py')
    spec = importlib.util.spec_from_file_location('gallery_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tiny_shapes / 'gallery.png')
    assert tool.main(['--rows', 'ghm-c', '--no-train', '--results', root, '--out', out]) == 0
    printed = capsys.readouterr().out
    assert 'wrote' in printed and '(1600x' in printed
    assert pictures.problems(out) == []
    recorded = pictures.digest(str(tiny_shapes), ['results/mini-shapes/seed0/*/run.json'])
    assert len(recorded) == 2
    # A run whose checkpoint is not kept and may not be trained again is an error naming it.
    os.remove(osp.join(gallery.work_dir_of(str(tiny_shapes / 'work_dirs' / 'table1'), 'shapes',
                                           0, get_row('ghm-c')), 'last_checkpoint'))
    code = tool.cli.run(tool.main, 'gallery.py', ['--rows', 'ghm-c', '--no-train', '--results',
                                                  root, '--out', out])
    assert code == 2 and 'no kept checkpoint of the published ghm-c seed 0' in \
        capsys.readouterr().err

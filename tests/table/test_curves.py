"""Training curves in the results tree: every exported run keeps mmengine's logged scalars every
10 iterations, the verification of the tree covers them, and runs exported before curves were
kept get theirs from the work dirs that trained them (tools/export_curves.py)."""
import importlib.util
import json
import os
import os.path as osp

import pytest

from mmdet_imbalance.table import curves, results
from mmdet_imbalance.table.verify import RecordError, verify_folder
from mmdet_imbalance.testing import fake_work_dir

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SETTINGS = dict(seed=0, precision='fp32', max_iters=30)


def test_an_exported_run_keeps_its_curve(tmp_path):
    work = tmp_path / 'work'
    fake_work_dir(str(work), SETTINGS, 40.0, iters=30, loss=3.0)
    dest = str(tmp_path / 'results' / 'mini-shapes' / 'seed0' / 'retinanet')
    results.export_run(str(work), dest)
    lines = curves.read(dest)
    train = [line for line in lines if not curves.is_val_line(line)]
    assert [line['step'] for line in train] == [10, 20, 30]
    assert train[0]['loss'] == pytest.approx(0.3) and train[-1]['loss'] == pytest.approx(0.1)
    assert {'lr', 'loss', 'loss_cls', 'time'} <= set(curves.keys_of(lines))
    val, = [line for line in lines if curves.is_val_line(line)]
    assert val['coco/bbox_mAP'] == 0.4 and val['step'] == 30
    info = json.load(open(osp.join(dest, 'run.json')))['curve']
    assert info['file'] == 'scalars.json' and info['lines'] == 4
    steps, losses = curves.series(lines, 'loss')
    assert steps == [10, 20, 30] and losses == pytest.approx([0.3, 0.15, 0.1])


def test_a_resumed_run_keeps_the_steps_of_its_last_start(tmp_path):
    """A resumed run has one scalars file per start; the later one wins for the steps both
    logged, and steps past the record's end (an overwritten longer run) are dropped."""
    work = tmp_path / 'work'
    record = fake_work_dir(str(work), SETTINGS, 40.0, iters=30)
    later = work / '20260102_000000' / 'vis_data'
    later.mkdir(parents=True)
    (later / 'scalars.json').write_text(''.join(
        json.dumps(dict(loss=9.0, lr=0.1, step=step)) + '\n' for step in (20, 30, 40)))
    steps = {line['step']: line['loss'] for line in curves.extract(str(work), record)
             if not curves.is_val_line(line)}
    assert steps == {10: pytest.approx(0.1), 20: 9.0, 30: 9.0}


@pytest.mark.parametrize('damage', ['deleted', 'a step past the end', 'other metric'])
def test_the_tree_verification_covers_the_curve(tmp_path, damage):
    work = tmp_path / 'work'
    fake_work_dir(str(work), SETTINGS, 40.0, iters=30)
    dest = str(tmp_path / 'results' / 'mini-shapes' / 'seed0' / 'retinanet')
    results.export_run(str(work), dest)
    curve = osp.join(dest, 'scalars.json')
    if damage == 'deleted':
        os.remove(curve)
        expected = 'scalars.json: missing, but run.json records a curve of 4 lines'
    else:
        lines = curves.read(dest)
        if damage == 'a step past the end':
            lines.insert(3, dict(loss=0.1, step=40))
            expected = "step 40 is past the run's last iteration 30"
        else:
            lines[-1]['coco/bbox_mAP'] = 0.9
            expected = "coco/bbox_mAP 0.9 at the last iteration differs from the record's 0.4"
        data = json.load(open(osp.join(dest, 'run.json')))
        data['curve'] = curves.write(dest, lines)  # a consistent hash: the content is checked
        json.dump(data, open(osp.join(dest, 'run.json'), 'w'))
    with pytest.raises(RecordError, match=expected.replace('(', r'\(').replace(')', r'\)')):
        verify_folder(dest)


def test_runs_exported_before_curves_get_them_from_their_work_dirs(tmp_path, capsys):
    """What tools/export_curves.py does for the runs of a table run that exported them without
    curves: each folder gets the curve of its own run, and a work dir holding another run is
    refused."""
    work_root = tmp_path / 'work_dirs' / 'table1'
    root = str(tmp_path / 'results')
    for key, stem, started in (('retinanet', 'retinanet_mini', 1.0),
                               ('ap-loss', 'retinanet_mini_ap-loss', 1.0)):
        work = work_root / 'mini-shapes' / 'seed0' / stem
        fake_work_dir(str(work), SETTINGS, 40.0, iters=30)
        dest = results.run_dir(root, 'mini', 'shapes', 0, key)
        results.export_run(str(work), dest)
        # As exported before curves were kept.
        os.remove(osp.join(dest, 'scalars.json'))
        data = json.load(open(osp.join(dest, 'run.json')))
        del data['curve']
        json.dump(data, open(osp.join(dest, 'run.json'), 'w'), indent=1)
    # The ap-loss work dir was trained again since: not the exported run.
    retrained = work_root / 'mini-shapes' / 'seed0' / 'retinanet_mini_ap-loss'
    record = json.load(open(retrained / 'imbalance' / 'run.json'))
    record['started'] = 5.0
    json.dump(record, open(retrained / 'imbalance' / 'run.json', 'w'))

    spec = importlib.util.spec_from_file_location('export_curves', osp.join(
        REPO, 'tools', 'export_curves.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    code = tool.main(['--work-dir', str(work_root), '--results', root])
    out = capsys.readouterr().out
    assert code == 1 and '1 of 2 run folders have their curve' in out
    assert 'seed0/ap-loss: ' in out and 'holds another run than the one exported there' in out
    retinanet = results.run_dir(root, 'mini', 'shapes', 0, 'retinanet')
    assert verify_folder(retinanet).ap == pytest.approx(40.0)
    assert [line['step'] for line in curves.read(retinanet)] == [10, 20, 30, 30]
    assert not osp.exists(osp.join(results.run_dir(root, 'mini', 'shapes', 0, 'ap-loss'),
                                   'scalars.json'))

"""tools/train.py and mmdet_imbalance.config_builder: the dataset switch, input checks, one run."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest

from mmdet_imbalance.config_builder import (build_runner_config, check_loss_head_compat,
                                            load_config, set_num_classes, use_mini_dataset)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_RETINA = os.path.join(REPO, 'configs/mini/retinanet_mini.py')
MINI_FASTER = os.path.join(REPO, 'configs/mini/faster-rcnn_mini.py')
COCO_RETINA = os.path.join(REPO, 'configs/table1/retinanet_r50_fpn_1x_coco.py')


def test_dataset_switch_replaces_data_and_num_classes():
    cfg = use_mini_dataset(load_config(MINI_FASTER), 'shapes')
    assert cfg.train_dataloader.dataset.embedded == 'shapes'
    assert cfg.val_evaluator.ann_file == 'data/shapes/annotations/instances_val.json'
    assert cfg.model.roi_head.bbox_head.num_classes == 3
    assert 'num_classes' not in cfg.model.rpn_head  # RPN stays class-agnostic
    retina = use_mini_dataset(load_config(MINI_RETINA), 'shapes')
    assert retina.model.bbox_head.num_classes == 3


def test_default_work_dir_names_the_dataset():
    """Regression: one config trained on two embedded datasets used to share one work dir, the
    second run overwriting the first's checkpoint and record."""
    config = os.path.join(REPO, 'configs/mini/retinanet_mini_ap-loss.py')
    shapes = build_runner_config(config, check_files=False)
    trees = build_runner_config(config, dataset='trees', check_files=False)
    assert os.path.basename(shapes.work_dir) == 'retinanet_mini_ap-loss_shapes'
    assert os.path.basename(trees.work_dir) == 'retinanet_mini_ap-loss_trees'


def test_set_num_classes_walks_nested_configs():
    model = dict(a=dict(num_classes=1), b=[dict(num_classes=2), dict(x=1)], num_classes=5)
    assert set_num_classes(model, 7) == 3
    assert model == dict(a=dict(num_classes=7), b=[dict(num_classes=7), dict(x=1)], num_classes=7)


def test_unknown_dataset_and_coco_switch_are_clear_errors():
    with pytest.raises(ValueError, match="--dataset 'voc' is not an embedded dataset"):
        use_mini_dataset(load_config(MINI_RETINA), 'voc')
    with pytest.raises(ValueError, match='applies to mini configs'):
        use_mini_dataset(load_config(COCO_RETINA), 'trees')


def test_missing_config_and_checkpoint_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='config file not found: nowhere.py'):
        build_runner_config('nowhere.py')
    with pytest.raises(FileNotFoundError, match='--resume .*missing.pth: no such checkpoint'):
        build_runner_config(MINI_RETINA, resume=str(tmp_path / 'missing.pth'))


def test_missing_coco_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'train_dataloader.dataset.ann_file: .*'
                       r'instances_train2017.json does not exist'):
        build_runner_config(COCO_RETINA)
    (tmp_path / 'annotations').mkdir()
    with pytest.raises(FileNotFoundError, match=r'is not a COCO 2017 root: missing'):
        build_runner_config(COCO_RETINA, data_root=str(tmp_path))


def test_sigmoid_loss_on_softmax_head_is_rejected():
    cfg = load_config(MINI_FASTER)
    cfg.model.roi_head.bbox_head.loss_cls = dict(type='FocalLoss', use_sigmoid=True)
    with pytest.raises(ValueError, match=r'model.roi_head.bbox_head.loss_cls: FocalLoss expects '
                                         r'per-class sigmoid logits.*softmax classifier'):
        check_loss_head_compat(cfg.model)
    retina = load_config(MINI_RETINA)
    check_loss_head_compat(retina.model)  # the stock sigmoid pairing passes
    retina.model.bbox_head.loss_cls.use_sigmoid = False
    with pytest.raises(ValueError, match='sets use_sigmoid=False'):
        check_loss_head_compat(retina.model)


def test_short_training_run_reports_coco_ap(tmp_path):
    """tools/train.py end to end: a few iterations of the mini RetinaNet baseline on trees, then
    mmdet's CocoMetric on the whole val split; the AP must come out finite in mmengine's logs."""
    work_dir = tmp_path / 'run'
    cmd = [sys.executable, os.path.join(REPO, 'tools/train.py'), MINI_RETINA,
           '--work-dir', str(work_dir), '--cfg-options', 'train_cfg.max_iters=4',
           'train_cfg.val_interval=4', 'train_dataloader.batch_size=2',
           'default_hooks.checkpoint.interval=4', 'model.test_cfg.score_thr=0.0']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1
    lines = [json.loads(line) for line in open(scalars[0])]
    ap = [line['coco/bbox_mAP'] for line in lines if 'coco/bbox_mAP' in line]
    assert len(ap) == 1 and math.isfinite(ap[0]) and 0.0 <= ap[0] <= 1.0
    assert os.path.isfile(work_dir / 'iter_4.pth')

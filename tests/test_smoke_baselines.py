import pytest
import torch

from mmdet_imbalance.testing import build_detector, demo_batch, predict, train_step


@pytest.mark.parametrize('cfg', ['configs/table1/retinanet_r50_fpn_1x_coco.py',
                                 'configs/table1/faster-rcnn_r50_fpn_1x_coco.py'])
def test_tmp(cfg, repo_root):
    torch.manual_seed(0)
    model = build_detector(f'{repo_root}/{cfg}')
    losses = train_step(model, demo_batch(model))
    assert losses
    res = predict(model, demo_batch(model, training=False))
    assert len(res) == 2

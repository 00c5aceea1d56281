"""Every config under configs/ builds its detector, trains one step and predicts on CPU.

COCO rows are shrunk to ResNet-18 without the pretrained init (in the test only); mini rows run as
they are. The list is globbed, so a new row config is covered the moment it is added.
"""
import glob
import os

import pytest
import torch

from mmdet_imbalance.testing import build_detector, demo_batch, predict, train_step

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'configs', '**', '*.py'),
                                                 recursive=True)
    if '_base_' not in p.split(os.sep))


def test_configs_are_found():
    # The two Table 1 baselines, COCO and mini, must always be among them.
    for name in ('configs/table1/retinanet_r50_fpn_1x_coco.py',
                 'configs/table1/faster-rcnn_r50_fpn_1x_coco.py',
                 'configs/mini/retinanet_mini.py', 'configs/mini/faster-rcnn_mini.py'):
        assert name in CONFIGS


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_one_step_and_predicts(config):
    from mmdet_imbalance.config_builder import load_config
    cfg = load_config(os.path.join(REPO, config))
    assert cfg.custom_imports.imports == ['mmdet_imbalance'], config
    assert any(h['type'] == 'ImbalanceTableHook' for h in cfg.custom_hooks), config
    torch.manual_seed(0)
    model = build_detector(cfg)
    losses = train_step(model, demo_batch(model, image_size=128))
    assert any('loss' in k for k in losses)
    results = predict(model, demo_batch(model, image_size=128, training=False))
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape[-1] == 4 and len(pred.scores) == len(pred.labels)
        assert torch.isfinite(pred.bboxes).all() and torch.isfinite(pred.scores).all()

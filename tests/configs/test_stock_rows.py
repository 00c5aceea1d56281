"""Table 1 rows on stock mmdet modules: OHEM, IoU-balanced sampling, GHM-C, ISR.

For every row, COCO and mini:

* its merged config differs from its baseline's in exactly the heuristic's keys (``config_delta``);
* the built detector holds the intended module, and one CPU training step on a batch whose first
  image has no ground truth goes through the heuristic's own code (spied) with finite losses and
  gradients.

The zoo-check rows must be mmdet's bundles plus our import and hook only, and each isolated row's
delta must be a part of its bundle's delta with the same values.
"""
import math
import os

import pytest
import torch
from mmdet.models.losses import GHMC, L1Loss
from mmdet.models.roi_heads import PISARoIHead, StandardRoIHead, pisa_roi_head
from mmdet.models.task_modules.samplers import (CombinedSampler, InstanceBalancedPosSampler,
                                                IoUBalancedNegSampler, OHEMSampler, RandomSampler,
                                                ScoreHLRSampler)
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config

from mmdet_imbalance.table.config_diff import MISSING, config_delta
from mmdet_imbalance.testing import build_detector, demo_batch, load_config, train_step

FASTER_COCO = 'configs/table1/faster-rcnn_r50_fpn_1x_coco.py'
RETINA_COCO = 'configs/table1/retinanet_r50_fpn_1x_coco.py'
FASTER_MINI = 'configs/mini/faster-rcnn_mini.py'
RETINA_MINI = 'configs/mini/retinanet_mini.py'

RCNN_SAMPLER = 'model.train_cfg.rcnn.sampler'
LOSS_CLS = 'model.bbox_head.loss_cls'

# The intended delta of each heuristic, {key: (baseline value, row value)}, from §3-§4 of
# docs/methods/ohem.md, iou-balanced-sampling.md, ghm-c.md and isr.md; the same for the COCO and
# the mini row.
EXPECTED_DELTA = {
    'ohem': {
        f'{RCNN_SAMPLER}.type': ('RandomSampler', 'OHEMSampler')
    },
    'iou-balanced': {
        f'{RCNN_SAMPLER}.type': ('RandomSampler', 'CombinedSampler'),
        f'{RCNN_SAMPLER}.pos_sampler.type': (MISSING, 'InstanceBalancedPosSampler'),
        f'{RCNN_SAMPLER}.neg_sampler.type': (MISSING, 'IoUBalancedNegSampler'),
        f'{RCNN_SAMPLER}.neg_sampler.floor_thr': (MISSING, -1),
        f'{RCNN_SAMPLER}.neg_sampler.floor_fraction': (MISSING, 0),
        f'{RCNN_SAMPLER}.neg_sampler.num_bins': (MISSING, 3),
    },
    'ghm-c': {
        f'{LOSS_CLS}.type': ('FocalLoss', 'GHMC'),
        f'{LOSS_CLS}.gamma': (2.0, MISSING),
        f'{LOSS_CLS}.alpha': (0.25, MISSING),
        f'{LOSS_CLS}.bins': (MISSING, 30),
        f'{LOSS_CLS}.momentum': (MISSING, 0.75),
        # GHM's own optimiser setting from its stock config (docs/methods/ghm-c.md).
        'optim_wrapper.clip_grad.max_norm': (MISSING, 35),
        'optim_wrapper.clip_grad.norm_type': (MISSING, 2),
    },
    'isr': {
        'model.roi_head.type': ('StandardRoIHead', 'PISARoIHead'),
        f'{RCNN_SAMPLER}.type': ('RandomSampler', 'ScoreHLRSampler'),
        f'{RCNN_SAMPLER}.k': (MISSING, 0.5),
        f'{RCNN_SAMPLER}.bias': (MISSING, 0.),
        'model.train_cfg.rcnn.isr.k': (MISSING, 2.),
        'model.train_cfg.rcnn.isr.bias': (MISSING, 0.),
    },
}

# (row config, its baseline, heuristic)
ROWS = [
    ('configs/table1/faster-rcnn_r50_fpn_1x_coco_ohem.py', FASTER_COCO, 'ohem'),
    ('configs/table1/faster-rcnn_r50_fpn_1x_coco_iou-balanced.py', FASTER_COCO, 'iou-balanced'),
    ('configs/table1/retinanet_r50_fpn_1x_coco_ghm-c.py', RETINA_COCO, 'ghm-c'),
    ('configs/table1/faster-rcnn_r50_fpn_1x_coco_isr.py', FASTER_COCO, 'isr'),
    ('configs/mini/faster-rcnn_mini_ohem.py', FASTER_MINI, 'ohem'),
    ('configs/mini/faster-rcnn_mini_iou-balanced.py', FASTER_MINI, 'iou-balanced'),
    ('configs/mini/retinanet_mini_ghm-c.py', RETINA_MINI, 'ghm-c'),
    ('configs/mini/faster-rcnn_mini_isr.py', FASTER_MINI, 'isr'),
]

# (zoo-check config, the stock mmdet config it wraps, our baseline, the isolated COCO row,
#  a module type only the bundle has)
ZOO_ROWS = [
    ('configs/zoo/libra-faster-rcnn_r50_fpn_1x_coco.py',
     'mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py', FASTER_COCO, ROWS[1][0], 'BFP'),
    ('configs/zoo/retinanet_r50_fpn_ghm-1x_coco.py', 'mmdet::ghm/retinanet_r50_fpn_ghm-1x_coco.py',
     RETINA_COCO, ROWS[2][0], 'GHMR'),
    ('configs/zoo/faster-rcnn_r50_fpn_pisa_1x_coco.py',
     'mmdet::pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py', FASTER_COCO, ROWS[3][0], 'SmoothL1Loss'),
]

_configs = {}


def _config(repo_root, path):
    """Merged configs are read-only here, so load each file once per session."""
    if path not in _configs:
        _configs[path] = (
            get_config(path) if path.startswith('mmdet::') else load_config(
                os.path.join(repo_root, path)))
    return _configs[path]


def _row_id(row):
    return os.path.basename(row[0])


@pytest.mark.parametrize('row', ROWS, ids=_row_id)
def test_row_delta_is_exactly_the_heuristic(row, repo_root):
    path, base, method = row
    delta = config_delta(_config(repo_root, path), _config(repo_root, base))
    assert delta == EXPECTED_DELTA[method]


def _spy(monkeypatch, owner, name, calls):
    """Wrap ``owner.name`` so that each call is recorded in ``calls[name]``; behaviour unchanged."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.setdefault(name, []).append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def _freeze_trunk(model):
    """Freeze backbone and neck: every heuristic here lives in a head, and the trunk's backward
    pass would be most of a CPU step."""
    for part in (model.backbone, model.neck):
        part.requires_grad_(False)


def _baseline_rcnn_num(model):
    """The baseline's RoI batch, the stock 512 in both benchmarks (configs/mini/faster-rcnn_mini.py
    says why); the config-delta test checks that the row does not change it."""
    return 512


def _check_ohem(model, monkeypatch, calls):
    sampler = model.roi_head.bbox_sampler
    assert type(sampler) is OHEMSampler and sampler.context is model.roi_head
    assert (sampler.num, sampler.pos_fraction) == (_baseline_rcnn_num(model), 0.25)
    assert type(model.rpn_head.sampler) is RandomSampler
    _spy(monkeypatch, sampler, 'hard_mining', calls)
    return lambda losses: calls.get('hard_mining')


def _check_iou_balanced(model, monkeypatch, calls):
    sampler = model.roi_head.bbox_sampler
    assert type(sampler) is CombinedSampler
    assert type(sampler.pos_sampler) is InstanceBalancedPosSampler
    neg = sampler.neg_sampler
    assert type(neg) is IoUBalancedNegSampler
    assert (neg.floor_thr, neg.floor_fraction, neg.num_bins) == (-1, 0, 3)
    num = _baseline_rcnn_num(model)
    assert (sampler.num, sampler.pos_fraction, neg.num, neg.pos_fraction) == (num, .25, num, .25)
    _spy(monkeypatch, neg, 'sample_via_interval', calls)
    return lambda losses: calls.get('sample_via_interval')


def _check_ghm_c(model, monkeypatch, calls):
    head = model.bbox_head
    assert type(head.loss_cls) is GHMC and head.use_sigmoid_cls
    assert (head.loss_cls.bins, head.loss_cls.momentum) == (30, 0.75)
    assert type(head.loss_bbox) is L1Loss
    # the review keeps RetinaNet's biased initialisation: prior 0.01 on every class logit
    prior_bias = -math.log((1 - 0.01) / 0.01)
    assert torch.allclose(head.retina_cls.bias, torch.full_like(head.retina_cls.bias, prior_bias))
    assert not head.loss_cls.acc_sum.any()
    return lambda losses: head.loss_cls.acc_sum.sum() > 0


def _check_isr(model, monkeypatch, calls):
    roi_head = model.roi_head
    assert type(roi_head) is PISARoIHead and isinstance(roi_head, StandardRoIHead)
    assert type(roi_head.bbox_sampler) is ScoreHLRSampler
    assert (roi_head.bbox_sampler.k, roi_head.bbox_sampler.bias) == (0.5, 0.)
    assert dict(roi_head.train_cfg.isr) == dict(k=2., bias=0.)
    assert roi_head.train_cfg.get('carl') is None
    assert type(roi_head.bbox_head.loss_bbox) is L1Loss
    _spy(monkeypatch, pisa_roi_head, 'isr_p', calls)
    _spy(monkeypatch, pisa_roi_head, 'carl_loss', calls)
    return lambda losses: (
        calls.get('isr_p') and 'carl_loss' not in calls and 'loss_carl' not in losses)


CHECKS = {
    'ohem': _check_ohem,
    'iou-balanced': _check_iou_balanced,
    'ghm-c': _check_ghm_c,
    'isr': _check_isr
}


@pytest.mark.parametrize('row', ROWS, ids=_row_id)
def test_row_uses_the_heuristic_and_trains(row, repo_root, monkeypatch):
    """Intended modules built; one step on a batch with an image without GT runs through them."""
    path, _, method = row
    torch.manual_seed(0)
    model = build_detector(_config(repo_root, path))
    _freeze_trunk(model)
    calls = {}
    ran = CHECKS[method](model, monkeypatch, calls)
    batch = demo_batch(model, batch_size=2, image_size=128, num_items=[0, 2])
    losses = train_step(model, batch)
    assert ran(losses), f'{method} code was not reached in the training step: {sorted(calls)}'


@pytest.mark.parametrize('zoo', ZOO_ROWS, ids=_row_id)
def test_zoo_row_is_the_stock_bundle(zoo, repo_root):
    path, stock = zoo[:2]
    delta = config_delta(_config(repo_root, path), _config(repo_root, stock))
    assert delta == {
        'custom_imports.imports': (MISSING, ('mmdet_imbalance', )),
        'custom_imports.allow_failed_imports': (MISSING, False),
        'custom_hooks.0.type': (MISSING, 'ImbalanceTableHook'),
        'runner_type': (MISSING, 'mmdet.OwnCheckpointRunner'),
    }


@pytest.mark.parametrize('zoo', ZOO_ROWS, ids=_row_id)
def test_isolated_row_is_part_of_its_zoo_bundle(zoo, repo_root):
    """The Table 1 row takes the heuristic's keys from the bundle, with the bundle's values, and
    leaves out the bundle's other components."""
    path, _, base, row, _ = zoo
    base_cfg = _config(repo_root, base)
    bundle = config_delta(_config(repo_root, path), base_cfg)
    isolated = config_delta(_config(repo_root, row), base_cfg)
    assert isolated.items() <= bundle.items()
    assert len(bundle) > len(isolated)


def _shrunk_zoo_model_cfg(cfg):
    """R-18 without pretrained weights; unlike ``shrink_model_cfg`` also for Libra's list neck."""
    model = ConfigDict(cfg.model.to_dict())
    model.backbone.update(depth=18, init_cfg=None)
    fpn = model.neck[0] if isinstance(model.neck, list) else model.neck
    fpn.in_channels = [64, 128, 256, 512]
    return Config(dict(model=model))


@pytest.mark.parametrize('zoo', ZOO_ROWS, ids=_row_id)
def test_zoo_row_builds_the_bundle(zoo, repo_root):
    """The bundle's extra component is really built. No training step: these are mmdet's own
    configs, unchanged (checked above), and a step each would double this file's CPU time."""
    path, module_type = zoo[0], zoo[-1]
    model = build_detector(_shrunk_zoo_model_cfg(_config(repo_root, path)), shrink=False)
    assert module_type in {type(m).__name__ for m in model.modules()}

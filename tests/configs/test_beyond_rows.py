"""Rows beyond the review: ATSS, RS-ATSS, GFL, RS-Faster R-CNN, aLRP-RetinaNet.

For every row, COCO and mini: its merged config differs from its baseline's (or, for the stock
rows, from mmdet's own config) in exactly the intended keys, and the registry points at it.
Training steps are in tests/models/dense_heads/ and tests/configs/test_all_configs.py.
"""
import os

import pytest
from mmengine.hub import get_config

from mmdet_imbalance.table.config_diff import MISSING, config_delta
from mmdet_imbalance.table.rows import get_row
from mmdet_imbalance.testing import load_config

HEAD = 'model.bbox_head'
CLS = f'{HEAD}.loss_cls'
RPN = 'model.rpn_head'
RCNN = 'model.roi_head.bbox_head'
SAMPLER = 'model.train_cfg.rcnn.sampler'
RPN_SAMPLER = 'model.train_cfg.rpn.sampler'

# Our import, hook and runner, <1 px box filter and checked COCO dataset: what every stock row
# adds to mmdet's config.
PLUGIN = {
    'custom_hooks.0.type': (MISSING, 'ImbalanceTableHook'),
    'runner_type': (MISSING, 'mmdet.OwnCheckpointRunner'),
    'custom_imports.allow_failed_imports': (MISSING, False),
    'custom_imports.imports': (MISSING, ('mmdet_imbalance', )),
    'model.data_preprocessor.type': ('DetDataPreprocessor', 'BoxFilterDetDataPreprocessor'),
    **{f'{split}_dataloader.dataset.type': ('CocoDataset', 'CheckedCocoDataset')
       for split in ('train', 'val', 'test')},
}
FOCAL_OUT = {f'{CLS}.alpha': (0.25, MISSING), f'{CLS}.gamma': (2.0, MISSING),
             f'{CLS}.use_sigmoid': (True, MISSING)}
RS_ATSS = {
    f'{HEAD}.type': ('ATSSHead', 'RankSortATSSHead'),
    f'{HEAD}.anchor_generator.octave_base_scale': (8, 4),
    f'{HEAD}.anchor_generator.scales_per_octave': (1, 3),
    f'{CLS}.type': ('FocalLoss', 'RankSortLoss'),
    f'{CLS}.delta': (MISSING, 0.5),
    **FOCAL_OUT,
}
GFL = {
    'model.type': ('ATSS', 'GFL'),
    f'{HEAD}.type': ('ATSSHead', 'GFLHead'),
    f'{HEAD}.bbox_coder.type': ('DeltaXYWHBBoxCoder', MISSING),
    f'{HEAD}.bbox_coder.target_means': ((0.0, 0.0, 0.0, 0.0), MISSING),
    f'{HEAD}.bbox_coder.target_stds': ((0.1, 0.1, 0.2, 0.2), MISSING),
    f'{HEAD}.loss_centerness.type': ('CrossEntropyLoss', MISSING),
    f'{HEAD}.loss_centerness.use_sigmoid': (True, MISSING),
    f'{HEAD}.loss_centerness.loss_weight': (1.0, MISSING),
    f'{CLS}.type': ('FocalLoss', 'QualityFocalLoss'),
    f'{CLS}.alpha': (0.25, MISSING),
    f'{CLS}.gamma': (2.0, MISSING),
    f'{CLS}.beta': (MISSING, 2.0),
    f'{HEAD}.loss_dfl.type': (MISSING, 'DistributionFocalLoss'),
    f'{HEAD}.loss_dfl.loss_weight': (MISSING, 0.25),
    f'{HEAD}.reg_max': (MISSING, 16),
}
ALRP = {
    'custom_hooks.1.type': (MISSING, 'ALRPSelfBalanceHook'),
    f'{HEAD}.type': ('RetinaHead', 'ALRPLossRetinaHead'),
    f'{HEAD}.sb_init': (MISSING, 50.0),
    f'{HEAD}.anchor_generator.scales_per_octave': (3, 2),
    f'{HEAD}.reg_decoded_bbox': (MISSING, True),
    f'{HEAD}.bbox_coder.target_stds': ((1.0, 1.0, 1.0, 1.0), (0.1, 0.1, 0.2, 0.2)),
    f'{HEAD}.loss_bbox.type': ('L1Loss', 'GIoULoss'),
    f'{CLS}.type': ('FocalLoss', 'ALRPLoss'),
    f'{CLS}.delta': (MISSING, 1.0),
    **FOCAL_OUT,
}


def rs_rcnn(rcnn_num):
    return {
        f'{RPN}.type': ('RPNHead', 'RankSortRPNHead'),
        f'{RPN}.head_weight': (MISSING, 0.2),
        f'{RPN}.reg_decoded_bbox': (MISSING, True),
        f'{RPN}.bbox_coder.target_stds': ((1.0, 1.0, 1.0, 1.0), (0.1, 0.1, 0.2, 0.2)),
        f'{RPN}.loss_bbox.type': ('L1Loss', 'GIoULoss'),
        f'{RPN}.loss_cls.type': ('CrossEntropyLoss', 'RankSortLoss'),
        f'{RPN}.loss_cls.delta': (MISSING, 0.5),
        f'{RPN}.loss_cls.use_sigmoid': (True, MISSING),
        f'{RCNN}.type': ('Shared2FCBBoxHead', 'RankSortBBoxHead'),
        f'{RCNN}.reg_decoded_bbox': (MISSING, True),
        f'{RCNN}.loss_bbox.type': ('L1Loss', 'GIoULoss'),
        f'{RCNN}.loss_cls.type': ('CrossEntropyLoss', 'RankSortLoss'),
        f'{RCNN}.loss_cls.delta': (MISSING, 0.5),
        f'{RCNN}.loss_cls.use_sigmoid': (False, MISSING),
        # No sampler in either stage: PseudoSampler in the RPN, AllSampler in the RoI head.
        RPN_SAMPLER: (MISSING, None),
        f'{RPN_SAMPLER}.type': ('RandomSampler', MISSING),
        f'{RPN_SAMPLER}.num': (256, MISSING),
        f'{RPN_SAMPLER}.pos_fraction': (0.5, MISSING),
        f'{RPN_SAMPLER}.neg_pos_ub': (-1, MISSING),
        f'{RPN_SAMPLER}.add_gt_as_proposals': (False, MISSING),
        f'{SAMPLER}.type': ('RandomSampler', 'AllSampler'),
        f'{SAMPLER}.num': (rcnn_num, MISSING),
        f'{SAMPLER}.pos_fraction': (0.25, MISSING),
        f'{SAMPLER}.neg_pos_ub': (-1, MISSING),
    }


# (row key, benchmark, baseline config, expected delta)
CASES = [
    ('atss', 'coco', 'mmdet::atss/atss_r50_fpn_1x_coco.py', PLUGIN),
    ('gfl', 'coco', 'mmdet::gfl/gfl_r50_fpn_1x_coco.py', PLUGIN),
    ('gfl', 'coco', 'configs/table1/atss_r50_fpn_1x_coco.py', GFL),
    ('gfl', 'mini', 'configs/mini/atss_mini.py', GFL),
    ('rs-atss', 'coco', 'configs/table1/atss_r50_fpn_1x_coco.py',
     {**RS_ATSS, 'optim_wrapper.optimizer.lr': (0.01, 0.008)}),
    ('rs-atss', 'mini', 'configs/mini/atss_mini.py',
     {**RS_ATSS, 'optim_wrapper.optimizer.lr': (0.002, 0.0016)}),
    ('rs-faster-rcnn', 'coco', 'configs/table1/faster-rcnn_r50_fpn_1x_coco.py',
     {**rs_rcnn(512), 'model.test_cfg.rcnn.score_thr': (0.05, 0.4),
      'optim_wrapper.optimizer.lr': (0.02, 0.012)}),
    ('rs-faster-rcnn', 'mini', 'configs/mini/faster-rcnn_mini.py',
     {**rs_rcnn(512), 'optim_wrapper.optimizer.lr': (0.002, 0.0012)}),
    ('alrp-loss', 'coco', 'configs/table1/retinanet_r50_fpn_1x_coco.py', ALRP),
    ('alrp-loss', 'mini', 'configs/mini/retinanet_mini.py', ALRP),
]
_configs = {}


def _config(repo_root, path):
    if path not in _configs:
        _configs[path] = (get_config(path) if path.startswith('mmdet::')
                          else load_config(os.path.join(repo_root, path)))
    return _configs[path]


@pytest.mark.parametrize('case', CASES, ids=lambda c: f'{c[0]}-{c[1]}-{os.path.basename(c[2])}')
def test_row_delta(case, repo_root):
    key, bench, base, expected = case
    row_config = get_row(key).configs[bench]
    delta = config_delta(_config(repo_root, row_config), _config(repo_root, base))
    assert delta == expected


def test_registry_baselines_are_the_compared_configs():
    for key, baseline in [('gfl', 'atss'), ('rs-atss', 'atss'), ('rs-faster-rcnn', 'faster-rcnn'),
                          ('alrp-loss', 'retinanet')]:
        assert get_row(key).baseline == baseline
    assert get_row('atss').is_baseline


def test_mini_atss_is_the_stock_atss_head_at_mini_width(repo_root):
    """The mini ATSS head is mmdet's stock one with only the width, depth, norm and classes
    changed: every other head setting equals mmdet's ATSS config."""
    mini = _config(repo_root, 'configs/mini/atss_mini.py').model
    stock = get_config('mmdet::atss/atss_r50_fpn_1x_coco.py').model
    delta = config_delta(dict(head=mini.bbox_head, train=mini.train_cfg, test=mini.test_cfg),
                         dict(head=stock.bbox_head, train=stock.train_cfg, test=stock.test_cfg))
    changed = {k.split('.')[1] for k in delta}
    assert changed <= {'in_channels', 'feat_channels', 'stacked_convs', 'num_classes',
                       'norm_cfg', 'sampler'}, delta

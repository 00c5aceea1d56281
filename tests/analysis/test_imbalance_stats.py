"""Tests of the imbalance statistics (library, CLI, cache) and of SamplingFreePriorHook, on a
constructed COCO dataset whose anchor and point counts are derived by hand below.

The dataset (no image file is needed: the statistics never decode images):

* image 1: 64 x 64, one box of class ``a`` at xyxy (16, 16, 48, 48), plus a crowd box;
* image 2: 128 x 128, one box of class ``b`` at xyxy (32, 32, 96, 96); the pipeline's
  ``Resize(scale=(64, 64), keep_ratio=True)`` halves it to 64 x 64 with the box at (16, 16, 48, 48);
* image 3: 64 x 64 without boxes, dropped by ``filter_empty_gt``.

Anchors: one level, stride 32, base size 32, scales (1, 1.5), ratio 1: on the 64 x 64 (padded to
64) image a 2 x 2 grid of centres (0, 0), (32, 0), (0, 32), (32, 32), each with a 32- and a 48-px
square. Against the box (16, 16, 48, 48) (area 1024):

* centre (32, 32), size 32 = (16, 16, 48, 48): IoU 1                      -> foreground;
* centre (32, 32), size 48 = (8, 8, 56, 56): IoU 1024 / 2304 = 0.444       -> RetinaNet ignore band
  [0.4, 0.5), RPN ignore band [0.3, 0.7);
* every other anchor: IoU <= 256 / 3072 = 0.083                             -> background.

So RetinaNet (allowed_border=-1): per image fg 1, ignored 1, bg 6, i.e. fg 2, ignored 2, bg 12 over
the two images, pi* = 2 / (2 * 14) = 1/14 and bias -log(13). The RPN with allowed_border=0 keeps
only the two anchors centred at (32, 32) (all others cross the border): fg 2, ignored 2, bg 0,
outside 12.

FCOS points, stride 16, offset 0.5: centres 8, 24, 40, 56 per axis; strictly inside (16, 48) are
24 and 40, so 4 of the 16 points per image are foreground: fg 8, bg 24, pi* = 8 / (2 * 32) = 1/8.
"""
import importlib.util
import json
import math
import os
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmdet_imbalance.analysis.imbalance_stats import format_table, get_imbalance_stats
from mmdet_imbalance.engine import SamplingFreePriorHook, resolve_auto_priors

ANCHORS = ("dict(_delete_=True, type='AnchorGenerator', strides=[32], ratios=[1.0], "
           "scales=[1.0, 1.5], base_sizes=[32])")
# A ResNet-18 of width 8 whose FPN keeps only C5 (stride 32, one level), as the anchors need.
SMALL_MODEL = """
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(depth=18, base_channels=8, init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=8, start_level=3, num_outs=1),
"""
DATA = """
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', data_root='{root}/', ann_file='annotations/train.json',
                 data_prefix=dict(img='images/'), metainfo=dict(classes=('a', 'b')),
                 filter_cfg=dict(filter_empty_gt=True, min_size=0), pipeline=train_pipeline))
"""


def write_dataset(root, crowd=True):
    images = [dict(id=1, file_name='a.png', width=64, height=64),
              dict(id=2, file_name='b.png', width=128, height=128),
              dict(id=3, file_name='c.png', width=64, height=64)]
    anns = [dict(id=1, image_id=1, category_id=1, bbox=[16, 16, 32, 32], area=1024, iscrowd=0),
            dict(id=2, image_id=2, category_id=2, bbox=[32, 32, 64, 64], area=4096, iscrowd=0)]
    if crowd:
        anns.append(dict(id=3, image_id=1, category_id=1, bbox=[0, 0, 8, 8], area=64, iscrowd=1))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', 'train.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns,
                       categories=[dict(id=1, name='a'), dict(id=2, name='b')]), f)


def write_config(root, name, body):
    path = osp.join(root, name)
    with open(path, 'w') as f:
        f.write(body + DATA.format(root=root))
    return path


def retina_config(root, head="type='RetinaHead'"):
    return write_config(root, 'retina.py', f"""
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
default_scope = 'mmdet'
model = dict({SMALL_MODEL}
    bbox_head=dict({head}, num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
                   anchor_generator={ANCHORS}))
""")


def faster_config(root):
    return write_config(root, 'faster.py', f"""
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
default_scope = 'mmdet'
model = dict({SMALL_MODEL}
    rpn_head=dict(in_channels=8, feat_channels=8, anchor_generator={ANCHORS}),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=8, featmap_strides=[32]),
        bbox_head=dict(in_channels=8, fc_out_channels=16, num_classes=2)),
    train_cfg=dict(rpn=dict(allowed_border=0)))
""")


def fcos_config(root):
    return write_config(root, 'fcos.py', f"""
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
default_scope = 'mmdet'
model = dict({SMALL_MODEL}
    type='FCOS',
    bbox_head=dict(_delete_=True, type='FCOSHead', num_classes=2, in_channels=8, feat_channels=8,
                   stacked_convs=1, strides=[16], regress_ranges=((-1, 1e8), ), norm_cfg=None),
    train_cfg=None)
""")


@pytest.fixture
def dataset_root(tmp_path):
    root = str(tmp_path / 'toy')
    write_dataset(root)
    return root


def test_retinanet_anchor_counts_match_the_hand_derivation(dataset_root, tmp_path):
    stats = get_imbalance_stats(retina_config(dataset_root), cache_dir=str(tmp_path / 'cache'))
    assert list(stats['stages']) == ['bbox_head']
    entry = stats['stages']['bbox_head']
    counts = entry['counts']
    assert stats['dataset']['num_images'] == 2  # image 3 has no box and is filtered
    assert (counts['images'], counts['fg'], counts['ignored'], counts['bg'], counts['outside']) \
        == (2, 2, 2, 12, 0)
    assert counts['fg_per_class'] == [1, 1]
    assert (counts['gt_boxes'], counts['gt_ignored_boxes']) == (2, 1)  # the crowd box is ignored
    assert entry['num_classes'] == 2
    assert entry['prior'] == pytest.approx(1 / 14)
    assert entry['bias'] == pytest.approx(-math.log(13))
    assert entry['bg_per_fg'] == pytest.approx(6.0)
    table = format_table(stats)
    assert '| RetinaHead anchors | 2 | 1.0 | 6.0 | 1.0 | 0.0 | 6 : 1 | 2 | 0.07143 | -2.565 |' \
        in table


def test_rpn_outside_anchors_and_fcos_points(dataset_root, tmp_path):
    rpn = get_imbalance_stats(faster_config(dataset_root), cache_dir=None)['stages']
    assert list(rpn) == ['rpn_head']  # the RoI stage needs a checkpoint
    counts = rpn['rpn_head']['counts']
    assert (counts['fg'], counts['ignored'], counts['bg'], counts['outside']) == (2, 2, 0, 12)
    assert rpn['rpn_head']['num_classes'] == 1
    # Only foreground left among the non-ignored anchors: pi* = 1 has no finite bias.
    assert rpn['rpn_head']['prior'] == 1.0 and rpn['rpn_head']['bias'] is None

    fcos = get_imbalance_stats(fcos_config(dataset_root), cache_dir=None)['stages']['bbox_head']
    assert fcos['kind'] == 'points'
    assert (fcos['counts']['fg'], fcos['counts']['bg']) == (8, 24)
    assert fcos['counts']['fg_per_class'] == [4, 4]
    assert fcos['prior'] == pytest.approx(1 / 8)


def test_cache_is_read_back_and_keyed_by_the_annotation_file(dataset_root, tmp_path):
    cfg = retina_config(dataset_root)
    cache = str(tmp_path / 'cache')
    first = get_imbalance_stats(cfg, cache_dir=cache)['stages']['bbox_head']
    path = first['cache_file']
    assert osp.dirname(path) == cache and osp.basename(path).startswith('toy-train_bbox_head_')
    # Tamper with the cached counts: a cached read returns them, a recomputation does not.
    with open(path) as f:
        cached = json.load(f)
    cached['counts']['fg'] = 999
    with open(path, 'w') as f:
        json.dump(cached, f)
    assert get_imbalance_stats(cfg, cache_dir=cache)['stages']['bbox_head']['counts']['fg'] == 999
    fresh = get_imbalance_stats(cfg, cache_dir=cache, use_cache=False)['stages']['bbox_head']
    assert fresh['counts']['fg'] == 2 and fresh['key'] == first['key']
    # A changed annotation file (one box fewer: the crowd box) gets a new key and file.
    write_dataset(dataset_root, crowd=False)
    changed = get_imbalance_stats(cfg, cache_dir=cache)['stages']['bbox_head']
    assert changed['key'] != first['key'] and changed['cache_file'] != path
    assert changed['counts']['gt_ignored_boxes'] == 0


def test_random_transforms_do_not_change_the_callers_random_state(dataset_root):
    np.random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.rand(), torch.rand(1).item())
    np.random.seed(123)
    torch.manual_seed(123)
    get_imbalance_stats(retina_config(dataset_root), cache_dir=None)
    assert (np.random.rand(), torch.rand(1).item()) == expected


def test_bad_arguments_name_the_culprit(dataset_root):
    cfg = retina_config(dataset_root)
    with pytest.raises(ValueError, match='rpn_head'):
        get_imbalance_stats(cfg, stages=['rpn_head'], cache_dir=None)
    with pytest.raises(ValueError, match='checkpoint'):
        get_imbalance_stats(faster_config(dataset_root), stages=['roi_head'], cache_dir=None)
    with pytest.raises(ValueError, match='num_images'):
        get_imbalance_stats(cfg, num_images=0, cache_dir=None)


def test_cli_prints_the_table(dataset_root, tmp_path, capsys, repo_root):
    spec = importlib.util.spec_from_file_location(
        'imbalance_stats_cli', osp.join(repo_root, 'tools', 'imbalance_stats.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main([retina_config(dataset_root), '--cache-dir', str(tmp_path / 'cache')])
    out = capsys.readouterr().out
    assert '| stage | images | fg / img |' in out and 'RetinaHead anchors' in out
    assert str(tmp_path / 'cache') in out


def test_roi_candidates_with_a_checkpoint(dataset_root, tmp_path):
    import cv2
    from mmdet.registry import MODELS
    for name, size in (('a.png', 64), ('b.png', 128), ('c.png', 64)):
        os.makedirs(osp.join(dataset_root, 'images'), exist_ok=True)
        cv2.imwrite(osp.join(dataset_root, 'images', name), np.zeros((size, size, 3), np.uint8))
    cfg_path = faster_config(dataset_root)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    entry = get_imbalance_stats(cfg_path, stages=['roi_head'], checkpoint=ckpt,
                                cache_dir=None)['stages']['roi_head']
    counts = entry['counts']
    assert counts['images'] == 2
    # Each image's GT box is appended as a proposal (add_gt_as_proposals) and is foreground;
    # the 0.5/0.5 assigner has no ignore band.
    assert counts['fg'] >= 2 and counts['ignored'] == 0 and counts['bg'] > 0
    assert sum(counts['fg_per_class']) == counts['fg'] and min(counts['fg_per_class']) >= 1


def test_hook_resolves_auto_prior_before_weight_init(dataset_root, tmp_path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(retina_config(
        dataset_root, head="type='SamplingFreeRetinaHead', prior_prob='auto'"))
    model = MODELS.build(cfg.model)
    head = model.bbox_head
    with pytest.raises(ValueError, match='tools/imbalance_stats.py'):
        model.init_weights()
    SamplingFreePriorHook(cache_dir=str(tmp_path / 'cache')).before_run(
        SimpleNamespace(model=model, cfg=cfg))
    assert head.resolved_prior == pytest.approx(1 / 14)
    assert head.test_cfg['score_thr'] == pytest.approx(1 / 14)
    model.init_weights()
    assert torch.allclose(head.retina_cls.bias, torch.full_like(head.retina_cls.bias,
                                                                -math.log(13)))
    # Resolved heads are left alone by a second call.
    assert resolve_auto_priors(model, cfg, cache_dir=str(tmp_path / 'cache')) == {}


def test_hook_class_prior_thresholds(dataset_root, tmp_path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(retina_config(
        dataset_root, head="type='SamplingFreeRetinaHead', prior_prob=0.01, "
                           "score_thr_mode='class_prior'"))
    model = MODELS.build(cfg.model)
    resolved = resolve_auto_priors(model, cfg, cache_dir=str(tmp_path / 'cache'))
    assert list(resolved) == ['bbox_head']
    # A numeric prior stays; the per-class thresholds are N_fg,c / (N_fg + N_bg) = 1/14 each.
    assert model.bbox_head.resolved_prior == 0.01
    assert torch.allclose(model.bbox_head.class_score_thrs, torch.tensor([1 / 14, 1 / 14]))


def test_hook_error_says_what_to_run(tmp_path):
    from mmdet.registry import MODELS
    root = str(tmp_path / 'missing')  # no annotation file there
    cfg = Config.fromfile(retina_config(
        str(tmp_path), head="type='SamplingFreeRetinaHead', prior_prob='auto'"))
    cfg.train_dataloader.dataset.data_root = root + '/'
    model = MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match=r'tools/imbalance_stats\.py <config>'):
        SamplingFreePriorHook(cache_dir=str(tmp_path / 'cache')).before_run(
            SimpleNamespace(model=model, cfg=cfg))

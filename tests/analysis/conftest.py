"""The constructed COCO dataset and toy configs of the imbalance statistics tests, whose anchor
and point counts are derived by hand below.

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

Tests get it as the ``toy`` fixture: ``toy.root``, ``toy.retina_config(head=...)``,
``toy.faster_config()``, ``toy.fcos_config()``, ``toy.write_dataset(crowd=...)`` and
``toy.write_images()`` (the RoI stage runs a network on real image files).
"""
import json
import os
import os.path as osp
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest

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
IMAGE_SIZES = (('a.png', 64), ('b.png', 128), ('c.png', 64))


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


def write_images(root):
    import cv2
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    for name, size in IMAGE_SIZES:
        cv2.imwrite(osp.join(root, 'images', name), np.zeros((size, size, 3), np.uint8))


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
def toy(tmp_path):
    root = str(tmp_path / 'toy')
    write_dataset(root)
    return SimpleNamespace(
        root=root, retina_config=partial(retina_config, root),
        faster_config=partial(faster_config, root), fcos_config=partial(fcos_config, root),
        write_dataset=partial(write_dataset, root), write_images=partial(write_images, root))

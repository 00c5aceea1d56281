# Beyond the review, at CPU scale: the ATSS baseline of the RS-ATSS and GFL rows on the mini recipe.
# The backbone, neck, data and schedule are retinanet_mini.py's; the RetinaNet head, assigner and
# test NMS are replaced by mmdet's stock ATSS ones (configs/table1/atss_r50_fpn_1x_coco.py:
# ATSSHead with FocalLoss gamma 2 alpha 0.25, GIoU x 2 on decoded boxes, centerness, 1 anchor of
# 8 strides per location, ATSSAssigner topk 9, test NMS 0.6, GroupNorm towers as the head's stock
# default), with 64 channels and 2 convs per tower like the mini RetinaNet. The neck keeps
# RetinaNet's extra levels (convs on the C5 input) instead of ATSS's P5 output convs.
_base_ = './retinanet_mini.py'

model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes=3,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=8,
            scales_per_octave=1,
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(assigner=dict(_delete_=True, type='ATSSAssigner', topk=9)),
    test_cfg=dict(nms=dict(iou_threshold=0.6)))

# Beyond the review, at CPU scale: "Quality Focal Loss (GFL)" on the mini recipe. The backbone,
# neck, data and schedule are retinanet_mini.py's; the head, assigner and test NMS are mmdet's stock
# GFL ones (configs/table1/gfl_r50_fpn_1x_coco.py: GFLHead with QualityFocalLoss beta 2,
# DistributionFocalLoss x 0.25, reg_max 16, GIoU x 2, 1 anchor of 8 strides per location,
# ATSSAssigner topk 9, test NMS 0.6, GroupNorm towers as the head's stock default), with 64
# channels and 2 convs per tower, as configs/mini/atss_mini.py, the row it is compared with.
_base_ = './retinanet_mini.py'

model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
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
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(assigner=dict(_delete_=True, type='ATSSAssigner', topk=9)),
    test_cfg=dict(nms=dict(iou_threshold=0.6)))

# Beyond the review, at CPU scale: the FCOS Focal Loss baseline on the mini recipe. The backbone,
# neck, data and schedule are retinanet_mini.py's; the RetinaNet head is replaced by mmdet's stock
# FCOSHead with the settings of configs/table1/fcos_r50_fpn_1x_coco.py (FocalLoss gamma 2 alpha
# 0.25, IoU loss, centerness, GN towers, prior 0.01, test score_thr 0.05 / NMS 0.5 / 100 dets),
# 64 channels and 2 convs per tower like the mini RetinaNet. The neck keeps RetinaNet's extra levels
# (convs on the C5 input) instead of FCOS's P5 output convs.
_base_ = './retinanet_mini.py'

model = dict(
    type='FCOS',
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=3,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[8, 16, 32, 64, 128],
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=None,
    test_cfg=dict(
        _delete_=True,
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))
# The stock FCOS config clips gradients at max_norm 35; the RetinaNet-based mini recipe does not.
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))

# Mini (CPU-scale) counterpart of configs/table1/retinanet_r50_fpn_1x_coco_alrp-loss.py, with the
# same delta (that file gives the sources): ALRPLossRetinaHead with ALRPLoss(delta=1.0), GIoU
# localisation errors on decoded boxes, self-balance from 50 recomputed every epoch of the mini
# dataloader (ALRPSelfBalanceHook), 6 anchors per location, DeltaXYWH stds (0.1, 0.1, 0.2, 0.2).
_base_ = './retinanet_mini.py'

model = dict(
    bbox_head=dict(
        type='ALRPLossRetinaHead',
        sb_init=50.0,
        anchor_generator=dict(scales_per_octave=2),
        reg_decoded_bbox=True,
        bbox_coder=dict(target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(_delete_=True, type='ALRPLoss', delta=1.0, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=1.0)))
custom_hooks = _base_.custom_hooks + [dict(type='ALRPSelfBalanceHook')]

# Beyond the review: "aLRP Loss (RetinaNet)" (Oksuz et al., NeurIPS 2020; 39.0 AP minival at 500 px,
# 100 epochs in the aLRPLoss repo; docs/methods/alrp-loss.md). Deltas on the RetinaNet baseline:
# - ALRPLossRetinaHead: ALRPLoss(delta=1.0) on every (anchor, class) logit of the batch, with the
#   GIoU of each positive's decoded box as its localisation error; loss_bbox = SB x the
#   localisation component, SB starting at 50 and recomputed every epoch of the dataloader
#   (ALRPSelfBalanceHook; the reference hard-codes one COCO epoch at batch 32).
# - As the official alrp_loss_retinanet_r50_fpn_100e_coco500.py: 6 anchors per location
#   (scales_per_octave 2), GIoU on decoded boxes, DeltaXYWH stds (0.1, 0.1, 0.2, 0.2).
# Kept from the baseline: MaxIoUAssigner 0.5/0.4, 800 px, lr 0.01 for batch 16, 12 epochs. The
# published 39.0 is the paper's 500 px, 100-epoch SSD-style recipe (lr 0.008 at batch 32); no 1x
# recipe exists, so the row measures the loss swap on the baseline's schedule, as the AP Loss row.
_base_ = './retinanet_r50_fpn_1x_coco.py'

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

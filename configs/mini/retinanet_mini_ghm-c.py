# Mini (CPU-scale) counterpart of configs/table1/retinanet_r50_fpn_1x_coco_ghm-c.py: the same delta,
# GHMC(bins=30, momentum=0.75) instead of Focal Loss, biased init and L1 regression kept, and GHM's
# own gradient clip at max_norm 35 from its stock config (docs/methods/ghm-c.md).
_base_ = './retinanet_mini.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))

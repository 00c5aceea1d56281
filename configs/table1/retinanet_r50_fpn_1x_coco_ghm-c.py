# Table 1 row "GHM-C / RetinaNet" (docs/methods/ghm-c.md): GHMC(bins=30, momentum=0.75) replaces
# Focal Loss; nothing else changes.
# - Biased initialisation kept: RetinaHead's retina_cls bias stays at prior 0.01, as in the review.
# - Regression stays the baseline's L1Loss: no GHM-R (that is the zoo-check row
#   configs/zoo/retinanet_r50_fpn_ghm-1x_coco.py).
# - No gradient clipping. The zoo GHM config adds clip_grad(max_norm=35), a leftover of mmdet
#   v0/v1, where every config (the Focal Loss baseline too) clipped at 35. The mmdet 3.3 RetinaNet
#   baseline does not clip, so clipping here would add an optimiser change to the loss change;
#   the row keeps the baseline's optimiser so that its delta is the loss alone.
# - As in the zoo config, mmdet's AnchorHead calls the loss once per FPN level, so GHMC estimates
#   the gradient density per level, with one momentum buffer shared by the levels.
_base_ = './retinanet_r50_fpn_1x_coco.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)))

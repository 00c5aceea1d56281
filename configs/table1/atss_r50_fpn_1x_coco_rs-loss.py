# Beyond the review: "RS Loss (ATSS)", Rank & Sort Loss (Oksuz et al., ICCV 2021; 39.9 AP in the
# RankSortLoss repo; docs/methods/rs-loss.md). Deltas on the ATSS baseline, as the official
# ranksort_atss_r50_fpn_1x_coco.py:
# - RankSortATSSHead: ATSS towers without the centerness branch, RankSortLoss(delta=0.5) on every
#   (anchor, class) logit of the batch with IoU labels, score-weighted GIoU self-balanced to
#   loss_rank + loss_sort every iteration (so GIoU's loss_weight has no effect and stays stock).
# - 3 anchors per location (octave_base_scale 4, scales_per_octave 3) instead of ATSS's 1.
# - lr 0.008 for batch 16 (the official recipe; the baseline's 0.01 is tuned for Focal Loss).
# Kept: ATSSAssigner(topk 9), DeltaXYWH stds (0.1, 0.1, 0.2, 0.2), 800 px, 12 epochs, test NMS 0.6.
_base_ = './atss_r50_fpn_1x_coco.py'

model = dict(
    bbox_head=dict(
        type='RankSortATSSHead',
        anchor_generator=dict(octave_base_scale=4, scales_per_octave=3),
        loss_cls=dict(_delete_=True, type='RankSortLoss', delta=0.5, loss_weight=1.0)))
optim_wrapper = dict(optimizer=dict(lr=0.008))

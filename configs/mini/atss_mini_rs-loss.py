# Mini (CPU-scale) counterpart of configs/table1/atss_r50_fpn_1x_coco_rs-loss.py, with the same
# head delta (that file gives the sources): RankSortATSSHead (no centerness, RankSortLoss(delta=0.5)
# with IoU labels over all levels and images, self-balanced score-weighted GIoU) and 3 anchors per
# location. The lr stays the mini recipe's (its AdamW schedule is shared by every mini row).
_base_ = './atss_mini.py'

model = dict(
    bbox_head=dict(
        type='RankSortATSSHead',
        anchor_generator=dict(octave_base_scale=4, scales_per_octave=3),
        loss_cls=dict(_delete_=True, type='RankSortLoss', delta=0.5, loss_weight=1.0)))

# Mini (CPU-scale) counterpart of configs/table1/atss_r50_fpn_1x_coco_rs-loss.py, with the same
# head delta (that file gives the sources): RankSortATSSHead (no centerness, RankSortLoss(delta=0.5)
# with IoU labels over all levels and images, self-balanced score-weighted GIoU) and 3 anchors per
# location. The official recipe trains at lr 0.008 where ATSS takes 0.01; the row scales the mini
# recipe's AdamW lr (2e-3, _base_/schedule_mini.py) by the same 0.8.
_base_ = './atss_mini.py'

model = dict(
    bbox_head=dict(
        type='RankSortATSSHead',
        anchor_generator=dict(octave_base_scale=4, scales_per_octave=3),
        loss_cls=dict(_delete_=True, type='RankSortLoss', delta=0.5, loss_weight=1.0)))
optim_wrapper = dict(optimizer=dict(lr=1.6e-3))

# Beyond the review, at CPU scale: mini counterpart of
# configs/table1/fcos_r50_fpn_1x_coco_sampling-free.py with the same deltas (that file gives the
# sources): SamplingFreeFCOSHead (plain sigmoid CE / N_pos, guided by the box loss, s = 1), prior
# 1e-4 and test score_thr 1e-3 as in the 2021 recipe (docs/methods/sampling-free.md §6).
_base_ = './fcos_mini.py'

model = dict(
    bbox_head=dict(
        type='SamplingFreeFCOSHead',
        prior_prob=1e-4,
        guided_scale=1.0,
        loss_cls=dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(score_thr=1e-3))

# Mini (CPU-scale) counterpart of configs/table1/retinanet_r50_fpn_1x_coco_sampling-free.py, with
# the same deltas (that file gives the sources), except that the prior is measured on the training
# set: prior_prob='auto' takes pi* = N_fg / (C (N_fg + N_bg)) over the RetinaNet anchors of the
# config's own train pipeline (docs/methods/sampling-free.md §2). SamplingFreePriorHook computes
# it on first use (cached in work_dirs/imbalance_stats/, see tools/imbalance_stats.py) before the
# weights are initialised; the test threshold follows it.
_base_ = './retinanet_mini.py'

model = dict(
    bbox_head=dict(
        type='SamplingFreeRetinaHead',
        prior_prob='auto',
        guided_scale=1.0,
        score_thr_mode='prior',
        bbox_coder=dict(target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))
custom_hooks = _base_.custom_hooks + [dict(type='SamplingFreePriorHook')]

# Mini (CPU-scale) counterpart of configs/table1/faster-rcnn_r50_fpn_1x_coco_sampling-free.py, with
# the same deltas (that file gives the sources), except that the RPN prior is measured on the
# training set: prior_prob='auto' takes pi* = N_fg / (N_fg + N_bg) over the RPN anchors inside the
# image (allowed_border=0) of the config's own train pipeline (docs/methods/sampling-free.md
# §2, §7).
# SamplingFreePriorHook computes it on first use (cached in work_dirs/imbalance_stats/, see
# tools/imbalance_stats.py) before the weights are initialised.
_base_ = './faster-rcnn_mini.py'

model = dict(
    rpn_head=dict(
        type='SamplingFreeRPNHead',
        prior_prob='auto',
        guided_scale=1.0,
        loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=0.5)),
    roi_head=dict(
        bbox_head=dict(
            type='SamplingFreeBBoxHead',
            guided_scale=2.0,
            loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(sampler=None, allowed_border=0),
        rcnn=dict(sampler=dict(_delete_=True, type='AllSampler', add_gt_as_proposals=True))),
    test_cfg=dict(rcnn=dict(score_thr=0.001)))
custom_hooks = _base_.custom_hooks + [dict(type='SamplingFreePriorHook')]

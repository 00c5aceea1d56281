# Table 1 row "Sampling-Free / Faster R-CNN" (Chen et al., arXiv 1909.04868; review 38.4 AP).
# Follows the Dec-2019 release that produced the Table 1 number (docs/methods/sampling-free.md §1,
# recipe §5).
# Deltas on the Biased Sampling baseline:
# - RPN: SamplingFreeRPNHead with no sampler (all valid anchors; border-crossing anchors ignored,
#   allowed_border=0 = the reference's STRADDLE_THRESH 0), objectness bias from the paper's COCO
#   prior pi = 1.70879e-4 (§2), guided loss s = 1, box loss 0.5 x smooth-L1 (beta 1/9) averaged
#   over positives and coordinates.
# - RoI head: AllSampler (every proposal plus the GT boxes instead of 512 at 1:3), softmax CE,
#   SamplingFreeBBoxHead with smooth-L1 (beta 1) averaged over positives and coordinates and the
#   guided loss with s = 2 (§3); classifier init unchanged; test score_thr 0.001 (§4).
# Kept from the baseline: anchors, assigners (0.7/0.3 and 0.5/0.5), proposal settings (2000 pre-NMS,
# NMS 0.7, 1000 per image), lr 0.02 for batch 16, 12 epochs.
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    rpn_head=dict(
        type='SamplingFreeRPNHead',
        prior_prob=1.70879e-4,
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

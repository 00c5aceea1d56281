# Table 1 row "ResObj" (Residual Objectness, Chen et al., arXiv 1908.09075 / PR 2022;
# docs/methods/resobj.md), following the released code (chenjoya/resobj @ 15da804,
# resobj_retinanet_R_50_FPN_1x.py). Deltas on the Focal Loss baseline:
# - ResObjRetinaHead: an objectness estimator plus num_stages=1 residual stage on the
#   classification tower, summed in logit space; every objectness score conv starts at prior
#   0.001 (initial objectness about 1e-6); class logits start at prior 1/K (cls_prior_prob=None).
# - ResObjLoss replaces Focal Loss: plain BCE objectness over all valid anchors (x1/20) and sigmoid
#   BCE over the K classes of positive anchors only (x1/10), normalised like the box loss by
#   detectron2's EMA of num_pos (initial 100, momentum 0.9, three updates per iteration).
# - Test score = sigmoid(obj) * sigmoid(cls), fused before the stock top-k / score_thr / NMS.
# Already equal to the released recipe in the baseline: L1 box loss (smooth-L1 beta 0), box coder
# stds 1, assigner 0.5/0.4 with low-quality matches, test score_thr 0.05, 1000 per level, NMS 0.5,
# 100 detections. Kept from mmdet: lr 0.01 for batch 16, 12 epochs, mmdet's augmentation.
_base_ = './retinanet_r50_fpn_1x_coco.py'

model = dict(
    bbox_head=dict(
        type='ResObjRetinaHead',
        num_stages=1,
        obj_prior_prob=0.001,
        cls_prior_prob=None,
        loss_cls=dict(
            _delete_=True, type='ResObjLoss', obj_weight=1 / 20, cls_weight=1 / 10,
            ema_momentum=0.9, ema_init=100.0)))

# Table 1 row "ISR / Faster R-CNN": PISA's importance-based sample reweighting without CARL
# (docs/methods/isr.md). PISARoIHead applies ISR-P (train_cfg.rcnn.isr, k=2, bias=0: positives
# reweighted by IoU-HLR) and ScoreHLRSampler applies ISR-N (k=0.5, bias=0: negatives sampled and
# weighted by Score-HLR; score_thr=0.05 and iou_thr=0.5 stay at their defaults). num=512,
# pos_fraction=0.25, neg_pos_ub=-1 and add_gt_as_proposals are merged from the baseline sampler.
# Left out on purpose (all in the zoo-check row configs/zoo/faster-rcnn_r50_fpn_pisa_1x_coco.py):
# - train_cfg.rcnn.carl is unset, so PISARoIHead skips CARL and emits no loss_carl;
# - rpn_proposal / test rpn stay at the baseline's 1000 proposals (PISA uses 2000);
# - the RoI bbox loss stays the baseline's L1Loss. PISA's SmoothL1Loss(beta=1.0) is not needed:
#   isr_p uses only the head's loss_cls and bbox_coder, and loss_bbox is read only by CARL.
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    roi_head=dict(type='PISARoIHead'),
    train_cfg=dict(
        rcnn=dict(sampler=dict(type='ScoreHLRSampler', k=0.5, bias=0.), isr=dict(k=2., bias=0.))))

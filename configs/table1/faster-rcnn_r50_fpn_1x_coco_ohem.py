# Table 1 row "OHEM / Faster R-CNN" (docs/methods/ohem.md): the stock mmdet OHEMSampler replaces the
# baseline's RandomSampler in the RoI head only. It keeps the baseline's 512 RoIs per image at
# pos_fraction 0.25 and mines both positives and negatives by their per-RoI classification loss
# (the RoI head is passed in as the sampler's context). The RPN keeps its RandomSampler.
# Same as mmdet::faster_rcnn/faster-rcnn_r50_fpn_ohem_1x_coco.py (no zoo checkpoint in 3.3).
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'

model = dict(train_cfg=dict(rcnn=dict(sampler=dict(type='OHEMSampler'))))

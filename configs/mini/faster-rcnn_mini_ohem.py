# Mini (CPU-scale) counterpart of configs/table1/faster-rcnn_r50_fpn_1x_coco_ohem.py: the same
# delta, the stock OHEMSampler in the RoI head, on the mini Faster R-CNN baseline
# (docs/methods/ohem.md §4).
_base_ = './faster-rcnn_mini.py'

model = dict(train_cfg=dict(rcnn=dict(sampler=dict(type='OHEMSampler'))))

# Table 1 baseline "Biased Sampling / Faster R-CNN" at CPU scale. The model is mmdet's stock Faster
# R-CNN (faster-rcnn_r50_fpn.py: RPN RandomSampler 256 at 1:1, RoI RandomSampler 512 at 1:3,
# MaxIoUAssigners 0.7/0.3 and 0.5/0.5, CE + L1, test score_thr 0.05 / NMS 0.5 / 100 dets), only
# narrower: a half-width ResNet-18 trained from scratch, a 64-channel FPN, a 256-d two-fc box head.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/datasets/trees.py',
    './_base_/schedule_mini.py',
    './_base_/runtime_mini.py',
]

# BoxFilterDetDataPreprocessor: the stock one plus the removal of GT boxes under 1 px.
model = dict(
    data_preprocessor=dict(type='BoxFilterDetDataPreprocessor'),
    backbone=dict(depth=18, base_channels=32, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=1)))

# Table 1 baseline "Focal Loss / RetinaNet" at CPU scale. The model is mmdet's stock RetinaNet
# (retinanet_r50_fpn.py: FocalLoss(gamma=2, alpha=0.25), MaxIoUAssigner 0.5/0.4, PseudoSampler, L1,
# prior 0.01, test score_thr 0.05 / NMS 0.5 / 100 dets, frozen-BN backbone, no norm in FPN and
# head), only narrower and shallower: the pretrained half-width ResNet-18 of the mini recipe
# (_base_/recipe_mini.py), a 64-channel FPN and 2 convs per head tower. The anchors start at 24 px
# (octave_base_scale 3 instead of 4) because the embedded objects are small (16-56 px on shapes, a
# median of 36 px on trees), and a 32 px anchor cannot match a 20 px object at IoU 0.4.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/datasets/shapes.py',
    './_base_/recipe_mini.py',
    './_base_/schedule_mini.py',
    './_base_/runtime_mini.py',
]

# BoxFilterDetDataPreprocessor: the stock one plus the removal of GT boxes under 1 px.
model = dict(
    data_preprocessor=dict(type='BoxFilterDetDataPreprocessor'),
    backbone={{_base_.mini_backbone}},
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    bbox_head=dict(
        num_classes=3,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        anchor_generator=dict(octave_base_scale=3)))

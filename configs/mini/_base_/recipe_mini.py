# The mini backbone, shared by every mini row: mmdet's ResNet at depth 18 and half width (32 base
# channels), pretrained with BatchNorm on the shapes pretext task (tools/pretrain_backbone.py;
# docs/calibration.md, "The pretrained backbone"), the stand-in for the ImageNet-pretrained
# ResNet-50 of every COCO row. Everything else about it is the stock regime of the COCO rows,
# inherited from the mmdet bases: BatchNorm frozen (norm_eval=True), stem and first stage frozen
# (frozen_stages=1); FPN, RetinaNet and RPN heads have no norm. The file name carries the first 8
# hex digits of its sha256, which 'CheckedPretrained' checks before loading
# (mmdet_imbalance/models/backbone_init.py).
mini_pretrained = 'checkpoints/resnet18-w32_bn_shapes-pretext-1d3a5857.pth'
mini_backbone = dict(
    depth=18,
    base_channels=32,
    init_cfg=dict(type='CheckedPretrained', checkpoint=mini_pretrained, prefix='backbone.'))
# Bumped with every change of the mini recipe: records of another version never mix into a table.
mini_recipe_version = 5

# Beyond the review: "Quality Focal Loss (GFL)", quality-aware soft sampling: the stock mmdet 3.3
# GFL R50-FPN 1x (Li et al., NeurIPS 2020; zoo 40.2 AP; docs/methods/gfl.md): the ATSS detector
# with the classification score trained towards the IoU of the predicted box (QualityFocalLoss,
# beta 2), a general distribution of box offsets (DistributionFocalLoss x 0.25, reg_max 16) and no
# centerness. Compared with the ATSS row (configs/table1/atss_r50_fpn_1x_coco.py).
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'
# Stock DetDataPreprocessor plus the removal of GT boxes under 1 px (as COCO's loader does).
model = dict(data_preprocessor=dict(type='BoxFilterDetDataPreprocessor'))
# mmdet's CocoDataset, plus a warning that counts, per reason and once per file, the annotations it
# drops (degenerate, non-finite, outside the image, unknown category) instead of dropping them in
# silence (mmdet_imbalance/datasets/checked_coco.py).
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
# mmdet's CocoDataset, plus a warning that counts the annotations it drops, as every COCO baseline
# (mmdet_imbalance/datasets/checked_coco.py).
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

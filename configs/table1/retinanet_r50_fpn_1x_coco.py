# Table 1 baseline "Focal Loss / RetinaNet": the stock mmdet 3.3 RetinaNet R50-FPN 1x (zoo 36.5 AP),
# FocalLoss(gamma=2, alpha=0.25) with a PseudoSampler. Every RetinaNet row is a delta on this file.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'
# Stock DetDataPreprocessor plus the removal of GT boxes under 1 px (as COCO's loader does), so
# that no row meets the -inf regression target of a zero-width box.
model = dict(data_preprocessor=dict(type='BoxFilterDetDataPreprocessor'))
# mmdet's CocoDataset, plus a warning that counts, per reason and once per file, the annotations it
# drops (degenerate, non-finite, outside the image, unknown category) instead of dropping them in
# silence (mmdet_imbalance/datasets/checked_coco.py).
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

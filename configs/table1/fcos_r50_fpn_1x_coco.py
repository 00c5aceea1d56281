# Beyond the review: the anchor-free baseline "Focal Loss / FCOS" for the Sampling-Free FCOS row:
# the stock mmdet 3.3 FCOS R50-caffe-FPN GN-head 1x (FocalLoss gamma 2 alpha 0.25, IoU loss,
# centerness, prior 0.01, test score_thr 0.05). Every FCOS row is a delta on this file.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'
# mmdet's CocoDataset, plus a warning that counts, per reason and once per file, the annotations it
# drops (degenerate, non-finite, outside the image, unknown category) instead of dropping them in
# silence (mmdet_imbalance/datasets/checked_coco.py).
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

# Zoo-check row, not a Table 1 row: the full mmdet Libra R-CNN bundle, unchanged, for a one-to-one
# comparison with the mmdet 3.3 model zoo (38.3 AP): IoU-balanced sampling + BFP neck + Balanced L1
# loss + rpn neg_pos_ub=5. The Table 1 row with the sampler alone is
# configs/table1/faster-rcnn_r50_fpn_1x_coco_iou-balanced.py.
# Only the plugin import and the Table 1 hook are added.
_base_ = 'mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'

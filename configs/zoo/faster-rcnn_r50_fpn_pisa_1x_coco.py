# Zoo-check row, not a Table 1 row: the full mmdet PISA bundle, unchanged, for a one-to-one
# comparison with the mmdet 3.3 model zoo (38.4 AP): ISR-P + ISR-N + CARL + SmoothL1 bbox loss +
# 2000 proposals. The Table 1 row with ISR alone is
# configs/table1/faster-rcnn_r50_fpn_1x_coco_isr.py.
# Only the plugin import and the Table 1 hook are added.
_base_ = 'mmdet::pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'

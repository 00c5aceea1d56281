# Zoo-check row, not a Table 1 row: the full mmdet GHM bundle, unchanged, for a one-to-one
# comparison with the mmdet 3.3 model zoo (37.0 AP): GHM-C + GHM-R + gradient clipping at
# max_norm 35. The Table 1 row with GHM-C alone is
# configs/table1/retinanet_r50_fpn_1x_coco_ghm-c.py.
# Only the plugin import and the Table 1 hook are added.
_base_ = 'mmdet::ghm/retinanet_r50_fpn_ghm-1x_coco.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'

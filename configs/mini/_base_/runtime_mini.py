# mmdet's default runtime, tuned for short CPU runs: logs every 10 iterations with a matching
# smoothing window, a resumable checkpoint every 50 iterations (only the last kept), a fixed seed.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['mmdet_imbalance'], allow_failed_imports=False)
custom_hooks = [dict(type='ImbalanceTableHook')]
# mmdet's own train script (mim train mmdet ...) builds this Runner, which can --resume our
# checkpoints on torch >= 2.6 (mmdet_imbalance/engine/checkpoint_loading.py).
runner_type = 'mmdet.OwnCheckpointRunner'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=50, max_keep_ckpts=1,
                    save_last=True),
    visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False)

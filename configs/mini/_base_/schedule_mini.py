# The CPU-scale recipe shared by every mini row: from scratch (no weights can be downloaded), so
# AdamW with a short linear warm-up and a cosine decay, iteration-based, evaluated once at the end.
max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    # From-scratch training with AdamW occasionally spikes in the first iterations.
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, eta_min=2e-5),
]
auto_scale_lr = dict(enable=False, base_batch_size=4)

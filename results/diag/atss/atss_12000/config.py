auto_scale_lr = dict(base_batch_size=4, enable=False)
backend_args = None
custom_hooks = [
    dict(type='ImbalanceTableHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'mmdet_imbalance',
    ])
data_root = 'data/shapes/'
dataset_type = 'EmbeddedCocoDataset'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmdet',
        by_epoch=False,
        interval=50,
        max_keep_ckpts=1,
        save_last=True,
        type='CheckpointHook'),
    logger=dict(_scope_='mmdet', interval=10, type='LoggerHook'),
    param_scheduler=dict(_scope_='mmdet', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmdet', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmdet', type='IterTimerHook'),
    visualization=dict(
        _scope_='mmdet', draw=False, type='DetVisualizationHook'))
default_scope = 'mmdet'
embedded = 'shapes'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
launcher = 'none'
load_from = None
log_level = 'INFO'
log_processor = dict(
    _scope_='mmdet', by_epoch=False, type='LogProcessor', window_size=10)
max_iters = 3000
metainfo = dict(classes=(
    'circle',
    'square',
    'triangle',
))
mini_backbone = dict(
    base_channels=32,
    depth=18,
    init_cfg=dict(
        checkpoint='checkpoints/resnet18-w32_bn_shapes-pretext-1d3a5857.pth',
        prefix='backbone.',
        type='CheckedPretrained'))
mini_pretrained = 'checkpoints/resnet18-w32_bn_shapes-pretext-1d3a5857.pth'
mini_recipe_version = 5
model = dict(
    _scope_='mmdet',
    backbone=dict(
        base_channels=32,
        depth=18,
        frozen_stages=1,
        init_cfg=dict(
            checkpoint=
            'checkpoints/resnet18-w32_bn_shapes-pretext-1d3a5857.pth',
            prefix='backbone.',
            type='CheckedPretrained'),
        norm_cfg=dict(requires_grad=True, type='BN'),
        norm_eval=True,
        num_stages=4,
        out_indices=(
            0,
            1,
            2,
            3,
        ),
        style='pytorch',
        type='ResNet'),
    bbox_head=dict(
        anchor_generator=dict(
            octave_base_scale=8,
            ratios=[
                1.0,
            ],
            scales_per_octave=1,
            strides=[
                8,
                16,
                32,
                64,
                128,
            ],
            type='AnchorGenerator'),
        bbox_coder=dict(
            target_means=[
                0.0,
                0.0,
                0.0,
                0.0,
            ],
            target_stds=[
                0.1,
                0.1,
                0.2,
                0.2,
            ],
            type='DeltaXYWHBBoxCoder'),
        feat_channels=64,
        in_channels=64,
        loss_bbox=dict(loss_weight=2.0, type='GIoULoss'),
        loss_centerness=dict(
            loss_weight=1.0, type='CrossEntropyLoss', use_sigmoid=True),
        loss_cls=dict(
            alpha=0.25,
            gamma=2.0,
            loss_weight=1.0,
            type='FocalLoss',
            use_sigmoid=True),
        num_classes=3,
        stacked_convs=2,
        type='ATSSHead'),
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[
            123.675,
            116.28,
            103.53,
        ],
        pad_size_divisor=32,
        std=[
            58.395,
            57.12,
            57.375,
        ],
        type='BoxFilterDetDataPreprocessor'),
    neck=dict(
        add_extra_convs='on_input',
        in_channels=[
            32,
            64,
            128,
            256,
        ],
        num_outs=5,
        out_channels=64,
        start_level=1,
        type='FPN'),
    test_cfg=dict(
        max_per_img=100,
        min_bbox_size=0,
        nms=dict(iou_threshold=0.6, type='nms'),
        nms_pre=1000,
        score_thr=0.05),
    train_cfg=dict(
        allowed_border=-1,
        assigner=dict(topk=9, type='ATSSAssigner'),
        debug=False,
        pos_weight=-1,
        sampler=dict(type='PseudoSampler')),
    type='ATSS')
optim_wrapper = dict(
    optimizer=dict(fused=True, lr=0.002, type='AdamW', weight_decay=0.05),
    type='CPUAutocastOptimWrapper')
param_scheduler = [
    dict(begin=0, by_epoch=False, end=60, start_factor=0.01, type='LinearLR'),
    dict(
        begin=0,
        by_epoch=False,
        end=12000,
        eta_min_ratio=0.01,
        type='CosineAnnealingLR'),
]
randomness = dict(seed=0)
resume = False
runner_type = 'mmdet.OwnCheckpointRunner'
test_cfg = dict(type='TestLoop')
test_dataloader = dict(
    batch_size=1,
    dataset=dict(
        ann_file='annotations/instances_val.json',
        backend_args=None,
        data_prefix=dict(img='images/'),
        data_root='data/shapes/',
        embedded='shapes',
        metainfo=dict(classes=(
            'circle',
            'square',
            'triangle',
        )),
        pipeline=[
            dict(backend_args=None, type='LoadImageFromFile'),
            dict(keep_ratio=True, scale_factor=1.0, type='Resize'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(
                meta_keys=(
                    'img_id',
                    'img_path',
                    'ori_shape',
                    'img_shape',
                    'scale_factor',
                ),
                type='PackDetInputs'),
        ],
        test_mode=True,
        type='EmbeddedCocoDataset'),
    drop_last=False,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    ann_file='data/shapes/annotations/instances_val.json',
    backend_args=None,
    format_only=False,
    metric='bbox',
    type='CocoMetric')
test_pipeline = [
    dict(backend_args=None, type='LoadImageFromFile'),
    dict(keep_ratio=True, scale_factor=1.0, type='Resize'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
        ),
        type='PackDetInputs'),
]
train_cfg = dict(
    max_iters=12000, type='IterBasedTrainLoop', val_interval=12000)
train_dataloader = dict(
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    batch_size=4,
    dataset=dict(
        ann_file='annotations/instances_train.json',
        backend_args=None,
        data_prefix=dict(img='images/'),
        data_root='data/shapes/',
        embedded='shapes',
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        metainfo=dict(classes=(
            'circle',
            'square',
            'triangle',
        )),
        pipeline=[
            dict(backend_args=None, type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(
                direction=[
                    'horizontal',
                    'vertical',
                ],
                prob=[
                    0.25,
                    0.25,
                ],
                type='RandomFlip'),
            dict(type='PackDetInputs'),
        ],
        type='EmbeddedCocoDataset'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=True, type='InfiniteSampler'))
train_pipeline = [
    dict(backend_args=None, type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        direction=[
            'horizontal',
            'vertical',
        ],
        prob=[
            0.25,
            0.25,
        ],
        type='RandomFlip'),
    dict(type='PackDetInputs'),
]
val_cfg = dict(type='ValLoop')
val_dataloader = dict(
    batch_size=1,
    dataset=dict(
        ann_file='annotations/instances_val.json',
        backend_args=None,
        data_prefix=dict(img='images/'),
        data_root='data/shapes/',
        embedded='shapes',
        metainfo=dict(classes=(
            'circle',
            'square',
            'triangle',
        )),
        pipeline=[
            dict(backend_args=None, type='LoadImageFromFile'),
            dict(keep_ratio=True, scale_factor=1.0, type='Resize'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(
                meta_keys=(
                    'img_id',
                    'img_path',
                    'ori_shape',
                    'img_shape',
                    'scale_factor',
                ),
                type='PackDetInputs'),
        ],
        test_mode=True,
        type='EmbeddedCocoDataset'),
    drop_last=False,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    ann_file='data/shapes/annotations/instances_val.json',
    backend_args=None,
    format_only=False,
    metric='bbox',
    type='CocoMetric')
vis_backends = [
    dict(_scope_='mmdet', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmdet',
    name='visualizer',
    type='DetLocalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = '/work/run/work_dirs/diag/atss_12000'

# trees: NEON aerial tiles with tree-crown boxes from the deepforest wheel, prepared under
# data/trees on first use (mmdet_imbalance/datasets/trees.py). One class; tiles of about 400 px
# at the native 10 cm ground sampling distance, which is kept (scale_factor=1): crowns are
# 8-107 px, median 36.
dataset_type = 'EmbeddedCocoDataset'
embedded = 'trees'
data_root = 'data/trees/'
metainfo = dict(classes=('tree', ))
backend_args = None

# Aerial views have no canonical orientation, so all flips are label-preserving augmentations.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=(400, 400), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(320, 320), allow_negative_crop=False),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical',
                                                                'diagonal']),
    dict(type='PhotoMetricDistortion', brightness_delta=24, contrast_range=(0.8, 1.2),
         saturation_range=(0.8, 1.2), hue_delta=8),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# Data loading stays in the main process: on 2 cores a worker process competes with the training
# threads and left each iteration waiting ~0.2 s for data (0.56 s/iter), while loading inline costs
# ~10 ms per image (0.22 s/iter in all for RetinaNet).
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    # An endless sampler: mmengine's iteration loop sleeps 2 s at every epoch boundary, which on
    # the 38 trees training tiles (9 batches) would add 0.2 s to every iteration.
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        embedded=embedded,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        embedded=embedded,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

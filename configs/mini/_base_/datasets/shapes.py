# shapes: generated circles, squares and triangles (16-56 px) among filled look-alike distractors
# on cluttered 256 px canvases (mmdet_imbalance/datasets/shapes.py); prepared under data/shapes on
# first use. The whole canvas is the input (no resize or crop) and flips are the only augmentation:
# a mini run sees each canvas 2.4 times, too few to overfit, and photometric changes left AP where
# it was (docs/calibration.md, recipe v4).
_base_ = './trees.py'

embedded = 'shapes'
data_root = 'data/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(embedded=embedded, data_root=data_root, metainfo=metainfo,
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(embedded=embedded, data_root=data_root, metainfo=metainfo,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

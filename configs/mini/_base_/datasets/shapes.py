# shapes: generated circles, squares and triangles (16-64 px) on cluttered 384 px canvases, about
# 1000 RetinaNet negatives per positive (mmdet_imbalance/datasets/shapes.py); prepared under
# data/shapes on first use. Same pipeline as trees, so a row's result differs only by the data.
_base_ = './trees.py'

embedded = 'shapes'
data_root = 'data/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))

train_dataloader = dict(dataset=dict(embedded=embedded, data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(embedded=embedded, data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

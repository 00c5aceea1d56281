# Mini (CPU-scale) counterpart of configs/table1/retinanet_r50_fpn_1x_coco_resobj.py, with the same
# deltas (that file gives the sources): ResObjRetinaHead (objectness + 1 residual stage, prior
# 0.001 per stage, class prior 1/K as released: 1/3 on shapes) and ResObjLoss (objectness BCE
# x1/20, positive-only class BCE x1/10, EMA normaliser), scores sigmoid(obj) * sigmoid(cls) fused
# before the stock test filtering. On the one-class trees set 1/K would be an infinite bias; the
# head then takes its SINGLE_CLASS_PRIOR 0.99 (docs/methods/resobj.md).
_base_ = './retinanet_mini.py'

model = dict(
    bbox_head=dict(
        type='ResObjRetinaHead',
        num_stages=1,
        obj_prior_prob=0.001,
        cls_prior_prob=None,
        loss_cls=dict(
            _delete_=True, type='ResObjLoss', obj_weight=1 / 20, cls_weight=1 / 10,
            ema_momentum=0.9, ema_init=100.0)))

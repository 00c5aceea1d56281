# Mini (CPU-scale) counterpart of configs/table1/retinanet_r50_fpn_1x_coco_dr-loss.py, with the same
# deltas (that file gives the sources): DRLoss in DRLossRetinaHead (per image, then the mean over
# images), classification prior 0.5 (bias 0), assigner neg_iou_thr 0.5, test score_thr 0.2, NMS 0.5.
_base_ = './retinanet_mini.py'

model = dict(
    bbox_head=dict(
        type='DRLossRetinaHead',
        loss_cls=dict(
            _delete_=True, type='DRLoss', use_sigmoid=True, margin=0.5, pos_lambda=1.0,
            neg_lambda=0.07982356001479281, L=6.0, tau=4.0, loss_weight=1.0),
        init_cfg=dict(
            type='Normal', layer='Conv2d', std=0.01,
            override=dict(type='Normal', name='retina_cls', std=0.01, bias_prob=0.5))),
    train_cfg=dict(assigner=dict(neg_iou_thr=0.5)),
    test_cfg=dict(score_thr=0.2, nms=dict(type='nms', iou_threshold=0.5)))

# Mini (CPU-scale) counterpart of configs/table1/retinanet_r50_fpn_1x_coco_ap-loss.py, with the same
# delta (that file gives the sources): APLoss(delta=1.0) in APLossRetinaHead, one ranking over all
# levels and images of the batch, error-driven update; everything else is the mini baseline's.
# Table 1 group: ranking-based loss.
_base_ = './retinanet_mini.py'

model = dict(
    bbox_head=dict(
        type='APLossRetinaHead',
        gather_across_ranks=False,
        loss_cls=dict(_delete_=True, type='APLoss', delta=1.0, loss_weight=1.0)),
    # The reference's test threshold, as on the COCO row: AP Loss scores are ranks, not calibrated
    # probabilities, and many true detections score below the Focal Loss baseline's 0.05.
    test_cfg=dict(score_thr=0.01))

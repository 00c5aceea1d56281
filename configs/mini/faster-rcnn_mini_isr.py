# Mini (CPU-scale) counterpart of configs/table1/faster-rcnn_r50_fpn_1x_coco_isr.py: the same delta,
# PISA's ISR-P (PISARoIHead + train_cfg.rcnn.isr) and ISR-N (ScoreHLRSampler) without CARL, the
# baseline's proposals and bbox loss kept (the COCO row's comment gives the reasons;
# docs/methods/isr.md §4).
_base_ = './faster-rcnn_mini.py'

model = dict(
    roi_head=dict(type='PISARoIHead'),
    train_cfg=dict(
        rcnn=dict(sampler=dict(type='ScoreHLRSampler', k=0.5, bias=0.), isr=dict(k=2., bias=0.))))

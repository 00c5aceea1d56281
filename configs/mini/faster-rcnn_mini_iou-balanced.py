# Mini (CPU-scale) counterpart of configs/table1/faster-rcnn_r50_fpn_1x_coco_iou-balanced.py: the
# same delta, Libra R-CNN's IoU-balanced sampler alone in the RoI head
# (docs/methods/iou-balanced-sampling.md §4); the sampler's num, pos_fraction, neg_pos_ub and
# add_gt_as_proposals are merged from the mini baseline.
_base_ = './faster-rcnn_mini.py'

model = dict(
    train_cfg=dict(
        rcnn=dict(
            sampler=dict(
                type='CombinedSampler',
                pos_sampler=dict(type='InstanceBalancedPosSampler'),
                neg_sampler=dict(
                    type='IoUBalancedNegSampler', floor_thr=-1, floor_fraction=0, num_bins=3)))))

# Table 1 row "IoU-balanced sampling / Faster R-CNN": Libra R-CNN's sampler alone
# (docs/methods/iou-balanced-sampling.md). The RoI head's RandomSampler becomes a CombinedSampler
# that draws positives evenly per GT (InstanceBalancedPosSampler) and negatives evenly across 3 IoU
# bins (IoUBalancedNegSampler with floor_thr=-1, floor_fraction=0, num_bins=3). num=512,
# pos_fraction=0.25, neg_pos_ub=-1 and add_gt_as_proposals are merged from the baseline sampler
# unchanged.
# Nothing else from Libra R-CNN: no BFP neck, no Balanced L1 loss, no rpn neg_pos_ub=5; those are
# in the zoo-check row configs/zoo/libra-faster-rcnn_r50_fpn_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    train_cfg=dict(
        rcnn=dict(
            sampler=dict(
                type='CombinedSampler',
                pos_sampler=dict(type='InstanceBalancedPosSampler'),
                neg_sampler=dict(
                    type='IoUBalancedNegSampler', floor_thr=-1, floor_fraction=0, num_bins=3)))))

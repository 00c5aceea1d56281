"""Behaviour of the stock samplers as the Table 1 rows configure them (docs/methods/ohem.md §2,
docs/methods/iou-balanced-sampling.md §2).

Each sampler is built from the row's own merged config, so these tests check the heuristic the row
really runs, on constructed cases whose right answer is derived here independently:

* OHEM keeps exactly the RoIs with the highest classification loss (positives and negatives);
* IoU-balanced sampling draws its negatives evenly from ``num_bins`` equal IoU bins, so scarce
  hard negatives (IoU just below the 0.5 negative threshold) are all kept, where the baseline's
  random sampler keeps them only in proportion to their share.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.models.task_modules import AssignResult
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.structures import InstanceData

from mmdet_imbalance.testing import load_config

FASTER_BASE = 'configs/table1/faster-rcnn_r50_fpn_1x_coco.py'
OHEM_ROW = 'configs/table1/faster-rcnn_r50_fpn_1x_coco_ohem.py'
IOU_ROW = 'configs/table1/faster-rcnn_r50_fpn_1x_coco_iou-balanced.py'


def _model_cfg(repo_root, row):
    return load_config(os.path.join(repo_root, row)).model


class _ScoredContext:
    """Stands in for the RoI head OHEM mines with: the class logits of every candidate are fixed.

    Candidate ``i`` is the box ``[i, 0, i + 8, 8]``, so ``_bbox_forward`` recovers its index from
    the RoI's x1 and returns the logits we chose for it. The loss is the row's real bbox head loss.
    """

    def __init__(self, bbox_head, logits):
        self.bbox_head = bbox_head
        self.logits = logits
        self.forward_calls = 0

    def _bbox_forward(self, feats, rois):
        self.forward_calls += 1
        return dict(cls_score=self.logits[rois[:, 1].long()])


def test_ohem_keeps_the_highest_loss_rois(repo_root):
    """OHEM returns the top-k RoIs by cross-entropy, for positives and negatives alike."""
    model_cfg = _model_cfg(repo_root, OHEM_ROW)
    bbox_head = MODELS.build(model_cfg.roi_head.bbox_head)
    num_classes = bbox_head.num_classes
    num_pos, num_neg, gt_label = 200, 800, 7
    num_cand = num_pos + num_neg
    priors = torch.tensor([[i, 0., i + 8., 8.] for i in range(num_cand)])
    gt_box = torch.tensor([[num_cand, 0., num_cand + 8., 8.]])
    generator = torch.Generator().manual_seed(0)
    # one row per candidate plus one for the ground truth, which is added as a proposal
    logits = 3 * torch.randn(num_cand + 1, num_classes + 1, generator=generator)
    context = _ScoredContext(bbox_head, logits)
    sampler = TASK_UTILS.build(model_cfg.train_cfg.rcnn.sampler, default_args=dict(context=context))
    assert type(sampler).__name__ == 'OHEMSampler'

    gt_inds = torch.cat([torch.ones(num_pos), torch.zeros(num_neg)]).long()
    labels = torch.cat([torch.full((num_pos, ), gt_label), torch.full((num_neg, ), -1)]).long()
    assign = AssignResult(
        num_gts=1, gt_inds=gt_inds, max_overlaps=gt_inds.float() * 0.7, labels=labels)
    result = sampler.sample(
        assign,
        InstanceData(priors=priors),
        InstanceData(bboxes=gt_box, labels=torch.tensor([gt_label])),
        feats=None)

    # the ground truth goes first, then the candidates: index j is candidate j - 1
    boxes = torch.cat([gt_box, priors])
    all_labels = torch.cat([torch.tensor([gt_label]), labels.clamp(min=0)])
    all_labels[1 + num_pos:] = num_classes  # background class of the softmax head
    ce = F.cross_entropy(logits[boxes[:, 0].long()], all_labels, reduction='none')
    pos_pool = torch.arange(0, num_pos + 1)
    neg_pool = torch.arange(num_pos + 1, num_cand + 1)
    n_pos = int(sampler.num * sampler.pos_fraction)
    n_neg = sampler.num - n_pos
    expected_pos = set(pos_pool[ce[pos_pool].topk(n_pos).indices].tolist())
    expected_neg = set(neg_pool[ce[neg_pool].topk(n_neg).indices].tolist())

    assert (sampler.num, n_pos) == (512, 128)
    assert set(result.pos_inds.tolist()) == expected_pos
    assert set(result.neg_inds.tolist()) == expected_neg
    assert context.forward_calls == 2  # one mining pass each for positives and negatives
    # a RoI left out never has a higher loss than one kept
    neg_left = torch.tensor(sorted(set(neg_pool.tolist()) - expected_neg))
    assert ce[result.neg_inds].min() >= ce[neg_left].max()


def _bin_counts(ious, edges):
    return [int(((ious >= lo) & (ious < hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])]


def test_iou_balanced_sampler_draws_negatives_evenly_across_bins(repo_root):
    """With floor_thr=-1 and 3 bins, each IoU third of [0, max IoU) gives num_expected // 3."""
    model_cfg = _model_cfg(repo_root, IOU_ROW)
    sampler = TASK_UTILS.build(model_cfg.train_cfg.rcnn.sampler)
    assert type(sampler.neg_sampler).__name__ == 'IoUBalancedNegSampler'
    rng = np.random.RandomState(0)
    # bins of width 0.15 below the largest IoU, 0.45; values kept clear of the bin edges
    ious = np.concatenate([
        rng.uniform(0.01, 0.14, 1500),
        rng.uniform(0.16, 0.29, 200),
        rng.uniform(0.31, 0.44, 200), [0.45]
    ])
    num = len(ious)
    assign = AssignResult(
        num_gts=0,
        gt_inds=torch.zeros(num, dtype=torch.long),
        max_overlaps=torch.tensor(ious, dtype=torch.float32),
        labels=torch.full((num, ), -1, dtype=torch.long))
    torch.manual_seed(0)
    result = sampler.sample(
        assign, InstanceData(priors=torch.rand(num, 4) * 10),
        InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)))
    neg_ious = ious[result.neg_inds.numpy()]
    counts = _bin_counts(neg_ious, [0., 0.15, 0.30, 0.45])
    per_bin = sampler.num // 3
    assert len(result.pos_inds) == 0 and len(result.neg_inds) == sampler.num
    assert len(set(result.neg_inds.tolist())) == sampler.num
    # each bin gets its quota; the num % 3 leftover draws come from anywhere (the 0.45 box too)
    leftover = sampler.num - 3 * per_bin
    assert all(per_bin <= c <= per_bin + leftover for c in counts), counts
    # a random sampler would take about 1500 / 1901 of the 512 draws (404) from the easiest bin
    assert counts[0] <= per_bin + leftover < 0.5 * 1500 / 1901 * sampler.num


def _shifted_boxes(ious):
    """Boxes [s, 0, 100 + s, 100] whose IoU with the GT [0, 0, 100, 100] is exactly ``ious``."""
    shift = 100. * (1. - ious) / (1. + ious)
    return torch.stack(
        [shift, torch.zeros_like(shift), 100. + shift,
         torch.full_like(shift, 100.)], dim=1)


def test_iou_balanced_sampler_keeps_scarce_hard_negatives(repo_root):
    """On the row's own assigner: all hard negatives (IoU in [1/3, 0.5)) are sampled.

    The ground truth is added as a proposal, so the largest IoU is 1 and the bins are the thirds of
    [0, 1); the top third holds no negative (neg_iou_thr is 0.5), and its share of the draws falls
    back to random ones. The baseline's RandomSampler, on the same assignment, keeps hard negatives
    only in proportion (about 100 / 2100 of the draws).
    """
    generator = torch.Generator().manual_seed(0)
    easy = 0.30 * torch.rand(2000, generator=generator)
    hard = 0.36 + 0.12 * torch.rand(100, generator=generator)
    pos = 0.55 + 0.40 * torch.rand(100, generator=generator)
    priors = _shifted_boxes(torch.cat([easy, hard, pos]))
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 100., 100.]]), labels=torch.tensor([3]))

    picked = {}
    for name, row in (('iou', IOU_ROW), ('random', FASTER_BASE)):
        rcnn = _model_cfg(repo_root, row).train_cfg.rcnn
        assigner = TASK_UTILS.build(rcnn.assigner)
        sampler = TASK_UTILS.build(rcnn.sampler)
        assign = assigner.assign(InstanceData(priors=priors), gt)
        torch.manual_seed(0)
        result = sampler.sample(assign, InstanceData(priors=priors), gt)
        neg_ious = assign.max_overlaps[result.neg_inds]
        picked[name] = (len(result.pos_inds), len(result.neg_inds),
                        int(((neg_ious >= 1 / 3) & (neg_ious < 0.5)).sum()))

    # 100 positives plus the ground truth; 512 - 101 negatives
    assert picked['iou'][:2] == (101, 411)
    assert picked['random'][:2] == (101, 411)
    assert picked['iou'][2] == 100
    assert picked['random'][2] < 60

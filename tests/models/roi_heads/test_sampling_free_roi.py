"""Tests of Sampling-Free's RoI stage (docs/methods/sampling-free.md §5): AllSampler keeps every
proposal plus the GT boxes, SamplingFreeBBoxHead's box loss is the per-coordinate mean over
positives and its CE is guided with s = 2, and the Faster R-CNN rows train and carry the 0.001
test threshold."""
import os

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import PseudoSampler
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from mmdet_imbalance.models.roi_heads import SamplingFreeBBoxHead
from mmdet_imbalance.models.task_modules import AllSampler
from mmdet_imbalance.testing import demo_batch, load_config, predict, shrink_model_cfg, train_step

NUM_CLASSES = 3


def assignment():
    """5 candidates: 0 -> GT 1, 1 background, 2 ignored, 3 -> GT 2, 4 background."""
    gt_inds = torch.tensor([1, 0, -1, 2, 0])
    result = AssignResult(num_gts=2, gt_inds=gt_inds, max_overlaps=torch.rand(5),
                          labels=torch.tensor([0, -1, -1, 2, -1]))
    priors = InstanceData(priors=torch.rand(5, 4) * 10 + torch.tensor([0., 0., 20., 20.]))
    gts = InstanceData(bboxes=torch.tensor([[0., 0., 25., 25.], [5., 5., 30., 30.]]),
                       labels=torch.tensor([0, 2]))
    return result, priors, gts


def test_all_sampler_keeps_every_labelled_candidate_and_the_gt():
    result, priors, gts = assignment()
    sampled = AllSampler().sample(result, priors, gts)
    # The 2 GT boxes are prepended: candidates shift by 2; the ignored one (2 -> 4) is dropped.
    assert sorted(sampled.pos_inds.tolist()) == [0, 1, 2, 5]
    assert sorted(sampled.neg_inds.tolist()) == [3, 6]
    assert sampled.pos_is_gt.tolist()[:2] == [1, 1]
    result, priors, gts = assignment()
    sampled = AllSampler(add_gt_as_proposals=False).sample(result, priors, gts)
    assert sorted(sampled.pos_inds.tolist()) == [0, 3]
    assert sorted(sampled.neg_inds.tolist()) == [1, 4]


def bbox_head(head_type=SamplingFreeBBoxHead, **kwargs):
    torch.manual_seed(0)
    return head_type(in_channels=4, fc_out_channels=8, roi_feat_size=2, num_classes=NUM_CLASSES,
                     **kwargs)


def roi_targets(num_pos=5, num=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.full((num, ), NUM_CLASSES, dtype=torch.long)
    labels[:num_pos] = torch.randint(0, NUM_CLASSES, (num_pos, ), generator=gen)
    targets = torch.randn(num, 4, generator=gen)
    weights = torch.zeros(num, 4)
    weights[:num_pos] = 1
    cls_score = torch.randn(num, NUM_CLASSES + 1, generator=gen, requires_grad=True)
    bbox_pred = torch.randn(num, 4 * NUM_CLASSES, generator=gen, requires_grad=True)
    rois = torch.cat([torch.zeros(num, 1), torch.rand(num, 4, generator=gen) * 50], dim=1)
    return cls_score, bbox_pred, rois, labels, torch.ones(num), targets, weights


def test_box_loss_is_the_per_coordinate_mean_and_ce_is_guided_twice():
    head = bbox_head()
    cls_score, bbox_pred, rois, labels, label_w, targets, weights = roi_targets()
    losses = head.loss(cls_score, bbox_pred, rois, labels, label_w, targets, weights)
    pos = labels < NUM_CLASSES
    pos_pred = bbox_pred.view(-1, NUM_CLASSES, 4)[pos, labels[pos]]
    ref_box = F.smooth_l1_loss(pos_pred, targets[pos], beta=1.0, reduction='sum') / (4 * 5)
    ref_cls = F.cross_entropy(cls_score, labels)  # mean over all RoIs
    assert losses['loss_bbox'].item() == pytest.approx(ref_box.item(), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(2 * ref_box.item(), rel=1e-5)
    assert 'acc' in losses
    got, = torch.autograd.grad(losses['loss_cls'], cls_score)
    want, = torch.autograd.grad(ref_cls, cls_score)
    assert torch.allclose(got, 2 * ref_box.item() / ref_cls.item() * want, rtol=1e-4, atol=1e-9)


def test_no_positive_roi_gives_zero_losses_and_gradients():
    head = bbox_head()
    cls_score, bbox_pred, rois, labels, label_w, targets, weights = roi_targets(num_pos=0)
    losses = head.loss(cls_score, bbox_pred, rois, labels, label_w, targets, weights)
    assert losses['loss_cls'].item() == 0.0 and losses['loss_bbox'].item() == 0.0
    grad, = torch.autograd.grad(losses['loss_cls'] + losses['loss_bbox'], cls_score)
    assert torch.count_nonzero(grad) == 0


def test_reduction_override_returns_the_stock_per_roi_losses():
    ours = bbox_head()
    stock = bbox_head(Shared2FCBBoxHead,
                      loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    args = roi_targets()
    mine = ours.loss(*args, reduction_override='none')
    ref = stock.loss(*args, reduction_override='none')
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.allclose(mine[key], ref[key])
    with pytest.raises(ValueError, match='guided_scale'):
        bbox_head(guided_scale=-2.0)


def build_unresolved(path, rpn_prior=None):
    cfg = load_config(path)
    model = MODELS.build(shrink_model_cfg(cfg.model))
    if rpn_prior is not None and model.rpn_head.needs_imbalance_stats:
        model.rpn_head.set_prior(rpn_prior)
    return cfg, model


def test_mini_faster_rcnn_row_trains_one_step_with_an_image_without_gt(repo_root):
    torch.manual_seed(0)
    _, model = build_unresolved(
        os.path.join(repo_root, 'configs/mini/faster-rcnn_mini_sampling-free.py'),
        rpn_prior=0.01)
    assert isinstance(model.roi_head.bbox_sampler, AllSampler)
    assert isinstance(model.rpn_head.sampler, PseudoSampler)
    assert model.rpn_head.train_cfg['allowed_border'] == 0
    model.init_weights()
    losses = train_step(model, demo_batch(model, image_size=128, num_items=[0, 2]))
    assert losses['loss_rpn_cls'].item() == pytest.approx(losses['loss_rpn_bbox'].item(), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(2 * losses['loss_bbox'].item(), rel=1e-5)
    assert losses['loss_cls'].item() > 0
    with torch.no_grad():  # the value only: the zero gradient is checked on the head alone
        losses = model(**demo_batch(model, image_size=128, num_items=[0, 0]), mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'):
        assert losses[key].item() == 0.0, key
    assert len(predict(model, demo_batch(model, image_size=128, training=False))) == 2


def test_coco_faster_rcnn_row_thresholds_and_prior(repo_root):
    cfg, model = build_unresolved(
        os.path.join(repo_root, 'configs/table1/faster-rcnn_r50_fpn_1x_coco_sampling-free.py'))
    assert cfg.model.test_cfg.rcnn.score_thr == 0.001
    assert model.roi_head.test_cfg['score_thr'] == 0.001
    assert model.rpn_head.resolved_prior == 1.70879e-4
    assert model.roi_head.bbox_head.guided_scale == 2.0 and model.rpn_head.guided_scale == 1.0
    assert isinstance(model.roi_head.bbox_sampler, AllSampler)

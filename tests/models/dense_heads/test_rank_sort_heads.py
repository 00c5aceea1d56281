"""RS-ATSS and RS-RPN heads: one ranking per minibatch with IoU labels, self-balanced GIoU,
no centerness, no sampler (docs/methods/rs-loss.md §4); each trains a step on CPU."""
import os

import pytest
import torch

from mmdet_imbalance.models.dense_heads import RankSortATSSHead, RankSortRPNHead
from mmdet_imbalance.models.losses import rank_sort_head_losses
from mmdet_imbalance.models.losses.rank_sort_loss import RankSortLoss
from mmdet_imbalance.testing import build_detector, demo_batch, predict, train_step

ATSS_MINI = 'configs/mini/atss_mini_rs-loss.py'
ATSS_COCO = 'configs/table1/atss_r50_fpn_1x_coco_rs-loss.py'
RCNN_MINI = 'configs/mini/faster-rcnn_mini_rs-loss.py'


@pytest.mark.parametrize('config', [ATSS_MINI, ATSS_COCO])
def test_rs_atss_trains_a_step_with_an_empty_image(config, repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, config))
    head = model.bbox_head
    assert isinstance(head, RankSortATSSHead) and isinstance(head.loss_cls, RankSortLoss)
    # No centerness parameters; one sigmoid logit per class and 3 anchors per location.
    assert not any('centerness' in name for name, _ in head.named_parameters())
    assert head.cls_out_channels == head.num_classes and head.num_base_priors == 3
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 3]))
    assert set(losses) == {'loss_rank', 'loss_sort', 'loss_bbox'}
    # Self-balance: the box loss's value is the classification total.
    torch.testing.assert_close(losses['loss_bbox'], losses['loss_rank'] + losses['loss_sort'])
    assert head.atss_cls.weight.grad.abs().sum() > 0 and head.atss_reg.weight.grad.abs().sum() > 0
    results = predict(model, demo_batch(model, batch_size=1, image_size=128, training=False))
    scores = results[0].pred_instances.scores
    assert ((scores >= 0) & (scores <= 1)).all()


def test_rs_atss_batch_without_objects_is_zero_and_in_the_graph(repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, ATSS_MINI))
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 0]))
    assert all(v.item() == 0 and v.requires_grad for v in losses.values())


def test_rs_rpn_and_roi_heads_train_a_step(repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, RCNN_MINI))
    assert isinstance(model.rpn_head, RankSortRPNHead) and model.rpn_head.head_weight == 0.2
    assert model.rpn_head.cls_out_channels == 1
    assert type(model.rpn_head.sampler).__name__ == 'PseudoSampler'
    assert type(model.roi_head.bbox_sampler).__name__ == 'AllSampler'
    # A sigmoid classifier without a background logit.
    bbox_head = model.roi_head.bbox_head
    assert bbox_head.fc_cls.out_features == bbox_head.num_classes
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 3]))
    assert {'loss_rpn_rank', 'loss_rpn_sort', 'loss_rpn_bbox', 'loss_rank', 'loss_sort',
            'loss_bbox'} == set(losses)
    torch.testing.assert_close(losses['loss_rpn_bbox'],
                               losses['loss_rpn_rank'] + losses['loss_rpn_sort'])
    torch.testing.assert_close(losses['loss_bbox'], losses['loss_rank'] + losses['loss_sort'])
    assert 0 < losses['loss_rpn_rank'].item() <= 0.2  # x head_weight
    assert bbox_head.fc_cls.weight.grad.abs().sum() > 0
    assert model.rpn_head.rpn_cls.weight.grad.abs().sum() > 0
    results = predict(model, demo_batch(model, batch_size=1, image_size=128, training=False))
    assert ((results[0].pred_instances.scores >= 0) & (results[0].pred_instances.scores <= 1)).all()


def test_head_losses_iou_labels_and_score_weights():
    """IoU labels of the current predictions, GIoU weighted by the highest class score."""
    from mmdet.models.losses import GIoULoss
    from mmdet.structures.bbox import bbox_overlaps
    logits = torch.tensor([[2.0, -1.0], [-3.0, 0.5], [0.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[1, 0], [0, 1], [0, 0]], dtype=torch.int8)
    pred = torch.tensor([[0., 0., 10., 10.], [5., 5., 15., 20.]], requires_grad=True)
    gt = torch.tensor([[0., 0., 10., 12.], [5., 5., 15., 15.]])
    seen = {}

    def spy(flat_logits, flat_targets):
        seen['targets'] = flat_targets.clone()
        return RankSortLoss()(flat_logits, flat_targets)

    rank, sort, box = rank_sort_head_losses(
        spy, GIoULoss(), logits, targets, torch.tensor([0, 1]), torch.tensor([0, 1]), pred, gt)
    iou = bbox_overlaps(pred.detach(), gt, is_aligned=True)
    assert torch.allclose(seen['targets'].view(3, 2)[[0, 1], [0, 1]], iou)
    assert (seen['targets'].view(3, 2)[2] == 0).all()
    weight = torch.sigmoid(torch.tensor([2.0, 0.5]))
    giou = GIoULoss(reduction='none')(pred.detach(), gt)
    expected = (weight * giou).sum() / weight.sum()
    box.backward()
    torch.testing.assert_close(box.detach(), (rank + sort).detach())
    # The balanced box loss has the weighted GIoU's gradient, rescaled by (rank + sort) / L.
    pred2 = pred.detach().clone().requires_grad_()
    ((weight * GIoULoss(reduction='none')(pred2, gt)).sum() / weight.sum()).backward()
    torch.testing.assert_close(pred.grad, pred2.grad * (rank + sort).detach() / expected)

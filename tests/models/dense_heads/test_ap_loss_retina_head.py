"""Tests of APLossRetinaHead: one ranking over levels and images, targets, rank gathering.

docs/methods/ap-loss.md §5-§7.
"""
import os
import threading
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import MODELS

from mmdet_imbalance.models.dense_heads import ap_loss_retina_head as head_module
from mmdet_imbalance.models.dense_heads.ap_loss_retina_head import (APLossRetinaHead,
                                                                    gather_for_ranking)
from mmdet_imbalance.models.dense_heads.ranking_rows import ranking_targets
from mmdet_imbalance.models.losses import ap_loss
from mmdet_imbalance.testing import build_detector, demo_batch, load_config, predict, train_step

COCO_CFG = 'configs/table1/retinanet_r50_fpn_1x_coco_ap-loss.py'
RECIPE_CFG = 'configs/table1/retinanet_r50_fpn_ssd512-100e_coco_ap-loss.py'
MINI_CFG = 'configs/mini/retinanet_mini_ap-loss.py'


def test_targets_on_constructed_case():
    # Anchors: positive class 0, positive class 2, background, ignored (weight 0) with label 3.
    labels = torch.tensor([[0, 2, 3, 3]])
    weights = torch.tensor([[1., 1., 1., 0.]])
    expected = torch.tensor([[[1, 0, 0], [0, 0, 1], [0, 0, 0], [-1, -1, -1]]], dtype=torch.int8)
    assert torch.equal(ranking_targets(labels, weights, num_classes=3), expected)
    with pytest.raises(ValueError, match='labels'):
        ranking_targets(torch.tensor([4]), torch.ones(1), num_classes=3)
    with pytest.raises(ValueError, match='label_weights'):
        ranking_targets(torch.tensor([1, 2]), torch.ones(3), num_classes=3)


@pytest.fixture(scope='module')
def coco_model():
    torch.manual_seed(0)
    # Module scope (one build for several tests), so the function-scoped repo_root fixture
    # cannot be used here.
    repo_root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
    return build_detector(os.path.join(repo_root, COCO_CFG))


def test_coco_train_step_with_an_empty_image(coco_model):
    model = coco_model
    head = model.bbox_head
    assert isinstance(head, APLossRetinaHead)
    # Sigmoid-style outputs although APLoss has no use_sigmoid argument.
    assert head.use_sigmoid_cls and head.cls_out_channels == head.num_classes
    model.zero_grad()
    # The first image has no ground truth; train_step asserts finite losses and gradients.
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 3]))
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    assert 0 < losses['loss_cls'].item() <= 1 and losses['loss_bbox'].item() > 0
    grad = head.retina_cls.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    results = predict(model, demo_batch(model, batch_size=1, image_size=128, training=False))
    scores = results[0].pred_instances.scores
    assert ((scores >= 0) & (scores <= 1)).all()


def test_mini_config_train_step(repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, MINI_CFG))
    assert isinstance(model.bbox_head, APLossRetinaHead)
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[1, 2]))
    assert 0 < losses['loss_cls'].item() <= 1


def random_head_inputs(head, batch, mean=-4.6, std=2.0):
    """Random (N, A*C, H, W) / (N, A*4, H, W) maps of the right sizes for ``batch``'s images."""
    samples = batch['data_samples']
    height, width = samples[0].metainfo['pad_shape']
    gen = torch.Generator().manual_seed(0)
    cls_scores, bbox_preds = [], []
    for stride in head.prior_generator.strides:
        size = (len(samples), head.num_base_priors, -(-height // stride[0]), -(-width // stride[1]))
        cls_scores.append(
            (torch.randn(size[0], size[1] * head.cls_out_channels, *size[2:], generator=gen) * std +
             mean).requires_grad_())
        bbox_preds.append(torch.randn(size[0], size[1] * 4, *size[2:], generator=gen) * 0.1)
    return (cls_scores, bbox_preds, [s.gt_instances
                                     for s in samples], [s.metainfo for s in samples])


def test_one_ranking_over_levels_and_images(coco_model):
    head = coco_model.bbox_head
    batch = demo_batch(coco_model, batch_size=2, image_size=128, num_items=[0, 3])
    cls_scores, bbox_preds, gts, metas = random_head_inputs(head, batch)
    loss = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)['loss_cls']
    loss.backward()

    # Independent flattening: per image, per level, per location (y, x), per base anchor, class.
    anchors, valid = head.get_anchors([c.shape[-2:] for c in cls_scores], metas, device='cpu')
    labels, weights = head.get_targets(anchors, valid, gts, metas)[:2]
    num_classes, num_base = head.num_classes, head.num_base_priors
    rows, targets = [], []
    for img in range(2):
        for lvl, score in enumerate(cls_scores):
            s = score[img].detach().view(num_base, num_classes, *score.shape[-2:])
            rows.append(s.permute(2, 3, 0, 1).reshape(-1, num_classes))
            lab, w = labels[lvl][img], weights[lvl][img]
            t = torch.zeros(lab.numel(), num_classes, dtype=torch.long)
            t[w == 0] = -1
            fg = (w > 0) & (lab < num_classes)
            t[fg.nonzero().squeeze(1), lab[fg]] = 1
            targets.append(t)
    expected = ap_loss(torch.cat(rows), torch.cat(targets))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Ranking covers the batch: image 0 has no object, yet its negatives above the cut-off get
    # gradient from image 1's positives. A per-image loss would leave them at zero.
    assert sum(c.grad[0].abs().sum() for c in cls_scores) > 0


def test_batch_without_ground_truth(coco_model):
    head = coco_model.bbox_head
    batch = demo_batch(coco_model, batch_size=2, image_size=128, num_items=[0, 0])
    cls_scores, bbox_preds, gts, metas = random_head_inputs(head, batch)
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    # No positive anywhere in the batch: AP-Loss is 0 with zero gradient (§3 step 1).
    assert losses['loss_cls'].item() == 0 and losses['loss_bbox'].item() == 0
    assert all((c.grad == 0).all() for c in cls_scores)


def test_bfloat16_autocast_and_extreme_logits(coco_model):
    head = coco_model.bbox_head
    batch = demo_batch(coco_model, batch_size=2, image_size=128, num_items=[1, 2])
    cls_scores, bbox_preds, gts, metas = random_head_inputs(head, batch)
    with torch.no_grad():
        for c in cls_scores:
            c.copy_(torch.where(c > -4.6, 100.0, -100.0))
    loss = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)['loss_cls']
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(c.grad).all() for c in cls_scores)
    bf16 = [c.detach().to(torch.bfloat16).requires_grad_() for c in cls_scores]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss_by_feat(bf16, bbox_preds, gts, metas)['loss_cls']
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(c.grad).all() for c in bf16)


def test_paper_recipe_head(coco_model, repo_root):
    cfg = load_config(os.path.join(repo_root, RECIPE_CFG)).model
    head = MODELS.build(dict(cfg.bbox_head, train_cfg=cfg.train_cfg, test_cfg=cfg.test_cfg))
    head.init_weights()
    assert isinstance(head, APLossRetinaHead) and head.gather_across_ranks
    assert head.num_base_priors == 6  # §7: 3 ratios x 2 scales
    # Regression output init N(0, 0.001) (§7), classification prior 0.01.
    assert head.retina_reg.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert torch.allclose(
        head.retina_cls.bias, torch.full_like(head.retina_cls.bias, -4.59512), atol=1e-4)
    batch = demo_batch(coco_model, batch_size=2, image_size=128, num_items=[2, 1])
    cls_scores, bbox_preds, gts, metas = random_head_inputs(head, batch)
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    assert 0 < losses['loss_cls'].item() <= 1 and torch.isfinite(losses['loss_bbox'])


def test_rejects_other_classification_losses():
    with pytest.raises(TypeError, match='APLoss'):
        APLossRetinaHead(
            num_classes=3, in_channels=8, loss_cls=dict(type='FocalLoss', use_sigmoid=True))


class ThreadGroup:
    """A process group simulated by threads: all_gather has torch.distributed's semantics."""

    def __init__(self, world_size):
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=30)
        self.slots = [None] * world_size
        self.local = threading.local()

    def get_rank(self):
        return self.local.rank

    def get_world_size(self):
        return self.world_size

    def all_gather(self, out_list, tensor):
        self.barrier.wait()  # every rank has read the previous round
        self.slots[self.local.rank] = tensor.detach().clone()
        self.barrier.wait()  # every rank has written this round
        for out, sent in zip(out_list, self.slots):
            assert out.shape == sent.shape and out.dtype == sent.dtype
            out.copy_(sent)


def _rank_data(rank):
    gen = torch.Generator().manual_seed(rank)
    rows = 50 + 30 * rank  # different sizes: exercises the padding with ignored entries
    logits = torch.randn(rows, 4, generator=gen)
    targets = torch.zeros(rows, 4, dtype=torch.int8)
    targets[torch.randint(0, rows, (5, ), generator=gen), rank] = 1
    targets[:3] = -1
    return logits, targets


def test_gather_across_ranks(monkeypatch):
    world_size = 2
    group = ThreadGroup(world_size)
    monkeypatch.setattr(head_module, 'get_world_size', group.get_world_size)
    monkeypatch.setattr(head_module, 'get_rank', group.get_rank)
    monkeypatch.setattr(head_module, 'torch_dist', SimpleNamespace(all_gather=group.all_gather))
    results, errors = {}, []

    def run(rank):
        try:
            group.local.rank = rank
            logits, targets = _rank_data(rank)
            logits.requires_grad_()
            all_logits, all_targets, world = gather_for_ranking(logits, targets)
            loss = ap_loss(all_logits, all_targets)
            # The head's scaling: same value, world x gradient on the local part.
            loss = loss + (world - 1) * (loss - loss.detach())
            loss.backward()
            results[rank] = (loss.detach(), logits.grad, world)
        except Exception as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r, )) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

    data = [_rank_data(r) for r in range(world_size)]
    logits = torch.cat([d[0] for d in data]).requires_grad_()
    expected = ap_loss(logits, torch.cat([d[1] for d in data]))
    expected.backward()
    start = 0
    for rank in range(world_size):
        loss, grad, world = results[rank]
        rows = data[rank][0].size(0)
        assert world == world_size
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
        # DDP averages (world x local grad) over ranks: the global-batch gradient.
        torch.testing.assert_close(grad, world_size * logits.grad[start:start + rows])
        start += rows


def test_gather_without_process_group_is_identity():
    logits, targets = _rank_data(0)
    out_logits, out_targets, world = gather_for_ranking(logits, targets)
    assert world == 1 and out_logits is logits and out_targets is targets

"""ResObjRetinaHead (docs/methods/resobj.md): architecture, init, losses, fused inference."""
import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmdet_imbalance.models.dense_heads.resobj_retina_head import (ResObjRetinaHead,
                                                                   drop_degenerate_boxes,
                                                                   fuse_objectness_logits,
                                                                   objectness_of_top_class)
from mmdet_imbalance.testing import (build_detector, demo_batch, load_config, predict,
                                     total_loss, train_step)

COCO_CFG = 'configs/table1/retinanet_r50_fpn_1x_coco_resobj.py'
MINI_CFG = 'configs/mini/retinanet_mini_resobj.py'
NUM_CLASSES = 4
IMG = 128
META = dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), ori_shape=(IMG, IMG),
            scale_factor=(1., 1.))


def logit(p):
    return math.log(p / (1 - p))


@pytest.fixture
def coco_model_cfg(repo_root):
    return load_config(os.path.join(repo_root, COCO_CFG)).model


def tiny_head(model_cfg, **overrides):
    """The row's head (with its train/test cfg) at 8 channels, 1 conv per tower, K=4."""
    cfg = ConfigDict(copy.deepcopy(dict(model_cfg.bbox_head)))
    cfg.update(num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1,
               train_cfg=model_cfg.train_cfg, test_cfg=model_cfg.test_cfg)
    for key, value in overrides.items():
        cfg[key] = value
    head = MODELS.build(cfg)
    head.init_weights()
    return head.train()


def features(head, batch=2, value=None, seed=0):
    torch.manual_seed(seed)
    sizes = [IMG // s for s in (8, 16, 32, 64, 128)]
    if value is not None:
        return [torch.full((batch, head.in_channels, s, s), value) for s in sizes]
    return [torch.randn(batch, head.in_channels, s, s) for s in sizes]


def gt(boxes, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


@pytest.mark.parametrize('num_stages', [0, 1, 2])
def test_initial_objectness_matches_closed_form(coco_model_cfg, num_stages):
    head = tiny_head(coco_model_cfg, num_stages=num_stages)
    assert len(head.retina_obj) == len(head.obj_convs) == num_stages + 1
    # Zero features: every N(0, 0.01) conv with bias 0 outputs 0, so the logits are the biases.
    cls_scores, _, obj_scores = head(features(head, value=0.))
    expected_logit = (num_stages + 1) * logit(0.001)
    for obj in obj_scores:
        assert torch.allclose(obj, torch.full_like(obj, expected_logit), atol=1e-5)
        closed_form = 1 / (1 + 999 ** (num_stages + 1))  # sigma((S + 1) * logit(0.001))
        assert torch.allclose(obj.sigmoid(), torch.full_like(obj, closed_form), rtol=1e-4)
    if num_stages == 1:
        # The released code's about 1e-6 (docs/methods/resobj.md §3, §8).
        assert obj_scores[0].sigmoid().mean().item() == pytest.approx(1.002e-6, rel=1e-3)
    for cls in cls_scores:
        assert torch.allclose(cls, torch.full_like(cls, -math.log(NUM_CLASSES - 1)), atol=1e-5)


def test_objectness_is_the_sum_of_stage_logits(coco_model_cfg):
    head = tiny_head(coco_model_cfg, num_stages=2)
    x = features(head)[0]
    _, _, obj = head.forward_single(x)
    feat = x
    for conv in head.cls_convs:
        feat = conv(feat)
    f1 = F.relu(head.obj_convs[0].conv(feat))
    f2 = F.relu(head.obj_convs[1].conv(f1))
    f3 = F.relu(head.obj_convs[2].conv(f2))
    expected = head.retina_obj[0](f1) + head.retina_obj[1](f2) + head.retina_obj[2](f3)
    assert obj.shape == (2, head.num_base_priors, IMG // 8, IMG // 8)
    assert torch.allclose(obj, expected, atol=1e-6)


def test_fused_logit_is_the_product_of_sigmoids():
    values = torch.tensor([-100., -30., -5., -0.5, 0., 0.7, 4., 30., 100.])
    obj, cls = torch.meshgrid(values, values, indexing='ij')
    fused = fuse_objectness_logits(cls, obj)
    assert torch.isfinite(fused).all()
    expected = obj.double().sigmoid() * cls.double().sigmoid()
    assert torch.allclose(fused.double().sigmoid(), expected, rtol=1e-5, atol=1e-30)
    # Hand values: o = z = 0 gives p = 1/4, logit -log 3; o = z = -100 gives logit -200.
    assert fuse_objectness_logits(torch.tensor(0.), torch.tensor(0.)).item() == pytest.approx(
        -math.log(3))
    assert fuse_objectness_logits(torch.tensor(-100.), torch.tensor(-100.)).item() == \
        pytest.approx(-200.)


def _constructed_maps(head):
    """Output maps where every class logit is -50 except two anchors on the stride-8 level:
    anchor 0 at (2, 2): class 1 logit 8, objectness -3 -> score 0.0474 (high class, low obj);
    anchor 0 at (10, 10): class 3 logit 2, objectness 6 -> score 0.8787."""
    num_a = head.num_base_priors
    sizes = [IMG // s for s in (8, 16, 32, 64, 128)]
    cls_scores = [torch.full((1, num_a * NUM_CLASSES, s, s), -50.) for s in sizes]
    obj_scores = [torch.full((1, num_a, s, s), -50.) for s in sizes]
    bbox_preds = [torch.zeros(1, num_a * 4, s, s) for s in sizes]
    cls_scores[0][0, 0 * NUM_CLASSES + 1, 2, 2] = 8.
    obj_scores[0][0, 0, 2, 2] = -3.
    cls_scores[0][0, 0 * NUM_CLASSES + 3, 10, 10] = 2.
    obj_scores[0][0, 0, 10, 10] = 6.
    return cls_scores, bbox_preds, obj_scores


def test_predict_scores_are_fused_before_topk_and_threshold(coco_model_cfg):
    head = tiny_head(coco_model_cfg).eval()
    maps = _constructed_maps(head)
    low = torch.sigmoid(torch.tensor(-3.)) * torch.sigmoid(torch.tensor(8.))
    high = torch.sigmoid(torch.tensor(6.)) * torch.sigmoid(torch.tensor(2.))

    # Stock test_cfg (score_thr 0.05): the high-class / low-objectness box (0.047) is filtered.
    result = head.predict_by_feat(*maps, batch_img_metas=[META], rescale=False)[0]
    assert result.scores.tolist() == pytest.approx([high.item()], rel=1e-5)
    assert result.labels.tolist() == [3]
    # Zero deltas: the box is anchor 0 of cell (10, 10) on stride 8, centred at (80, 80).
    box = result.bboxes[0]
    assert torch.allclose(torch.stack([box[0] + box[2], box[1] + box[3]]) / 2,
                          torch.tensor([80., 80.]))

    # Top-1 per level with no threshold: the top-k sees the fused score, not the class score,
    # so the box kept is the objectness-confirmed one although its class logit is lower.
    cfg = copy.deepcopy(head.test_cfg)
    cfg.update(nms_pre=1, score_thr=0.0)
    result = head.predict_by_feat(*maps, batch_img_metas=[META], cfg=cfg)[0]
    top = result.scores.argmax()
    assert result.labels[top].item() == 3
    assert result.scores[top].item() == pytest.approx(high.item(), rel=1e-5)
    assert not any(abs(score - low.item()) < 1e-6 for score in result.scores.tolist())


@pytest.mark.parametrize('score_mode, expected', [
    # (label, score) of every box left at score_thr 0.01 from _constructed_maps.
    ('fused', [(3, 1 / ((1 + math.exp(-6.)) * (1 + math.exp(-2.)))),
               (1, 1 / ((1 + math.exp(3.)) * (1 + math.exp(-8.))))]),
    # Objectness alone, on each anchor's top class: the class logits only pick the label.
    ('objectness', [(3, 1 / (1 + math.exp(-6.))), (1, 1 / (1 + math.exp(3.)))]),
    # Class alone: the objectness that rejected anchor (2, 2) no longer counts.
    ('class', [(1, 1 / (1 + math.exp(-8.))), (3, 1 / (1 + math.exp(-2.)))]),
])
def test_score_mode_evaluates_one_factor_of_the_fused_score(coco_model_cfg, score_mode,
                                                             expected):
    head = tiny_head(coco_model_cfg, score_mode=score_mode).eval()
    cfg = copy.deepcopy(head.test_cfg)
    cfg.update(score_thr=0.01)
    result = head.predict_by_feat(*_constructed_maps(head), batch_img_metas=[META], cfg=cfg)[0]
    order = result.scores.argsort(descending=True)
    assert result.labels[order].tolist() == [label for label, _ in expected]
    assert result.scores[order].tolist() == pytest.approx([score for _, score in expected],
                                                          rel=1e-5)


def test_objectness_score_goes_to_the_top_class_only():
    cls = torch.tensor([[0.5, 2.0, -1.0], [3.0, 2.0, 1.0]]).reshape(1, 2, 3, 1, 1)
    obj = torch.tensor([4.0, -2.0]).reshape(1, 2, 1, 1, 1)
    out = objectness_of_top_class(cls, obj).sigmoid().reshape(-1)
    assert out.tolist() == pytest.approx([0., 1 / (1 + math.exp(-4.)), 0.,
                                          1 / (1 + math.exp(2.)), 0., 0.], abs=1e-7)


def _level_direct_losses(head, cls_scores, bbox_preds, obj_scores, gts, metas):
    """Independent per-level BCE sums on mmdet's own per-level targets (no flattening)."""
    sizes = [c.shape[-2:] for c in cls_scores]
    anchors, valid = head.get_anchors(sizes, metas, device='cpu')
    labels, label_w, bbox_t, bbox_w, _ = head.get_targets(anchors, valid, gts, metas)
    obj_sum = cls_sum = box_sum = 0.
    num_pos = 0
    for cls, box, obj, lab, lw, bt, bw in zip(cls_scores, bbox_preds, obj_scores, labels,
                                               label_w, bbox_t, bbox_w):
        n = cls.size(0)
        obj = obj.permute(0, 2, 3, 1).reshape(n, -1)
        cls = cls.permute(0, 2, 3, 1).reshape(n, -1, NUM_CLASSES)
        box = box.permute(0, 2, 3, 1).reshape(n, -1, 4)
        pos = (lab < NUM_CLASSES) & (lw > 0)
        valid_mask = lw > 0
        num_pos += int(pos.sum())
        obj_sum = obj_sum + F.binary_cross_entropy_with_logits(
            obj[valid_mask], pos[valid_mask].float(), reduction='sum')
        cls_sum = cls_sum + F.binary_cross_entropy_with_logits(
            cls[pos], F.one_hot(lab[pos], NUM_CLASSES).float(), reduction='sum')
        box_sum = box_sum + ((box - bt).abs() * bw).sum()
    return obj_sum, cls_sum, box_sum, num_pos


def test_loss_by_feat_against_direct_bce(coco_model_cfg):
    head = tiny_head(coco_model_cfg)
    outs = head(features(head))
    gts = [gt([[10, 12, 60, 70], [70, 20, 120, 50]], [1, 3]), gt([[30, 30, 90, 100]], [0])]
    metas = [META, META]
    obj_sum, cls_sum, box_sum, num_pos = _level_direct_losses(head, *outs, gts, metas)
    assert num_pos > 0
    losses = head.loss_by_feat(*outs, gts, metas)
    # Three EMA updates from 100 (resobj.md §4): objectness, class and box use the 1st, 2nd and 3rd.
    n1 = 0.9 * 100 + 0.1 * num_pos
    n2 = 0.9 * n1 + 0.1 * num_pos
    n3 = 0.9 * n2 + 0.1 * num_pos
    assert losses['loss_obj'].item() == pytest.approx(obj_sum.item() / (20 * n1), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(cls_sum.item() / (10 * n2), rel=1e-5)
    assert losses['loss_bbox'].item() == pytest.approx(box_sum.item() / n3, rel=1e-5)
    assert head.loss_cls.num_pos_ema.item() == pytest.approx(n3, rel=1e-6)


def test_images_without_ground_truth(coco_model_cfg):
    head = tiny_head(coco_model_cfg)
    outs = head(features(head))
    empty = [gt([], []), gt([], [])]
    losses = head.loss_by_feat(*outs, empty, [META, META])
    assert losses['loss_cls'].item() == 0.0
    assert losses['loss_bbox'].item() == 0.0
    assert losses['loss_obj'].item() > 0.0
    total_loss(losses).backward()
    obj_bias_grad = head.retina_obj[0].bias.grad
    assert torch.isfinite(obj_bias_grad).all()
    assert (obj_bias_grad > 0).all(), 'with no object, objectness must be pushed down'
    # Normaliser: no positive counts as 1.
    assert head.loss_cls.num_pos_ema.item() == pytest.approx(0.729 * 100 + 0.271 * 1)


def test_degenerate_boxes_are_dropped_and_training_stays_finite(coco_model_cfg):
    kept = drop_degenerate_boxes(gt([[10, 10, 10, 40], [5, 5, 50, 5], [0, 0, 30, 30]], [0, 1, 2]))
    assert kept.labels.tolist() == [2]
    head = tiny_head(coco_model_cfg)
    outs = head(features(head))
    gts = [gt([[10, 10, 10, 40], [20, 20, 80, 90]], [0, 1]), gt([[5, 5, 50, 5]], [2])]
    losses = head.loss_by_feat(*outs, gts, [META, META])
    total = total_loss(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_bfloat16_autocast_and_extreme_logits(coco_model_cfg):
    head = tiny_head(coco_model_cfg)
    gts = [gt([[10, 12, 60, 70]], [1]), gt([], [])]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss_by_feat(*head(features(head)), gts, [META, META])
    total = total_loss(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)

    cls_scores, bbox_preds, obj_scores = head(features(head))
    signs = [torch.sign(torch.randn_like(c)) * 100 for c in cls_scores]
    cls_scores = [c * 0 + s for c, s in zip(cls_scores, signs)]
    obj_scores = [o * 0 - 100 for o in obj_scores]
    losses = head.loss_by_feat(cls_scores, bbox_preds, obj_scores, gts, [META, META])
    assert torch.isfinite(total_loss(losses))


def test_bad_arguments(coco_model_cfg):
    with pytest.raises(ValueError, match='num_stages'):
        tiny_head(coco_model_cfg, num_stages=-1)
    with pytest.raises(ValueError, match='num_stages'):
        tiny_head(coco_model_cfg, num_stages=1.5)
    with pytest.raises(ValueError, match='obj_prior_prob'):
        tiny_head(coco_model_cfg, obj_prior_prob=0.0)
    with pytest.raises(TypeError, match='loss_cls'):
        tiny_head(coco_model_cfg, loss_cls=dict(type='FocalLoss', use_sigmoid=True))
    with pytest.raises(ValueError, match="score_mode.*'objectnes'"):
        tiny_head(coco_model_cfg, score_mode='objectnes')
    head = tiny_head(coco_model_cfg)
    cls_scores, bbox_preds, obj_scores = head(features(head))
    with pytest.raises(ValueError, match='obj_scores'):
        head.predict_by_feat(cls_scores, bbox_preds, obj_scores[:4], batch_img_metas=[META] * 2)
    with pytest.raises(ValueError, match=r'obj_scores\[0\]'):
        head.loss_by_feat(cls_scores, bbox_preds, [o[:, :1] for o in obj_scores],
                          [gt([], []), gt([], [])], [META, META])


def test_coco_row_trains_and_predicts_with_stock_test_cfg(repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, COCO_CFG))
    head = model.bbox_head
    assert isinstance(head, ResObjRetinaHead) and head.num_stages == 1
    assert head.test_cfg.score_thr == 0.05 and head.test_cfg.nms_pre == 1000
    losses = train_step(model, demo_batch(model, image_size=IMG, num_items=[0, 2]))
    assert set(losses) == {'loss_cls', 'loss_obj', 'loss_bbox'}
    assert head.loss_cls.num_pos_ema.item() < 100
    # Lift objectness and class priors so that fused scores pass score_thr (at init they are
    # about 1e-6 / 80), then predict with the stock cfg.
    with torch.no_grad():
        head.retina_cls.bias.fill_(0.)
        for score in head.retina_obj:
            score.bias.fill_(10.)
    results = predict(model, demo_batch(model, image_size=IMG, training=False))
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert 0 < len(pred) <= head.test_cfg.max_per_img
        assert (pred.scores >= head.test_cfg.score_thr).all()
        assert ((pred.labels >= 0) & (pred.labels < head.num_classes)).all()


def test_mini_row_with_two_residual_stages_trains(repo_root):
    cfg = load_config(os.path.join(repo_root, MINI_CFG))
    cfg.model.bbox_head.num_stages = 2
    torch.manual_seed(0)
    model = build_detector(cfg)
    head = model.bbox_head
    assert len(head.retina_obj) == 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = demo_batch(model, image_size=IMG, num_items=[0, 2])
    before = [s.weight.detach().clone() for s in head.retina_obj]
    train_step(model, batch, optimizer)
    assert all(not torch.equal(b, s.weight) for b, s in zip(before, head.retina_obj)), \
        'every residual stage must receive gradient'


@pytest.mark.parametrize('num_classes, expected_prior', [(3, 1 / 3), (80, 1 / 80), (1, 0.99)])
def test_class_prior_is_one_over_k_with_the_single_class_stand_in(num_classes, expected_prior):
    # The released code initialises the class logits at prior 1/K; on a one-class set 1/1 would
    # be an infinite bias, so the head takes SINGLE_CLASS_PRIOR (0.99) there.
    head = ResObjRetinaHead(num_classes=num_classes, in_channels=8, feat_channels=8,
                            stacked_convs=1)
    head.init_weights()
    bias = head.retina_cls.bias
    assert torch.allclose(torch.sigmoid(bias), torch.full_like(bias, expected_prior), atol=1e-6)


def test_mini_row_uses_the_released_prior_on_shapes(repo_root):
    from mmdet_imbalance.testing import load_config
    cfg = load_config(f'{repo_root}/configs/mini/retinanet_mini_resobj.py')
    assert cfg.model.bbox_head.cls_prior_prob is None and cfg.model.bbox_head.num_classes == 3

"""Tests of the Sampling-Free dense heads (docs/methods/sampling-free.md §2-§6): the RetinaNet and
RPN losses against an independent per-level computation of the reference normalisation, the
guided gradient, the zero-positive rule, the prior initialisation and its 'auto' error, the
thresholds, FCOS against the stock head, and one training step of every mini row."""
import os

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import FCOSHead
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmdet_imbalance.models.dense_heads import (SamplingFreeFCOSHead, SamplingFreeRetinaHead,
                                                SamplingFreeRPNHead)
from mmdet_imbalance.models.losses import prior_to_bias
from mmdet_imbalance.testing import demo_batch, load_config, predict, shrink_model_cfg, train_step

IMG = 64
NUM_CLASSES = 3
ANCHORS = dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
               ratios=[0.5, 1.0], strides=[8, 16])
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)


def train_cfg(pos=0.5, neg=0.4, min_pos=0.0, allowed_border=-1, sampler=None):
    return ConfigDict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=pos, neg_iou_thr=neg,
                      min_pos_iou=min_pos, ignore_iof_thr=-1),
        sampler=sampler, allowed_border=allowed_border, pos_weight=-1, debug=False)


def retina_head(**kwargs):
    kwargs.setdefault('prior_prob', 0.01)
    return SamplingFreeRetinaHead(
        num_classes=NUM_CLASSES, in_channels=1, feat_channels=4, stacked_convs=1,
        anchor_generator=ANCHORS, train_cfg=train_cfg(), test_cfg=ConfigDict(TEST_CFG), **kwargs)


def rpn_head(allowed_border=0, **kwargs):
    kwargs.setdefault('prior_prob', 0.001)
    return SamplingFreeRPNHead(
        in_channels=1, feat_channels=4, anchor_generator=ANCHORS,
        train_cfg=train_cfg(0.7, 0.3, 0.3, allowed_border), **kwargs)


def gts_and_metas(first_has_gt=True):
    boxes = [InstanceData(bboxes=torch.tensor([[4., 6., 30., 28.], [20., 30., 60., 62.]]),
                          labels=torch.tensor([2, 0])),
             InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))]
    if not first_has_gt:
        boxes[0] = boxes[1]
    metas = [dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), scale_factor=(1., 1.))] * 2
    return boxes, metas


def features(head, seed=0, strides=(8, 16)):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(2, 1, IMG // s, IMG // s, generator=gen) for s in strides]


def reference_losses(head, cls_scores, bbox_preds, gts, metas, beta, reg_weight=1.0):
    """Dec-2019 reference (§5), per level with mmdet's own targets: BCE summed over the valid
    (anchor, class) entries / N_pos, smooth-L1 summed over positives / (4 N_pos)."""
    sizes = [s.shape[-2:] for s in cls_scores]
    anchors, valid = head.get_anchors(sizes, metas, device='cpu')
    labels, label_w, box_t, box_w, _ = head.get_targets(anchors, valid, gts, metas)
    num_pos = sum(int(((lab >= 0) & (lab < head.num_classes)).sum()) for lab in labels)
    bce, reg, ignored = 0., 0., 0
    for score, pred, lab, lw, bt, bw in zip(cls_scores, bbox_preds, labels, label_w, box_t,
                                            box_w):
        n = score.size(0)
        score = score.permute(0, 2, 3, 1).reshape(n, -1, head.num_classes)
        onehot = F.one_hot(lab, head.num_classes + 1)[..., :head.num_classes].float()
        bce = bce + (F.binary_cross_entropy_with_logits(score, onehot, reduction='none')
                     * lw[..., None]).sum()
        ignored += int((lw == 0).sum())
        pred = pred.permute(0, 2, 3, 1).reshape(n, -1, 4)
        pos = bw[..., 0] > 0
        reg = reg + F.smooth_l1_loss(pred[pos], bt[pos], beta=beta, reduction='sum')
    return bce / num_pos, reg_weight * reg / (4 * num_pos), num_pos, ignored


def test_retina_loss_is_the_guided_reference_recipe():
    head = retina_head()
    cls_scores, bbox_preds = head(features(head))
    gts, metas = gts_and_metas()
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    ref_cls, ref_reg, num_pos, ignored = reference_losses(head, cls_scores, bbox_preds, gts,
                                                          metas, beta=0.11)
    assert num_pos > 0 and ignored > 0  # positives, and an ignore band that must drop out
    # mmdet's avg_factor would count the GT-less second image as one more positive.
    assert losses['loss_bbox'].item() == pytest.approx(ref_reg.item(), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(ref_reg.item(), rel=1e-5)
    # Gradient of the guided loss = L_reg / L_cls * gradient of the reference L_cls.
    got = torch.autograd.grad(losses['loss_cls'], cls_scores, retain_graph=True)
    want = torch.autograd.grad(ref_cls, cls_scores)
    factor = ref_reg.item() / ref_cls.item()
    for g, w in zip(got, want):
        assert torch.allclose(g, factor * w, rtol=1e-4, atol=1e-10)


def test_retina_batch_without_positives_gives_zero_losses_and_gradients():
    head = retina_head()
    cls_scores, bbox_preds = head(features(head))
    gts, metas = gts_and_metas(first_has_gt=False)
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    assert losses['loss_cls'].item() == 0.0 and losses['loss_bbox'].item() == 0.0
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    for param in head.parameters():
        assert param.grad is None or torch.count_nonzero(param.grad) == 0


def test_retina_extreme_and_bfloat16_logits_stay_finite():
    head = retina_head()
    gts, metas = gts_and_metas()
    cls_scores, bbox_preds = head(features(head))
    extreme = [(100. * torch.sign(torch.randn_like(s))).requires_grad_() for s in cls_scores]
    losses = head.loss_by_feat(extreme, bbox_preds, gts, metas)
    grads = torch.autograd.grad(losses['loss_cls'], extreme)
    assert torch.isfinite(losses['loss_cls']) and all(torch.isfinite(g).all() for g in grads)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        cls_scores, bbox_preds = head(features(head))
        losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    assert torch.isfinite(losses['loss_cls']) and losses['loss_cls'].item() > 0
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_prior_initialises_the_bias_and_the_test_threshold():
    head = retina_head(prior_prob=1.11352e-5)
    head.init_weights()
    assert torch.allclose(head.retina_cls.bias,
                          torch.full_like(head.retina_cls.bias, prior_to_bias(1.11352e-5)))
    assert head.test_cfg['score_thr'] == 1.11352e-5
    rpn = rpn_head(prior_prob=1.70879e-4)
    rpn.init_weights()
    assert torch.allclose(rpn.rpn_cls.bias, torch.full_like(rpn.rpn_cls.bias, -8.674), atol=1e-3)


@pytest.mark.parametrize('make', [retina_head, rpn_head], ids=['retina', 'rpn'])
def test_auto_prior_without_statistics_says_what_to_run(make):
    head = make(prior_prob='auto')
    cls_scores, bbox_preds = head(features(head))
    gts, metas = gts_and_metas()
    message = r"prior_prob='auto' has no value.*python tools/imbalance_stats\.py <config>"
    with pytest.raises(ValueError, match=message):
        head.init_weights()
    with pytest.raises(ValueError, match=message):
        head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    if make is retina_head:
        with pytest.raises(ValueError, match=message):
            head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas)
    head.apply_imbalance_stats(dict(stage=head.imbalance_stage, prior=0.02,
                                    counts=dict(fg=2, bg=98)))
    head.init_weights()
    assert torch.allclose(getattr(head, head.prior_conv_name).bias.detach(),
                          torch.tensor(prior_to_bias(0.02)))


@pytest.mark.parametrize('kwargs,match', [
    (dict(prior_prob=0.0), 'prior_prob'), (dict(prior_prob=1.5), 'prior_prob'),
    (dict(prior_prob='x'), 'prior_prob'), (dict(guided_scale=0), 'guided_scale'),
    (dict(score_thr_mode='per_class'), 'score_thr_mode')])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        retina_head(**kwargs)


def test_a_sampler_is_rejected():
    with pytest.raises(ValueError, match='sampler'):
        SamplingFreeRPNHead(in_channels=1, feat_channels=4, anchor_generator=ANCHORS,
                            train_cfg=train_cfg(sampler=dict(type='RandomSampler', num=256,
                                                             pos_fraction=0.5)))


def test_threshold_modes_prior_and_class_prior():
    """Every score is 0.0045: the scalar prior 0.01 keeps nothing; the class-adaptive thresholds
    pi_c = N_fg,c / (N_fg + N_bg) = (0.001, 0.004, 0.005) keep classes 0 and 1 only."""
    stats = dict(stage='bbox_head', prior=0.01, counts=dict(fg=10, bg=990, fg_per_class=[1, 4, 5]))
    gts, metas = gts_and_metas()
    kept = {}
    for mode in ('prior', 'class_prior'):
        head = retina_head(score_thr_mode=mode)
        head.apply_imbalance_stats(stats)
        with torch.no_grad():
            head.retina_cls.weight.zero_()
            head.retina_cls.bias.fill_(torch.logit(torch.tensor(0.0045)).item())
            cls_scores, bbox_preds = head(features(head))
        results = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas)
        kept[mode] = set(torch.cat([r.labels for r in results]).tolist())
        if mode == 'class_prior':
            assert torch.allclose(head.class_score_thrs, torch.tensor([0.001, 0.004, 0.005]))
            assert head.test_cfg['score_thr'] == pytest.approx(0.001)
    assert kept == {'prior': set(), 'class_prior': {0, 1}}


def test_rpn_loss_is_half_the_per_coordinate_mean_and_ignores_border_anchors():
    head = rpn_head(allowed_border=0)
    cls_scores, bbox_preds = head(features(head))
    gts, metas = gts_and_metas()
    gts = [InstanceData(bboxes=g.bboxes, labels=torch.zeros_like(g.labels)) for g in gts]
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    assert set(losses) == {'loss_rpn_cls', 'loss_rpn_bbox'}
    ref_cls, ref_reg, num_pos, ignored = reference_losses(head, cls_scores, bbox_preds, gts,
                                                          metas, beta=1 / 9, reg_weight=0.5)
    assert losses['loss_rpn_bbox'].item() == pytest.approx(ref_reg.item(), rel=1e-5)
    assert losses['loss_rpn_cls'].item() == pytest.approx(ref_reg.item(), rel=1e-5)
    # allowed_border=0: the anchors crossing the 64 px border carry no loss.
    anchors, valid = head.get_anchors([s.shape[-2:] for s in cls_scores], metas, device='cpu')
    label_weights = torch.cat(head.get_targets(anchors, valid, gts, metas)[1], dim=1)[0]
    boxes = torch.cat(anchors[0])
    crossing = (boxes[:, :2] < 0).any(1) | (boxes[:, 2:] > IMG).any(1)
    assert crossing.any() and (label_weights[crossing] == 0).all()


def fcos_pair(**kwargs):
    common = dict(num_classes=NUM_CLASSES, in_channels=1, feat_channels=4, stacked_convs=1,
                  strides=[8, 16], regress_ranges=((-1, 16), (16, 1e8)), norm_cfg=None)
    ours = SamplingFreeFCOSHead(**common, **kwargs)
    stock = FCOSHead(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True), **common)
    stock.load_state_dict(ours.state_dict())
    return ours, stock


def test_fcos_guided_loss_against_the_stock_head():
    ours, stock = fcos_pair()
    ours.init_weights()
    assert torch.allclose(ours.conv_cls.bias, torch.full_like(ours.conv_cls.bias, -9.2102),
                          atol=1e-3)  # the 2021 recipe's prior 1e-4
    stock.load_state_dict(ours.state_dict())
    gts, metas = gts_and_metas()
    feats = features(ours)
    outs = ours(feats)
    ref = stock.loss_by_feat(*stock(feats), gts, metas)
    losses = ours.loss_by_feat(*outs, gts, metas)
    for key in ('loss_bbox', 'loss_centerness'):
        assert losses[key].item() == pytest.approx(ref[key].item(), rel=1e-6)
    assert losses['loss_cls'].item() == pytest.approx(ref['loss_bbox'].item(), rel=1e-5)
    got = torch.autograd.grad(losses['loss_cls'], outs[0], retain_graph=True)
    ref_outs = ours(feats)
    ref_cls = stock.loss_by_feat(*ref_outs, gts, metas)['loss_cls']
    want = torch.autograd.grad(ref_cls, ref_outs[0])
    factor = ref['loss_bbox'].item() / ref_cls.item()
    for g, w in zip(got, want):
        assert torch.allclose(g, factor * w, rtol=1e-4, atol=1e-10)
    empty, _ = gts_and_metas(first_has_gt=False)
    zero = ours.loss_by_feat(*ours(feats), empty, metas)
    assert all(zero[k].item() == 0.0 for k in ('loss_cls', 'loss_bbox', 'loss_centerness'))


def build_unresolved(path, prior=None):
    """Build a row's detector without init; an 'auto' head gets ``prior`` set by hand."""
    cfg = load_config(path)
    model = MODELS.build(shrink_model_cfg(cfg.model))
    for name in ('bbox_head', 'rpn_head'):
        head = getattr(model, name, None)
        if prior is not None and getattr(head, 'needs_imbalance_stats', False):
            head.set_prior(prior)
    return cfg, model


@pytest.mark.parametrize('config', ['configs/mini/retinanet_mini_sampling-free.py',
                                    'configs/mini/fcos_mini_sampling-free.py'])
def test_mini_rows_train_one_step_with_an_image_without_gt(config, repo_root):
    torch.manual_seed(0)
    _, model = build_unresolved(os.path.join(repo_root, config), prior=0.02)
    model.init_weights()
    losses = train_step(model, demo_batch(model, image_size=128, num_items=[0, 2]))
    assert losses['loss_cls'].item() > 0
    assert losses['loss_cls'].item() == pytest.approx(losses['loss_bbox'].item(), rel=1e-5)
    with torch.no_grad():  # the value only: the zero gradient is checked on the head alone
        losses = model(**demo_batch(model, image_size=128, num_items=[0, 0]), mode='loss')
    assert losses['loss_cls'].item() == 0.0 and losses['loss_bbox'].item() == 0.0
    assert len(predict(model, demo_batch(model, image_size=128, training=False))) == 2


@pytest.mark.parametrize('config,score_thr', [
    ('configs/table1/retinanet_r50_fpn_1x_coco_sampling-free.py', 1.11352e-5),
    ('configs/table1/fcos_r50_fpn_1x_coco_sampling-free.py', 1e-3)])
def test_coco_thresholds_reach_the_built_test_config(config, score_thr, repo_root):
    cfg, model = build_unresolved(os.path.join(repo_root, config))
    assert model.bbox_head.test_cfg['score_thr'] == score_thr
    if 'retinanet' in config:
        # The head owns the threshold: it follows the prior (sampling-free.md §4), and the config
        # no longer repeats it.
        assert model.bbox_head.prior_prob == score_thr == model.bbox_head.score_thr()
    else:
        assert cfg.model.test_cfg.score_thr == score_thr

"""Tests of DRLossRetinaHead (docs/methods/dr-loss.md §4): per-image reduction over all FPN levels,
mmdet's bbox loss unchanged, and training steps through the shipped configs."""
import os

import pytest
import torch
from mmdet.models.dense_heads import RetinaHead
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmdet_imbalance.models.dense_heads import DRLossRetinaHead
from mmdet_imbalance.models.losses import dr_loss
from mmdet_imbalance.testing import build_detector, demo_batch, load_config, predict, train_step

IMG = 64
NUM_CLASSES = 3
ANCHORS = dict(
    type='AnchorGenerator',
    octave_base_scale=4,
    scales_per_octave=1,
    ratios=[0.5, 1.0],
    strides=[8, 16])


def small_head(head_type=DRLossRetinaHead, neg_iou_thr=0.4, **kwargs):
    """A 2-level, 2-anchor, 3-class head on 1-channel features; neg_iou_thr 0.4 leaves an ignore
    band, so some rows have label weight 0."""
    train_cfg = ConfigDict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=neg_iou_thr,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False)
    kwargs.setdefault('loss_cls', dict(type='DRLoss', use_sigmoid=True))
    return head_type(
        num_classes=NUM_CLASSES,
        in_channels=1,
        feat_channels=4,
        stacked_convs=1,
        anchor_generator=ANCHORS,
        train_cfg=train_cfg,
        **kwargs)


def head_inputs(head, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.rand(2, 1, IMG // s, IMG // s, generator=gen) for s in ANCHORS['strides']]
    cls_scores, bbox_preds = head(feats)
    gts = [
        InstanceData(
            bboxes=torch.tensor([[4., 6., 30., 28.], [20., 30., 60., 62.]]),
            labels=torch.tensor([2, 0])),
        InstanceData(bboxes=torch.tensor([[10., 10., 40., 26.]]), labels=torch.tensor([1])),
    ]
    metas = [dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), scale_factor=1.)] * 2
    return cls_scores, bbox_preds, gts, metas


def test_classification_loss_is_the_mean_of_per_image_losses():
    head = small_head()
    cls_scores, bbox_preds, gts, metas = head_inputs(head)
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)

    anchors, valid = head.get_anchors([s.shape[-2:] for s in cls_scores], metas, device='cpu')
    labels, weights = head.get_targets(anchors, valid, gts, metas)[:2]
    num_base = head.num_base_priors
    images, per_level = [], []
    for i in range(2):
        # mmdet's channel layout is (anchor, class): view (A, C, H, W), rows ordered (y, x, a).
        rows = [
            s[i].view(num_base, NUM_CLASSES, *s.shape[-2:]).permute(2, 3, 0,
                                                                    1).reshape(-1, NUM_CLASSES)
            for s in cls_scores
        ]
        image = (torch.cat(rows), torch.cat([level[i] for level in labels]),
                 torch.cat([level[i] for level in weights]))
        assert (image[1] < NUM_CLASSES).any() and (image[2] == 0).any()
        images.append(image)
        per_level.append(sum(dr_loss(r, lab[i], w[i]) for r, lab, w in zip(rows, labels, weights)))
    expected = (dr_loss(*images[0]) + dr_loss(*images[1])) / 2
    torch.testing.assert_close(losses['loss_cls'], expected)
    # The check can fail: one ranking over the whole batch, or one per level, gives other values.
    whole_batch = dr_loss(*(torch.cat(parts) for parts in zip(*images)))
    assert abs(losses['loss_cls'].item() - whole_batch.item()) > 1e-4
    assert abs(losses['loss_cls'].item() - sum(per_level).item() / 2) > 1e-4


@pytest.mark.parametrize('loss_bbox,reg_decoded_bbox', [
    (dict(type='L1Loss', loss_weight=1.0), False),
    (dict(type='GIoULoss', loss_weight=2.0), True),
])
def test_bbox_loss_equals_stock_retina_head(loss_bbox, reg_decoded_bbox):
    kwargs = dict(loss_bbox=loss_bbox, reg_decoded_bbox=reg_decoded_bbox)
    ours = small_head(**kwargs)
    stock = small_head(RetinaHead, loss_cls=dict(type='FocalLoss', use_sigmoid=True), **kwargs)
    stock.load_state_dict(ours.state_dict())
    inputs = head_inputs(ours, seed=1)
    stock_losses = stock.loss_by_feat(*head_inputs(stock, seed=1))
    torch.testing.assert_close(
        ours.loss_by_feat(*inputs)['loss_bbox'], sum(stock_losses['loss_bbox']))


def test_image_without_ground_truth_has_zero_bbox_loss_and_finite_cls_loss():
    head = small_head()
    cls_scores, bbox_preds, _, metas = head_inputs(head)
    empty = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 2
    losses = head.loss_by_feat(cls_scores, bbox_preds, empty, metas)
    assert losses['loss_bbox'].item() == 0
    assert torch.isfinite(losses['loss_cls']) and losses['loss_cls'].item() > 0
    (losses['loss_cls'] + losses['loss_bbox']).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_head_requires_sigmoid_scores_and_stock_head_rejects_dr_loss():
    with pytest.raises(ValueError, match='use_sigmoid'):
        small_head(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False))
    stock = small_head(RetinaHead)
    with pytest.raises(TypeError, match='avg_factor'):
        stock.loss_by_feat(*head_inputs(stock))


def test_coco_config_settings_and_training_step(repo_root):
    path = os.path.join(repo_root, 'configs/table1/retinanet_r50_fpn_1x_coco_dr-loss.py')
    cfg = load_config(path)
    assert cfg.model.train_cfg.assigner.neg_iou_thr == 0.5
    assert cfg.model.test_cfg.score_thr == 0.2
    assert cfg.model.test_cfg.nms.iou_threshold == 0.5
    model = build_detector(cfg)
    # Prior 0.5: the classifier bias starts at logit(0.5) = 0.
    assert torch.all(model.bbox_head.retina_cls.bias == 0)
    assert isinstance(model.bbox_head, DRLossRetinaHead)
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 2]))
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    assert losses['loss_cls'].item() > 0 and losses['loss_bbox'].item() > 0
    results = predict(model, demo_batch(model, 1, 128, num_items=[1], training=False))
    assert torch.all(results[0].pred_instances.scores >= 0.2)


def test_mini_config_training_step(repo_root):
    model = build_detector(os.path.join(repo_root, 'configs/mini/retinanet_mini_dr-loss.py'))
    assert isinstance(model.bbox_head, DRLossRetinaHead)
    assert torch.all(model.bbox_head.retina_cls.bias == 0)
    train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 3]))

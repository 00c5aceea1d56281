"""ResObj losses (docs/methods/resobj.md §4) against direct ``binary_cross_entropy_with_logits``
sums."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from mmdet_imbalance.models.losses.resobj_loss import (ResObjLoss, ema_loss_normalizers,
                                                       objectness_bce_loss,
                                                       positive_class_bce_loss)

K = 3  # foreground classes; label K is background


def _anchors():
    """6 anchors: two positives (classes 2, 0), two negatives, one ignored positive, one ignored
    negative."""
    labels = torch.tensor([2, K, 0, K, 1, K])
    weights = torch.tensor([1., 1., 1., 1., 0., 0.])
    torch.manual_seed(0)
    cls = torch.randn(6, K, requires_grad=True)
    obj = torch.randn(6, requires_grad=True)
    return cls, obj, labels, weights


def test_objectness_loss_is_bce_over_valid_anchors():
    cls, obj, labels, weights = _anchors()
    loss = objectness_bce_loss(obj, labels, weights, num_classes=K, avg_factor=3.0)
    valid = torch.tensor([0, 1, 2, 3])
    target = torch.tensor([1., 0., 1., 0.])
    expected = F.binary_cross_entropy_with_logits(obj[valid], target, reduction='sum') / 3.0
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(obj.grad[4:] == 0), 'ignored anchors must get no gradient'


def test_class_loss_is_bce_over_positive_anchors_only():
    cls, obj, labels, weights = _anchors()
    loss = positive_class_bce_loss(cls, labels, weights, avg_factor=2.0)
    target = torch.tensor([[0., 0., 1.], [1., 0., 0.]])
    expected = F.binary_cross_entropy_with_logits(cls[[0, 2]], target, reduction='sum') / 2.0
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(cls.grad[[1, 3, 4, 5]] == 0), 'background / ignored rows must get no gradient'
    assert torch.all(cls.grad[[0, 2]] != 0)


def test_no_positive_and_all_ignored():
    cls, obj, labels, weights = _anchors()
    background = torch.full_like(labels, K)
    loss_cls = positive_class_bce_loss(cls, background, weights)
    loss_obj = objectness_bce_loss(obj, background, weights, num_classes=K)
    assert loss_cls.item() == 0.0
    expected = F.binary_cross_entropy_with_logits(obj[:4], torch.zeros(4), reduction='sum')
    assert torch.allclose(loss_obj, expected)
    (loss_cls + loss_obj).backward()
    assert torch.isfinite(cls.grad).all() and torch.isfinite(obj.grad).all()

    cls, obj, labels, _ = _anchors()
    ignored = torch.zeros(6)
    total = (positive_class_bce_loss(cls, labels, ignored)
             + objectness_bce_loss(obj, labels, ignored, num_classes=K))
    assert total.item() == 0.0
    total.backward()
    assert torch.all(cls.grad == 0) and torch.all(obj.grad == 0)


def test_extreme_logits_are_exact_and_finite():
    labels = torch.tensor([0, K])
    weights = torch.ones(2)
    # Positive anchor at objectness -100 and background at +100: BCE is 100 each, exactly.
    obj = torch.tensor([-100., 100.], requires_grad=True)
    loss = objectness_bce_loss(obj, labels, weights, num_classes=K)
    assert torch.allclose(loss, torch.tensor(200.))
    cls = torch.tensor([[-100., 100., 100.], [0., 0., 0.]], requires_grad=True)
    loss_cls = positive_class_bce_loss(cls, labels, weights)
    assert torch.allclose(loss_cls, torch.tensor(300.))
    (loss + loss_cls).backward()
    assert torch.allclose(obj.grad, torch.tensor([-1., 1.]))
    assert torch.isfinite(cls.grad).all()


def test_bfloat16_logits_under_autocast():
    cls, obj, labels, weights = _anchors()
    ref = (positive_class_bce_loss(cls, labels, weights)
           + objectness_bce_loss(obj, labels, weights, num_classes=K))
    cls16 = cls.detach().bfloat16().requires_grad_()
    obj16 = obj.detach().bfloat16().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = (positive_class_bce_loss(cls16, labels, weights)
                + objectness_bce_loss(obj16, labels, weights, num_classes=K))
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, ref, rtol=2e-2)
    loss.backward()
    assert torch.isfinite(cls16.grad.float()).all() and torch.isfinite(obj16.grad.float()).all()


def test_ema_normaliser_sequence_by_hand():
    # n <- 0.9 n + 0.1 max(N, 1), three times (§4, §8): 100 -> 95 -> 90.5 -> 86.45.
    values = ema_loss_normalizers(100.0, 50, momentum=0.9)
    assert torch.allclose(values, torch.tensor([95.0, 90.5, 86.45]))
    # No positive: counts as 1.
    values = ema_loss_normalizers(100.0, 0, momentum=0.9, num_updates=1)
    assert torch.allclose(values, torch.tensor([90.1]))
    # Momentum 0 is the plain per-iteration num_pos.
    assert torch.allclose(ema_loss_normalizers(100.0, 7, momentum=0.0), torch.full((3,), 7.0))


def test_module_weights_normalisers_and_state():
    loss_module = MODELS.build(dict(type='ResObjLoss'))
    assert isinstance(loss_module, ResObjLoss)
    assert loss_module.obj_weight == pytest.approx(1 / 20)
    assert loss_module.cls_weight == pytest.approx(1 / 10)
    assert 'num_pos_ema' in loss_module.state_dict()

    loss_module.train()
    n_obj, n_cls, n_box = loss_module.normalizers(torch.tensor(50))
    assert [n_obj.item(), n_cls.item(), n_box.item()] == pytest.approx([95.0, 90.5, 86.45])
    assert loss_module.num_pos_ema.item() == pytest.approx(86.45)
    loss_module.eval()
    loss_module.normalizers(torch.tensor(1000))
    assert loss_module.num_pos_ema.item() == pytest.approx(86.45), 'eval must not move the EMA'

    cls, obj, labels, weights = _anchors()
    loss_cls, loss_obj = loss_module(cls, obj, labels, weights, obj_avg_factor=n_obj,
                                     cls_avg_factor=n_cls)
    direct_obj = F.binary_cross_entropy_with_logits(
        obj[:4], torch.tensor([1., 0., 1., 0.]), reduction='sum')
    direct_cls = F.binary_cross_entropy_with_logits(
        cls[[0, 2]], torch.tensor([[0., 0., 1.], [1., 0., 0.]]), reduction='sum')
    assert torch.allclose(loss_obj, direct_obj / (20 * 95.0))
    assert torch.allclose(loss_cls, direct_cls / (10 * 90.5))


def test_module_reduction_override_gives_per_anchor_terms_and_sums():
    loss_module = ResObjLoss()
    cls, obj, labels, weights = _anchors()
    per_obj = F.binary_cross_entropy_with_logits(
        obj, torch.tensor([1., 0., 1., 0., 1., 0.]), reduction='none') * weights / 20
    per_cls = torch.zeros(6)
    per_cls[[0, 2]] = F.binary_cross_entropy_with_logits(
        cls[[0, 2]], torch.tensor([[0., 0., 1.], [1., 0., 0.]]), reduction='none').sum(1) / 10
    loss_cls, loss_obj = loss_module(cls, obj, labels, weights, reduction_override='none')
    assert loss_cls.shape == loss_obj.shape == (6, )
    torch.testing.assert_close(loss_obj, per_obj)
    torch.testing.assert_close(loss_cls, per_cls)
    loss_cls, loss_obj = loss_module(cls, obj, labels, weights, reduction_override='sum')
    torch.testing.assert_close(loss_obj, per_obj.sum())
    torch.testing.assert_close(loss_cls, per_cls.sum())
    mean_cls, mean_obj = loss_module(cls, obj, labels, weights, obj_avg_factor=4.0,
                                     cls_avg_factor=2.0)
    torch.testing.assert_close(mean_obj, per_obj.sum() / 4.0)
    torch.testing.assert_close(mean_cls, per_cls.sum() / 2.0)
    with pytest.raises(ValueError, match='reduction'):
        loss_module(cls, obj, labels, weights, reduction_override='max')


@pytest.mark.parametrize('kwargs, match', [
    (dict(obj_weight=-1.0), 'obj_weight'),
    (dict(cls_weight='x'), 'cls_weight'),
    (dict(ema_momentum=1.0), 'ema_momentum'),
    (dict(ema_init=0.0), 'ema_init'),
])
def test_bad_module_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResObjLoss(**kwargs)


def test_bad_tensor_arguments():
    cls, obj, labels, weights = _anchors()
    with pytest.raises(ValueError, match='labels'):
        objectness_bce_loss(obj, labels[:5], weights, num_classes=K)
    with pytest.raises(ValueError, match='label_weights'):
        positive_class_bce_loss(cls, labels, weights[:5])
    with pytest.raises(ValueError, match='cls_logits'):
        positive_class_bce_loss(obj, labels, weights)
    with pytest.raises(ValueError, match='avg_factor'):
        objectness_bce_loss(obj, labels, weights, num_classes=K, avg_factor=0)
    with pytest.raises(ValueError, match='momentum'):
        ema_loss_normalizers(100.0, 3, momentum=math.inf)

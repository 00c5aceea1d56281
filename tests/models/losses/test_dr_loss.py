"""Tests of DR Loss (docs/methods/dr-loss.md): hand-derived vectors (§7), an independent reference
in the maskrcnn-benchmark label convention, gradcheck, empty sets, extreme logits, dtypes and
errors."""
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmdet_imbalance.models.losses import DRLoss, dr_loss

NEG_LAMBDA = 0.1 / math.log(3.5)


def reference_dr_loss(logits,
                      targets,
                      margin=0.5,
                      pos_lambda=1.0,
                      neg_lambda=NEG_LAMBDA,
                      L=6.0,
                      tau=4.0):
    """dr-loss.md §2 written directly in the reference's convention: targets in {-1, 0, 1..C} with
    0 = background and -1 = ignored; positives and negatives picked by boolean indexing."""
    num_classes = logits.size(1)
    classes = torch.arange(1, num_classes + 1).unsqueeze(0)
    t = targets.unsqueeze(1)
    pos = logits[t == classes].sigmoid()
    neg = logits[(t != classes) & (t >= 0)].sigmoid()
    neg_q = torch.exp(neg / neg_lambda) / torch.exp(neg / neg_lambda).sum()
    neg_dist = (neg_q * neg).sum()
    if pos.numel() > 0:
        pos_q = torch.exp(-pos / pos_lambda) / torch.exp(-pos / pos_lambda).sum()
        pos_dist = (pos_q * pos).sum()
    else:
        pos_dist = 1.
    return tau / L * torch.log(1 + torch.exp(L * (neg_dist - pos_dist + margin)))


def to_reference_targets(labels, label_weights, num_classes):
    """mmdet (fg 0..C-1, bg C, weight 0 = ignored) -> maskrcnn-benchmark (bg 0, fg 1..C, -1)."""
    targets = torch.where(labels == num_classes, torch.zeros_like(labels), labels + 1)
    return torch.where(label_weights > 0, targets, torch.full_like(labels, -1))


def loss_and_grad(logits, labels, label_weights=None, **kwargs):
    logits = logits.clone().requires_grad_()
    loss = dr_loss(logits, labels, label_weights, **kwargs)
    loss.backward()
    return loss.detach(), logits.grad


# §7 vectors, each as (positive logits, negative logits, loss, positive grads, negative grads).
HAND_VECTORS = [
    ([0.], [0., 0., 0.], 2.0323916, [-0.9525741], [0.3175247] * 3),
    ([2., -1.], [0.5, -2., -4.], 2.5629781, [-0.0871870,
                                             -0.6063523], [0.9318687, -0.0039641, -0.0002326]),
    ([], [0., -1.], 0.4383138, [], [0.5258617, -0.0346210]),
]


@pytest.mark.parametrize('pos,neg,loss,grad_pos,grad_neg', HAND_VECTORS)
def test_hand_vectors_one_class_layout(pos, neg, loss, grad_pos, grad_neg):
    # C = 1: every positive is a foreground row, every negative a background row (label C = 1).
    logits = torch.tensor(pos + neg, dtype=torch.float64).view(-1, 1)
    labels = torch.tensor([0] * len(pos) + [1] * len(neg))
    value, grad = loss_and_grad(logits, labels)
    assert value.item() == pytest.approx(loss, abs=1e-6)
    expected_grad = torch.tensor(grad_pos + grad_neg, dtype=torch.float64)
    torch.testing.assert_close(grad.view(-1), expected_grad, atol=1e-6, rtol=0)


def test_hand_vector_1_negatives_inside_the_foreground_row():
    # The three negatives of vector 1 are the non-GT classes of the foreground row itself.
    logits = torch.zeros(1, 4, dtype=torch.float64)
    value, grad = loss_and_grad(logits, torch.tensor([2]))
    assert value.item() == pytest.approx(2.0323916, abs=1e-6)
    expected = torch.tensor([[0.3175247, 0.3175247, -0.9525741, 0.3175247]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected, atol=1e-6, rtol=0)


def test_hand_vector_3_in_one_background_row_beside_ignored_rows():
    # Vector 3's two negatives are the two classes of one background row (label C = 2); the
    # ignored rows (a foreground one and a background one, extreme logits) change nothing.
    logits = torch.tensor([[40., -40.], [0., -1.], [-7., 9.]], dtype=torch.float64)
    labels = torch.tensor([0, 2, 2])
    weights = torch.tensor([0., 1., 0.], dtype=torch.float64)
    value, grad = loss_and_grad(logits, labels, weights)
    assert value.item() == pytest.approx(0.4383138, abs=1e-6)
    torch.testing.assert_close(
        grad[1], torch.tensor([0.5258617, -0.0346210], dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.all(grad[[0, 2]] == 0)


def test_matches_independent_reference_on_random_groups():
    gen = torch.Generator().manual_seed(0)
    num_rows, num_classes = 300, 7
    logits = torch.randn(num_rows, num_classes, generator=gen, dtype=torch.float64) * 3 - 1
    labels = torch.randint(0, num_classes + 1, (num_rows, ), generator=gen)
    labels[torch.rand(num_rows, generator=gen) < 0.6] = num_classes
    weights = (torch.rand(num_rows, generator=gen) > 0.2).to(torch.float64)
    for kwargs in ({}, dict(margin=0.2, pos_lambda=0.5, neg_lambda=0.3, L=2.0, tau=1.5)):
        value, grad = loss_and_grad(logits, labels, weights, **kwargs)
        ref_logits = logits.clone().requires_grad_()
        ref = reference_dr_loss(ref_logits, to_reference_targets(labels, weights, num_classes),
                                **kwargs)
        ref.backward()
        assert value.item() == pytest.approx(ref.item(), rel=1e-10)
        torch.testing.assert_close(grad, ref_logits.grad, rtol=1e-8, atol=1e-12)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(12, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 3, 2, 3, 3, 0, 3, 1, 3, 3])
    weights = torch.tensor([1., 1., 1., 0., 1., 1., 0., 1., 1., 1., 1., 1.], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: dr_loss(z, labels, weights), (logits, ))
    assert torch.autograd.gradcheck(
        lambda z: dr_loss(z, labels, weights, margin=0.1, pos_lambda=0.3, neg_lambda=0.5, L=3.0),
        (logits, ))


def test_no_positive_uses_unit_positive_expectation():
    logits = torch.tensor([[0.3, -2.], [1.5, -0.5]], dtype=torch.float64)
    value, _ = loss_and_grad(logits, torch.tensor([2, 2]))
    p = torch.sigmoid(logits).view(-1)
    q = torch.softmax(p / NEG_LAMBDA, 0)
    expected = 4. / 6. * math.log1p(math.exp(6. * ((q * p).sum().item() - 1. + 0.5)))
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_no_negative_uses_zero_negative_expectation():
    # One class and only foreground rows: no negative entry at all.
    logits = torch.tensor([[1.], [-0.5]], dtype=torch.float64)
    value, grad = loss_and_grad(logits, torch.tensor([0, 0]))
    p = torch.sigmoid(logits).view(-1)
    q = torch.softmax(-p, 0)
    expected = 4. / 6. * math.log1p(math.exp(6. * (0. - (q * p).sum().item() + 0.5)))
    assert value.item() == pytest.approx(expected, rel=1e-12)
    assert torch.isfinite(grad).all() and torch.all(grad < 0)


@pytest.mark.parametrize('num_rows', [0, 5])
def test_all_rows_ignored_gives_finite_attached_zero(num_rows):
    logits = torch.randn(num_rows, 4).mul(100).requires_grad_()
    labels = torch.full((num_rows, ), 4)
    labels[:2] = 1
    loss = dr_loss(logits, labels, torch.zeros(num_rows))
    assert loss.item() == 0. and loss.requires_grad
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_ignored_rows_contribute_nothing():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 6, (20, ), generator=gen)
    weights = torch.ones(20, dtype=torch.float64)
    weights[[1, 4, 9, 15]] = 0.
    value, grad = loss_and_grad(logits, labels, weights)
    kept = weights > 0
    sub_value, sub_grad = loss_and_grad(logits[kept], labels[kept])
    assert value.item() == pytest.approx(sub_value.item(), rel=1e-12)
    torch.testing.assert_close(grad[kept], sub_grad)
    assert torch.all(grad[~kept] == 0)
    # Row weights are a mask: their magnitude does not matter (module docstring).
    scaled_value, _ = loss_and_grad(logits, labels, weights * 3.)
    assert scaled_value.item() == pytest.approx(value.item(), rel=1e-12)


def test_non_gt_classes_of_foreground_rows_are_negatives():
    # Row 0 is foreground of class 1: raising its class-0 logit raises P- (a negative got harder),
    # so the loss grows; raising its class-1 logit (the positive) lowers the loss.
    logits = torch.tensor([[-3., 0.], [-2., -1.]], dtype=torch.float64)
    labels = torch.tensor([1, 2])
    base = dr_loss(logits, labels).item()
    harder_negative = logits.clone()
    harder_negative[0, 0] = 1.
    easier_positive = logits.clone()
    easier_positive[0, 1] = 2.
    assert dr_loss(harder_negative, labels).item() > base
    assert dr_loss(easier_positive, labels).item() < base


@pytest.mark.parametrize('scale', [50., 100.])
def test_extreme_logits_are_finite(scale):
    gen = torch.Generator().manual_seed(3)
    logits = torch.sign(torch.randn(200, 6, generator=gen)) * scale
    labels = torch.randint(0, 7, (200, ), generator=gen)
    value, grad = loss_and_grad(logits, labels)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    # Every positive at +scale, every negative at -scale: the ranking is perfect, P- = 0, P+ = 1.
    perfect = torch.full((4, 3), -scale)
    perfect[0, 1] = perfect[2, 0] = scale
    value, grad = loss_and_grad(perfect, torch.tensor([1, 3, 0, 3]))
    assert value.item() == pytest.approx(4. / 6. * math.log1p(math.exp(6. * -0.5)), rel=1e-6)
    assert torch.isfinite(grad).all()


def test_bfloat16_under_autocast_is_float32_and_close():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(500, 8, generator=gen)
    labels = torch.randint(0, 9, (500, ), generator=gen)
    expected = dr_loss(logits.bfloat16().float(), labels)
    low = logits.bfloat16().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = dr_loss(low, labels)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert low.grad.dtype == torch.bfloat16 and torch.isfinite(low.grad.float()).all()


def test_module_is_registered_and_scales_by_loss_weight():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(30, 4, generator=gen)
    labels = torch.randint(0, 5, (30, ), generator=gen)
    module = MODELS.build(dict(type='DRLoss', use_sigmoid=True, loss_weight=2.5, L=3.0))
    assert isinstance(module, DRLoss)
    torch.testing.assert_close(module(logits, labels), 2.5 * dr_loss(logits, labels, L=3.0))
    default = DRLoss()
    assert (default.margin, default.pos_lambda, default.L, default.tau) == (0.5, 1.0, 6.0, 4.0)
    assert default.neg_lambda == pytest.approx(0.0798236, abs=1e-7)


def test_module_takes_no_avg_factor_and_rejects_softmax_scores():
    # DR Loss is normalised by its expectations: avg_factor is not an argument (dr-loss.md §4).
    with pytest.raises(TypeError, match='avg_factor'):
        DRLoss()(torch.zeros(3, 2), torch.tensor([0, 1, 2]), avg_factor=4)
    with pytest.raises(ValueError, match='use_sigmoid'):
        DRLoss(use_sigmoid=False)


@pytest.mark.parametrize('kwargs,match', [
    (dict(neg_lambda=0.), 'neg_lambda'),
    (dict(pos_lambda=-1.), 'pos_lambda'),
    (dict(L=0.), 'L must'),
    (dict(tau=-1.), 'tau'),
    (dict(margin=float('nan')), 'margin'),
])
def test_bad_hyper_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dr_loss(torch.zeros(2, 2), torch.tensor([0, 2]), **kwargs)
    with pytest.raises(ValueError, match=match):
        DRLoss(**kwargs)


def test_bad_inputs_raise():
    logits = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\]'):
        dr_loss(logits, torch.tensor([0, 3, 1]))
    with pytest.raises(ValueError, match='labels must lie'):
        dr_loss(logits, torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match='labels must have shape'):
        dr_loss(logits, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match='labels must be an integer'):
        dr_loss(logits, torch.tensor([0., 1., 2.]))
    with pytest.raises(ValueError, match='cls_score must have shape'):
        dr_loss(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match='cls_score must be a floating-point'):
        dr_loss(torch.zeros(3, 2, dtype=torch.long), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='label_weights must have shape'):
        dr_loss(logits, torch.tensor([0, 1, 2]), torch.ones(3, 2))


def test_float32_large_group_matches_float64():
    # COCO-like proportions (many easy negatives, few positives): float32 keeps ~6 digits.
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(20000, 20, generator=gen) * 2 - 4
    labels = torch.full((20000, ), 20)
    labels[:50] = torch.randint(0, 20, (50, ), generator=gen)
    value32, grad32 = loss_and_grad(logits, labels)
    value64, grad64 = loss_and_grad(logits.double(), labels)
    assert value32.item() == pytest.approx(value64.item(), rel=1e-5)
    # Relative to the largest gradient: negative gradients cross zero near p = P- - lambda-.
    scale = grad64.abs().max().item()
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-3, atol=1e-4 * scale)

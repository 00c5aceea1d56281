"""Tests of Sampling-Free's guided loss and optimal prior (docs/methods/sampling-free.md §2, §3,
§9)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmdet_imbalance.models.losses import guided_loss, optimal_prior, prior_to_bias


def test_spec_oracle_value_and_gradient_factor():
    # §9: L_cls = 2.0 and L_reg = 0.5 give a guided loss of 0.5 and a gradient factor of
    # 0.25 on grad(L_cls); twice both for the R-CNN scale s = 2.
    x = torch.tensor(2.0, requires_grad=True)
    for scale, value, factor in ((1.0, 0.5, 0.25), (2.0, 1.0, 0.5)):
        x.grad = None
        out = guided_loss(x * 1.0, torch.tensor(0.5), scale=scale)
        out.backward()
        assert out.item() == pytest.approx(value)
        assert x.grad.item() == pytest.approx(factor)


@pytest.mark.parametrize('scale', [1.0, 2.0])
def test_value_and_gradient_against_autograd(scale):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=gen, requires_grad=True)
    targets = (torch.rand(50, 4, generator=gen) < 0.1).float()
    deltas = torch.randn(7, 4, generator=gen, requires_grad=True)
    loss_cls = F.binary_cross_entropy_with_logits(logits, targets, reduction='sum') / 7
    loss_reg = F.smooth_l1_loss(deltas, torch.zeros(7, 4), beta=0.11)
    out = guided_loss(loss_cls, loss_reg, scale=scale)
    assert out.item() == pytest.approx(scale * loss_reg.item(), rel=1e-6)

    grad_guided, = torch.autograd.grad(out, logits, retain_graph=True)
    grad_cls, = torch.autograd.grad(loss_cls, logits, retain_graph=True)
    expected = scale * loss_reg.detach() * grad_cls / loss_cls.detach()
    assert torch.allclose(grad_guided, expected, rtol=1e-5, atol=1e-9)
    # sg(.) on the ratio: the guided term sends nothing to the regression branch.
    grad_reg, = torch.autograd.grad(out, deltas, allow_unused=True)
    assert grad_reg is None or torch.count_nonzero(grad_reg) == 0


def test_constant_normaliser_of_cls_cancels():
    logits = torch.randn(20, requires_grad=True)
    targets = torch.zeros(20)
    reg = torch.tensor(0.3)
    grads = []
    for norm in (1.0, 37.0):
        loss_cls = F.binary_cross_entropy_with_logits(logits, targets, reduction='sum') / norm
        grads.append(torch.autograd.grad(guided_loss(loss_cls, reg), logits)[0])
    assert torch.allclose(grads[0], grads[1], rtol=1e-5)


def test_no_positive_gives_zero_value_and_gradient():
    logits = torch.randn(30, requires_grad=True)
    loss_cls = F.binary_cross_entropy_with_logits(logits, torch.zeros(30), reduction='sum')
    out = guided_loss(loss_cls, torch.zeros(()))
    out.backward()
    assert out.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize('cls_value', [0.0, float('inf'), float('nan'), -1.0])
def test_undefined_ratio_gives_zero_not_nan(cls_value):
    x = torch.tensor(cls_value, requires_grad=True)
    out = guided_loss(x * 1.0, torch.tensor(0.7))
    out.backward()
    assert out.item() == 0.0
    assert torch.isfinite(x.grad) and x.grad.item() == 0.0


def test_extreme_and_bfloat16_logits_stay_finite():
    logits = torch.tensor([100., -100., 100., -100.], requires_grad=True)
    targets = torch.tensor([1., 0., 0., 1.])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss_cls = F.binary_cross_entropy_with_logits(logits.bfloat16(), targets, reduction='sum')
        out = guided_loss(loss_cls, torch.tensor(0.5, dtype=torch.bfloat16))
    out.backward()
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(0.5)
    assert torch.isfinite(logits.grad).all()


def test_bad_inputs_raise():
    one = torch.tensor(1.0)
    with pytest.raises(TypeError, match='loss_cls'):
        guided_loss(1.0, one)
    with pytest.raises(ValueError, match='loss_reg'):
        guided_loss(one, torch.ones(3))
    with pytest.raises(ValueError, match='scale'):
        guided_loss(one, one, scale=0)


def test_optimal_prior_and_bias_from_counts():
    # pi* = N_fg / (C (N_fg + N_bg)): 100 foreground and 99 900 background anchors, 80 classes.
    assert optimal_prior(100, 99_900, 80) == pytest.approx(100 / (80 * 100_000))
    assert optimal_prior(1, 9, 1) == pytest.approx(0.1)
    # It minimises the initial summed BCE -N_fg log p - (C N - N_fg) log(1 - p).
    fg, bg, c = 30, 1200, 5
    pi = optimal_prior(fg, bg, c)

    def bce(p):
        return -fg * math.log(p) - (c * (fg + bg) - fg) * math.log(1 - p)
    assert bce(pi) < bce(pi * 1.01) and bce(pi) < bce(pi * 0.99)
    # Priors and biases of COCO RetinaNet / RPN and FCOS (sampling-free.md §2, §9).
    assert prior_to_bias(1.11352e-5) == pytest.approx(-11.405, abs=1e-3)
    assert prior_to_bias(1.70879e-4) == pytest.approx(-8.674, abs=1e-3)
    assert prior_to_bias(1e-4) == pytest.approx(-9.210, abs=1e-3)
    assert torch.sigmoid(torch.tensor(prior_to_bias(0.3), dtype=torch.float64)).item() \
        == pytest.approx(0.3)


@pytest.mark.parametrize('args,match', [((0, 10, 1), 'num_fg'), ((5, -1, 1), 'num_bg'),
                                        ((5, 10, 0), 'num_classes'), ((5.0, 10, 1), 'num_fg')])
def test_optimal_prior_rejects_bad_counts(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optimal_prior(*args)


@pytest.mark.parametrize('prior', [0, 1, -0.1, 'auto', True])
def test_prior_to_bias_rejects_values_outside_the_open_interval(prior):
    with pytest.raises(ValueError, match='prior'):
        prior_to_bias(prior)

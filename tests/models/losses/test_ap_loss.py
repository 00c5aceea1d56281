"""Tests of ap_loss / APLoss: hand-derived vectors of docs/methods/ap-loss.md §10 and a loop oracle.

The oracle below is a direct transcription of the per-positive loop of §3 (written for this test,
not taken from the reference repository). The error-driven gradient is compared with the oracle's
returned gradient, not with autograd on the loss value (§9).
"""
import pytest
import torch

from mmdet_imbalance.models.losses import APLoss, ap_loss


def loop_ap_loss(logits, targets, delta=1.0):
    """ap-loss.md §3 steps 1-5, one positive at a time, in float64.

    Returns (loss, grad, number of positives whose primary terms were rescaled by interpolation).
    """
    s = logits.detach().reshape(-1).double()
    y = targets.reshape(-1)
    grad = torch.zeros_like(s)
    if not (y == 1).any():
        return torch.tensor(0., dtype=torch.float64), grad.view_as(logits), 0

    def step(x):
        return torch.clamp(x / (2 * delta) + 0.5, 0, 1)

    pos = (y == 1).nonzero().squeeze(1)
    neg = (y == 0).nonzero().squeeze(1)
    pos_s = s[pos]
    neg = neg[s[neg] >= pos_s.min() - delta]  # valid negatives
    neg_s = s[neg]
    neg_grad = torch.zeros_like(neg_s)
    max_prec, prec_sum, num_rescaled = 0., 0., 0
    for i in pos[torch.argsort(pos_s)].tolist():
        a = step(pos_s - s[i]).sum() + 0.5
        t = step(neg_s - s[i])
        b = t.sum()
        t = t / (a + b)
        cur = (a / (a + b)).item()
        if max_prec <= cur:
            max_prec = cur
        else:
            t = t * (1 - max_prec) / (1 - cur)
            num_rescaled += 1
        neg_grad += t
        grad[i] = -(1 - max_prec)
        prec_sum += max_prec
    num_pos = pos.numel()
    grad[neg] = neg_grad
    grad /= num_pos
    loss = torch.tensor(1 - prec_sum / num_pos, dtype=torch.float64)
    return loss, grad.view_as(logits), num_rescaled


def loss_and_grad(logits, targets, delta=1.0):
    x = logits.clone().requires_grad_()
    loss = ap_loss(x, targets, delta)
    loss.backward()
    return loss.detach(), x.grad


def make_case(pos, neg, dtype=torch.float64):
    logits = torch.tensor(list(pos) + list(neg), dtype=dtype)
    targets = torch.tensor([1] * len(pos) + [0] * len(neg))
    return logits, targets


@pytest.mark.parametrize(
    'pos,neg,exp_loss,exp_pos,exp_neg',
    [
        # §10 case 1: the negative -3.0 lies below the cut-off -1.0.
        ([2.0, 0.0], [1.0, -0.5, -3.0], 0.1923077, [0, -0.1923077], [0.1538462, 0.0384615, 0]),
        # §10 case 2: raw precisions 1/2, 2/3, 3/4 all interpolated to 3/4.
        ([5.0, 0.0, -5.0], [10.0], 0.25, [-0.0833333] * 3, [0.25]),
        # §10 case 3.
        ([0.3, -0.2, 1.5], [0.9, 0.1, -0.1, -2.0, 0.2], 0.3814089,
         [-0.1547619, -0.1710914, -0.0555556], [0.1780447, 0.0700941, 0.0562579, 0, 0.0770122]),
    ])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_hand_derived_vectors(pos, neg, exp_loss, exp_pos, exp_neg, dtype):
    logits, targets = make_case(pos, neg, dtype)
    loss, grad = loss_and_grad(logits, targets)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert loss.item() == pytest.approx(exp_loss, abs=1e-6)
    expected = torch.tensor(exp_pos + exp_neg, dtype=torch.float64)
    torch.testing.assert_close(grad.double(), expected, atol=1e-6, rtol=0)


def test_loop_oracle_reproduces_hand_vectors():
    """The oracle itself must agree with ap-loss.md §10 before it is trusted on random inputs."""
    logits, targets = make_case([0.3, -0.2, 1.5], [0.9, 0.1, -0.1, -2.0, 0.2])
    loss, grad, _ = loop_ap_loss(logits, targets)
    assert loss.item() == pytest.approx(0.3814089, abs=1e-6)
    assert grad[2].item() == pytest.approx(-0.0555556, abs=1e-6)


def random_case(gen, num, num_pos, scale, ties, ignore_frac=0.1, shape=None):
    logits = torch.randn(num, generator=gen, dtype=torch.float64) * scale
    if ties:
        # Logits on a 0.25 grid: tied negatives, tied positives, and negatives exactly on the ramp
        # ends s_i +- delta (including the cut-off min(s_P) - delta) for every tested delta.
        logits = torch.round(logits * 4) / 4
    targets = torch.zeros(num, dtype=torch.long)
    perm = torch.randperm(num, generator=gen)
    targets[perm[:num_pos]] = 1
    num_ign = int(ignore_frac * num)
    targets[perm[num_pos:num_pos + num_ign]] = -1
    if shape is not None:
        logits, targets = logits.view(shape), targets.view(shape)
    return logits, targets


@pytest.mark.parametrize('ties', [False, True])
@pytest.mark.parametrize('delta', [1.0, 0.5, 2.0])
def test_matches_loop_oracle_float64(ties, delta):
    gen = torch.Generator().manual_seed(int(ties) * 100 + int(delta * 10))
    num_rescaled = 0
    for trial in range(20):
        num = int(torch.randint(2, 400, (1, ), generator=gen))
        num_pos = int(torch.randint(1, min(num, 40) + 1, (1, ), generator=gen))
        scale = [0.3, 1.0, 3.0, 10.0][trial % 4]
        logits, targets = random_case(gen, num, num_pos, scale, ties)
        exp_loss, exp_grad, rescaled = loop_ap_loss(logits, targets, delta)
        loss, grad = loss_and_grad(logits, targets, delta)
        torch.testing.assert_close(loss, exp_loss, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(grad, exp_grad, rtol=1e-6, atol=1e-12)
        num_rescaled += rescaled
    # The random cases must exercise the interpolation rescaling branch of ap-loss.md §3 step 4.
    assert num_rescaled > 0


def test_interpolation_rescaling_against_oracle():
    """A case built so that most positives are interpolated (high-scoring negatives on top)."""
    gen = torch.Generator().manual_seed(7)
    pos = torch.linspace(-3, 3, 25, dtype=torch.float64)
    neg = torch.cat([
        torch.randn(200, generator=gen, dtype=torch.float64) - 2,
        torch.tensor([3.5, 2.9, 4.0], dtype=torch.float64)
    ])
    logits = torch.cat([pos, neg])
    targets = torch.cat([torch.ones(25, dtype=torch.long), torch.zeros(203, dtype=torch.long)])
    exp_loss, exp_grad, rescaled = loop_ap_loss(logits, targets)
    assert rescaled >= 5
    loss, grad = loss_and_grad(logits, targets)
    torch.testing.assert_close(loss, exp_loss, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad, exp_grad, rtol=1e-6, atol=1e-12)
    # Rescaling keeps the error-driven balance (§3): sum of negative grads = 1 - mean prec.
    assert grad[25:].sum().item() == pytest.approx(loss.item(), rel=1e-9)


def test_large_input_float32_matches_float64():
    """Many negatives (grid lookup with binary search only in boundary cells) in float32."""
    gen = torch.Generator().manual_seed(3)
    logits, targets = random_case(gen, 200_000, 150, 2.0, ties=False, shape=(2000, 100))
    loss64, grad64 = loss_and_grad(logits, targets)
    loss32, grad32 = loss_and_grad(logits.float(), targets)
    assert loss32.item() == pytest.approx(loss64.item(), rel=1e-5)
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-4, atol=1e-9)
    exp_loss, exp_grad, _ = loop_ap_loss(logits, targets)
    torch.testing.assert_close(loss64, exp_loss, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad64, exp_grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize('seed', range(5))
def test_invariants(seed):
    gen = torch.Generator().manual_seed(seed)
    logits, targets = random_case(gen, 3000, 30, 2.0, ties=seed % 2 == 1, shape=(100, 30))
    loss, grad = loss_and_grad(logits, targets)
    # Error-driven balance (ap-loss.md §3): sum of negative grads = - sum of positive grads.
    assert grad[targets == 0].sum().item() == pytest.approx(
        -grad[targets == 1].sum().item(), rel=1e-9)
    assert 0 <= loss.item() <= 1
    assert (grad[targets == 1] <= 0).all() and (grad[targets == 0] >= 0).all()
    # Ignored entries get zero.
    assert (grad[targets == -1] == 0).all()
    # Negatives below the cut-off get zero.
    cut = logits[targets == 1].min() - 1.0
    assert (grad[(targets == 0) & (logits < cut)] == 0).all()
    # Invariance to a constant shift of all logits (exact powers of two keep float64 exact).
    loss_shift, grad_shift = loss_and_grad(logits + 8.0, targets)
    assert loss_shift.item() == pytest.approx(loss.item(), rel=1e-9)
    torch.testing.assert_close(grad_shift, grad, rtol=1e-7, atol=1e-12)


def test_no_positive_gives_zero_loss_and_grad():
    logits = torch.randn(50, 4, dtype=torch.float32)
    targets = torch.zeros(50, 4, dtype=torch.long)
    targets[:5] = -1
    loss, grad = loss_and_grad(logits, targets)
    assert loss.item() == 0 and grad is not None and (grad == 0).all()
    loss, grad = loss_and_grad(torch.zeros(0, 80), torch.zeros(0, 80, dtype=torch.long))
    assert loss.item() == 0 and grad.shape == (0, 80)


def test_all_ignored_or_no_negative():
    logits = torch.randn(30)
    loss, grad = loss_and_grad(logits, torch.full((30, ), -1))
    assert loss.item() == 0 and (grad == 0).all()
    # Only positives: every precision is 1.
    loss, grad = loss_and_grad(logits, torch.ones(30, dtype=torch.long))
    assert loss.item() == 0 and (grad == 0).all()


def test_gradient_scaled_by_incoming_gradient_and_loss_weight():
    logits, targets = make_case([2.0, 0.0], [1.0, -0.5, -3.0])
    _, grad = loss_and_grad(logits, targets)
    x = logits.clone().requires_grad_()
    (ap_loss(x, targets) * -2.5).backward()
    torch.testing.assert_close(x.grad, -2.5 * grad)
    x = logits.clone().requires_grad_()
    loss = APLoss(delta=1.0, loss_weight=3.0)(x, targets)
    loss.backward()
    assert loss.item() == pytest.approx(3 * 0.1923077, abs=1e-6)
    torch.testing.assert_close(x.grad, 3 * grad)


def test_extreme_logits_and_bfloat16_autocast():
    gen = torch.Generator().manual_seed(1)
    logits, targets = random_case(gen, 4000, 20, 1.0, ties=False, shape=(400, 10))
    logits = torch.where(logits > 0, 100.0, -100.0).double() + logits * 0.01
    exp_loss, _, _ = loop_ap_loss(logits, targets)
    loss, grad = loss_and_grad(logits.float(), targets)
    assert torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(exp_loss.item(), abs=1e-5)
    x = logits.to(torch.bfloat16).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = ap_loss(x, targets)
    loss.backward()
    assert loss.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # bf16 rounding of the logits changes the ranking only slightly: compare to float32 of the
    # same rounded logits.
    ref_loss, ref_grad = loss_and_grad(x.detach().float(), targets)
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-2)
    torch.testing.assert_close(x.grad.float(), ref_grad, rtol=2e-2, atol=1e-4)


@pytest.mark.parametrize(
    'targets,delta,error',
    [
        (torch.zeros(3, dtype=torch.long), 1.0, ValueError),  # shape mismatch
        (torch.tensor([[1, 0], [2, 0]]), 1.0, ValueError),  # value 2
        (torch.tensor([[1., 0.], [0.5, 0.]]), 1.0, ValueError),  # value 0.5
        (torch.tensor([[True, False], [False, False]]), 1.0, TypeError),
        (torch.tensor([[1, 0], [0, -1]]), 0.0, ValueError),  # delta must be > 0
    ])
def test_bad_input_raises(targets, delta, error):
    with pytest.raises(error):
        ap_loss(torch.zeros(2, 2), targets, delta)


def test_non_finite_logits_raise():
    with pytest.raises(ValueError, match='NaN or inf'):
        ap_loss(torch.tensor([0., float('nan')]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match='delta'):
        APLoss(delta=-1.0)

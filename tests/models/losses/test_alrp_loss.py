"""aLRP Loss against the reference's worked examples (docs/methods/alrp-loss.md §7), a
per-positive loop oracle written from the reference algorithm (alrp-loss.md §1-§2), and its
invariants."""
import pytest
import torch

from mmdet_imbalance.models.losses import ALRPLoss, alrp_loss

# (logits, labels, E, cls_loss, logit gradient, loc_loss, dloc/dE): alrp-loss.md §7.
WORKED = [
    ([-1.2, 0.3, 2, 0.5, 0.9, -3], [0, 0, 0, 1, 0, 0], [0.4], 0.6774193548,
     [0, 0.1290322581, 0.3225806452, -0.6774193548, 0.2258064516, 0], 0.1290322581,
     [0.3225806452]),
    ([1, 1, 0.2, 1, -0.5, 0.7, 0.2, -2], [1, 1, 1, 0, 0, 1, 0, 0], [0.2, 0.9, 0.5, 0.35],
     0.2588448423,
     [-0.1198529412, -0.08553921569, -0.137377451, 0.3419904848, 0.01329459203, -0.1260869565,
      0.1135714875, 0], 0.3967391304, [0.2195225916, 0.3175618073, 0.04901960784, 0.121483376]),
    ([0.5, -0.499998, 4, 3, -1, -1.5], [1, 0, -1, -1, 1, 0], [0.25, 0.6], 0.1666672778,
     [0, 0.156250125, 0, 0, -0.2083334306, 0.05208330556], 0.2666664944,
     [0.6666661111, 0.1666666111]),
]


def run(logits, labels, errors, dtype=torch.float64, delta=1.0):
    x = torch.as_tensor(logits, dtype=dtype).clone().requires_grad_()
    e = torch.as_tensor(errors, dtype=dtype).clone().requires_grad_()
    cls_loss, loc_loss = alrp_loss(x, torch.as_tensor(labels), e, delta)
    cls_loss.backward()
    assert e.grad is None  # the classification component does not reach the box branch
    loc_loss.backward()
    return cls_loss.detach(), x.grad, loc_loss.detach(), e.grad


def oracle(logits, labels, errors, delta=1.0, eps=1e-5):
    """The reference's loop over positives and the head's cumsum walk (alrp-loss.md §1-§2)."""
    s = torch.as_tensor(logits, dtype=torch.float64).tolist()
    t = list(labels)
    E = list(errors)
    pos = [i for i in range(len(s)) if t[i] == 1]
    neg = [j for j in range(len(s)) if t[j] == 0]
    grad = [0.0] * len(s)

    def H(x):
        return min(max(x / (2 * delta) + 0.5, 0.0), 1.0)

    ranks, errs = [], []
    for a, i in enumerate(pos):
        h = [0.0 if k == i else H(s[k] - s[i]) for k in pos]
        fp = sum(H(s[j] - s[i]) for j in neg)
        rank = 1 + sum(h) + fp
        ranks.append(rank)
        errs.append(fp / rank)
        if fp > eps:
            g = -(sum(hk * ek for hk, ek in zip(h, E)) + fp) / rank
            grad[i] = g
            for j in neg:
                grad[j] += H(s[j] - s[i]) * (-g) / fp
    n = len(pos)
    # Descending logit, ties: higher flat index first.
    desc = sorted(range(n), key=lambda a: (s[pos[a]], a), reverse=True)
    walk, loc, dloc = 0.0, 0.0, [0.0] * n
    for m, a in enumerate(desc):
        walk += E[a]
        loc += walk / ranks[a]
        for b in desc[:m + 1]:
            dloc[b] += 1 / ranks[a] / n
    return (sum(errs) / n, torch.tensor(grad, dtype=torch.float64) / n, loc / n,
            torch.tensor(dloc, dtype=torch.float64))


def random_case(seed, n=300, num_pos=25, spread=2.0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, generator=gen, dtype=torch.float64) * spread
    labels = torch.zeros(n, dtype=torch.long)
    perm = torch.randperm(n, generator=gen)
    labels[perm[:num_pos]] = 1
    labels[perm[num_pos:num_pos + 20]] = -1
    logits[perm[1]] = logits[perm[0]]
    logits[perm[num_pos + 30]] = logits[perm[2]]
    errors = torch.rand(num_pos, generator=gen, dtype=torch.float64) * 2
    return logits, labels, errors


@pytest.mark.parametrize('case', WORKED, ids=['A', 'B-ties', 'C-eps-ignored'])
def test_worked_examples_float64(case):
    logits, labels, errors, cls_ref, grad_ref, loc_ref, dloc_ref = case
    cls_loss, grad, loc_loss, dloc = run(logits, labels, errors)
    f64 = dict(dtype=torch.float64)
    torch.testing.assert_close(cls_loss, torch.tensor(cls_ref, **f64), rtol=1e-9, atol=0)
    torch.testing.assert_close(grad, torch.tensor(grad_ref, **f64), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(loc_loss, torch.tensor(loc_ref, **f64), rtol=1e-9, atol=0)
    torch.testing.assert_close(dloc, torch.tensor(dloc_ref, **f64), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('seed', range(4))
def test_matches_the_loop_oracle(seed):
    logits, labels, errors = random_case(seed)
    cls_loss, grad, loc_loss, dloc = run(logits, labels, errors)
    ref_cls, ref_grad, ref_loc, ref_dloc = oracle(logits, labels.tolist(), errors.tolist())
    torch.testing.assert_close(cls_loss.item(), ref_cls, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(loc_loss.item(), ref_loc, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dloc, ref_dloc, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize('seed', range(3))
def test_invariants(seed):
    logits, labels, errors = random_case(seed)
    _, grad, _, _ = run(logits, labels, errors)
    assert abs(grad.sum().item()) < 1e-14
    assert (grad[labels == -1] == 0).all()
    assert (grad[labels == 0] >= 0).all() and (grad[labels == 1] <= 0).all()


@pytest.mark.parametrize('seed', range(3))
def test_float32_within_1e6_of_float64(seed):
    logits, labels, errors = random_case(seed, n=20000, num_pos=150, spread=1.0)
    logits, errors = logits.float().double(), errors.float().double()
    c64, g64, l64, d64 = run(logits, labels, errors)
    c32, g32, l32, d32 = run(logits.float(), labels, errors.float(), dtype=torch.float32)
    assert g32.dtype == torch.float32
    assert abs(c32.double() - c64) <= 1e-6 * abs(c64)
    assert abs(l32.double() - l64) <= 1e-6 * abs(l64)
    assert (g32.double() - g64).abs().max() <= 1e-6 * g64.abs().max()
    assert (d32.double() - d64).abs().max() <= 1e-6 * d64.abs().max()


def test_no_positive_gives_zero_losses_in_the_graph():
    x = torch.randn(40, requires_grad=True)
    e = torch.zeros(0, requires_grad=True)
    cls_loss, loc_loss = alrp_loss(x, torch.zeros(40, dtype=torch.long), e)
    assert cls_loss.item() == 0 and loc_loss.item() == 0
    (cls_loss + loc_loss).backward()
    assert (x.grad == 0).all() and e.grad is not None


def test_all_positives():
    cls_loss, grad, loc_loss, dloc = run([0.3, 1.0, -0.4], [1, 1, 1], [0.5, 0.2, 1.0])
    ref = oracle([0.3, 1.0, -0.4], [1, 1, 1], [0.5, 0.2, 1.0])
    assert cls_loss.item() == 0 and (grad == 0).all() and loc_loss.item() > 0
    torch.testing.assert_close(loc_loss.item(), ref[2], rtol=1e-12, atol=0)
    torch.testing.assert_close(dloc, ref[3], rtol=1e-12, atol=0)


def test_tie_order_of_the_localisation_walk():
    # Tied positives: the higher flat index is walked first (the reference's stable sort, flipped).
    _, _, loc_loss, _ = run([0.0, 0.0], [1, 1], [1.0, 0.0])
    rank = 1 + 0.5
    assert loc_loss.item() == pytest.approx((0.0 / rank + 1.0 / rank) / 2)


@pytest.mark.parametrize('scale', [1e4, 1e6])
def test_very_large_logits(scale):
    logits = torch.tensor([1.0, -1.0, 0.5, 2.0, -3.0], dtype=torch.float64) * scale
    labels, errors = [1, 0, 1, 0, 0], [0.3, 0.8]
    cls_loss, grad, loc_loss, dloc = run(logits, labels, errors)
    ref = oracle(logits, labels, errors)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(cls_loss.item(), ref[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, ref[1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(loc_loss.item(), ref[2], rtol=1e-9, atol=1e-12)


def test_module_and_bad_input():
    logits, labels, errors = random_case(2, n=80, num_pos=6)
    module = ALRPLoss(delta=1.0, loss_weight=0.5)
    cls_loss, loc_loss = module(logits, labels, errors)
    ref = run(logits, labels, errors)
    torch.testing.assert_close(cls_loss, 0.5 * ref[0])
    torch.testing.assert_close(loc_loss, 0.5 * ref[2])
    with pytest.raises(ValueError, match='delta'):
        ALRPLoss(delta=-1)
    with pytest.raises(ValueError, match='localisation errors'):
        alrp_loss(logits, labels, errors[:-1])
    with pytest.raises(ValueError, match='shape'):
        alrp_loss(logits, labels[:-1], errors)

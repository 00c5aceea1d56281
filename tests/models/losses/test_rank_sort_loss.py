"""RS Loss against the reference's worked examples (docs/methods/rs-loss.md §7), a per-positive
loop oracle written from the reference algorithm (rs-loss.md §1-§2), and its invariants."""
import pytest
import torch

from mmdet_imbalance.models.losses import RankSortLoss, rank_sort_loss

# (logits, targets, ranking loss, sorting loss, gradient of the sum): rs-loss.md §7.
WORKED = [
    ([-1.2, 0.3, 2, 0.5, 0.9, -3], [0, 0, 0, 0.8, 0, 0], 0.8148148148, 0.0,
     [0, 0.1111111111, 0.3703703704, -0.8148148148, 0.3333333333, 0]),
    ([1, 1, 0.2, 1, -0.5, 0.7, 0.2, -2], [0.9, 0.6, 0.6, 0, 0, 0.75, 0, 0], 0.2910243408,
     0.06057692308,
     [-0.1110294118, -0.0236667744, -0.075, 0.2660243408, 0, -0.0813281546, 0.025, 0]),
    ([0.5, 1e-11, 4, 3, -2, 2], [0.8, 0, -1, -1, 0, 0.3], 3.333333609e-12, 0.1666666667,
     [-0.1666666667, 0, 0, 0, 0, 0.1666666667]),
]


def run(logits, targets, dtype=torch.float64, delta=0.5):
    x = torch.as_tensor(logits, dtype=dtype).clone().requires_grad_()
    ranking, sorting = rank_sort_loss(x, torch.as_tensor(targets, dtype=dtype), delta)
    (ranking + sorting).backward()
    return ranking.detach(), sorting.detach(), x.grad


def oracle(logits, targets, delta=0.5, eps=1e-10):
    """The reference's loop over positives, transcribed (rs-loss.md §1.2-§1.3), float64."""
    s = torch.as_tensor(logits, dtype=torch.float64)
    t = torch.as_tensor(targets, dtype=torch.float64)
    pos = [i for i in range(len(s)) if t[i] > 0]
    neg = [j for j in range(len(s)) if t[j] == 0]
    grad = torch.zeros_like(s)
    ranks, sorts = [], []

    def H(x):
        return min(max(x / (2 * delta) + 0.5, 0.0), 1.0)

    for i in pos:
        h = {j: H(float(s[j] - s[i])) for j in pos}
        g = {j: H(float(s[j] - s[i])) for j in neg}
        rank_pos, fp = sum(h.values()), sum(g.values())
        l_r = fp / (rank_pos + fp)
        l_s = sum(h[j] * (1 - t[j]) for j in pos) / rank_pos
        tgt = {j: h[j] * float(t[j] >= t[i]) for j in pos}
        se = float(l_s - sum(tgt[j] * (1 - t[j]) for j in pos) / sum(tgt.values()))
        ranks.append(l_r)
        sorts.append(se)
        if fp > eps:
            grad[i] -= l_r
            for j in neg:
                grad[j] += g[j] * l_r / fp
        m = {j: h[j] * float(t[j] < t[i]) for j in pos}
        if sum(m.values()) > eps:
            grad[i] -= se
            for j in pos:
                grad[j] += m[j] * se / sum(m.values())
    n = len(pos)
    return sum(ranks) / n, sum(sorts) / n, grad / n


def random_case(seed, n=300, num_pos=25, spread=2.0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, generator=gen, dtype=torch.float64) * spread
    targets = torch.zeros(n, dtype=torch.float64)
    perm = torch.randperm(n, generator=gen)
    targets[perm[:num_pos]] = torch.rand(num_pos, generator=gen, dtype=torch.float64) * 0.9 + 0.1
    targets[perm[num_pos:num_pos + 20]] = -1
    # Some ties among positives and between positives and negatives.
    logits[perm[1]] = logits[perm[0]]
    logits[perm[num_pos + 30]] = logits[perm[2]]
    return logits, targets


@pytest.mark.parametrize('case', WORKED, ids=['A', 'B-ties', 'C-ignored-eps'])
def test_worked_examples_float64(case):
    logits, targets, ranking, sorting, grad = case
    got_r, got_s, got_g = run(logits, targets)
    torch.testing.assert_close(got_r, torch.tensor(ranking, dtype=torch.float64),
                               rtol=1e-9, atol=1e-20)
    torch.testing.assert_close(got_s, torch.tensor(sorting, dtype=torch.float64),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got_g, torch.tensor(grad, dtype=torch.float64),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('seed', range(4))
def test_matches_the_loop_oracle(seed):
    logits, targets = random_case(seed)
    ranking, sorting, grad = run(logits, targets)
    ref_r, ref_s, ref_g = oracle(logits, targets)
    torch.testing.assert_close(ranking.item(), ref_r, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(sorting.item(), ref_s, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, ref_g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize('seed', range(3))
def test_invariants(seed):
    logits, targets = random_case(seed)
    ranking, _, grad = run(logits, targets)
    # Balance: the update moves mass between entries (rs-loss.md §2).
    assert abs(grad.sum().item()) < 1e-14
    assert (grad[targets < 0] == 0).all()
    # Sorting only moves mass among positives: the positives' total is -ranking_loss.
    torch.testing.assert_close(grad[targets > 0].sum(), -ranking, rtol=1e-10, atol=1e-14)
    # Negatives far below every positive get nothing.
    far = (targets == 0) & (logits < logits[targets > 0].min() - 0.5)
    assert (grad[far] == 0).all() and (grad[targets == 0] >= 0).all()


@pytest.mark.parametrize('seed', range(3))
def test_float32_within_1e6_of_float64(seed):
    logits, targets = random_case(seed, n=20000, num_pos=150, spread=1.0)
    logits = logits.float().double()  # the same values in both precisions
    r64, s64, g64 = run(logits, targets)
    r32, s32, g32 = run(logits.float(), targets.float(), dtype=torch.float32)
    assert g32.dtype == torch.float32
    assert abs(r32.double() - r64) <= 1e-6 * abs(r64)
    assert abs(s32.double() - s64) <= 1e-6 * abs(s64)
    assert (g32.double() - g64).abs().max() <= 1e-6 * g64.abs().max()


def test_no_positive_gives_zero_losses_in_the_graph():
    x = torch.randn(50, requires_grad=True)
    targets = torch.zeros(50)
    targets[:5] = -1
    ranking, sorting = rank_sort_loss(x, targets)
    assert ranking.item() == 0 and sorting.item() == 0 and ranking.requires_grad
    (ranking + sorting).backward()
    assert (x.grad == 0).all()


def test_all_positives_only_sorting_moves():
    logits = [2.0, 1.5, 1.2, 0.1]
    targets = [0.3, 0.9, 0.5, 0.7]
    ranking, sorting, grad = run(logits, targets)
    ref_r, ref_s, ref_g = oracle(logits, targets)
    assert ranking.item() == 0 and sorting.item() > 0
    torch.testing.assert_close(grad, ref_g, rtol=1e-12, atol=1e-15)
    assert abs(grad.sum().item()) < 1e-15


def test_ties_are_symmetric():
    # Two identical positives with one negative tied with them: identical updates.
    ranking, _, grad = run([0.3, 0.3, 0.3], [0.7, 0.7, 0])
    assert grad[0] == grad[1] and grad[2] > 0
    torch.testing.assert_close(ranking.item(), 0.5 / 1.5, rtol=1e-15, atol=0)


@pytest.mark.parametrize('scale', [1e4, 1e6])
def test_very_large_logits(scale):
    logits = torch.tensor([1.0, -1.0, 0.5, 2.0, -3.0], dtype=torch.float64) * scale
    targets = [0.6, 0, 0.9, 0, 0]
    ranking, sorting, grad = run(logits, targets)
    ref_r, ref_s, ref_g = oracle(logits, targets)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, ref_g, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ranking.item(), ref_r, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(sorting.item(), ref_s, rtol=1e-9, atol=1e-12)


def test_only_the_ranking_output_carries_the_update():
    logits, targets = random_case(0, n=60, num_pos=8)
    x = logits.clone().requires_grad_()
    ranking, sorting = rank_sort_loss(x, targets)
    sorting.backward()
    assert (x.grad == 0).all()
    x.grad = None
    ranking, sorting = rank_sort_loss(x, targets)
    (3 * ranking + sorting).backward()
    torch.testing.assert_close(x.grad, 3 * run(logits, targets)[2])


def test_module_weight_bad_input_and_sigmoid_head_api():
    logits, targets = random_case(1, n=80, num_pos=6)
    module = RankSortLoss(delta=0.5, loss_weight=2.0)
    x = logits.clone().requires_grad_()
    ranking, sorting = module(x, targets)
    ranking.backward()
    torch.testing.assert_close(x.grad, 2 * run(logits, targets)[2])
    torch.testing.assert_close(sorting, 2 * run(logits, targets)[1])
    assert module.get_cls_channels(3) == 3
    scores = module.get_activation(torch.zeros(4, 3))
    assert scores.shape == (4, 4) and (scores[:, :3] == 0.5).all() and (scores[:, 3] == 0).all()
    with pytest.raises(ValueError, match='delta'):
        RankSortLoss(delta=0)
    with pytest.raises(ValueError, match='shape'):
        rank_sort_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match='> 1'):
        rank_sort_loss(torch.zeros(3), torch.tensor([1.5, 0, 0]))
    with pytest.raises(ValueError, match='NaN'):
        rank_sort_loss(torch.tensor([float('nan'), 0, 0]), torch.tensor([1.0, 0, 0]))

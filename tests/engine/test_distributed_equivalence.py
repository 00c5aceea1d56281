"""Two ranks with batch 2 each against one process with batch 4: the first loss and the first
gradient of every mini row (issue 23, item 4; each method page's "Distributed" section).

``dist_equivalence.py`` runs the two gloo ranks and, with no process group, the batch of 4 and
each of its halves. Every loss component of every row is expected to be one of:

* ``GLOBAL``: the 2-rank value (mean over ranks) and gradient (DDP's average) are the batch-4 ones.
  mmdet's ``reduce_mean`` of the normalisers (FCOS, ATSS, GFL's classification), a per-image mean
  (DR Loss's classification), AP Loss ranked across ranks (``gather_across_ranks=True``).
* ``PER_RANK``: rank r's value is the single-process value of half r and the gradient is the mean
  of the halves' gradients: per-rank normalisers (mmdet's anchor and RoI heads), per-GPU rankings
  (AP, RS, aLRP Loss), per-rank statistics (GHM-C's bins), per-rank random samplers (the Faster
  R-CNN rows). GFL's box and DFL losses are normalised by ``max(mean over ranks of their quality
  weights, 1)``; at the first step the weights are the prior's 0.01, the clamp at 1 holds, and
  each rank's loss is its own sum.
* ``RESOBJ``: the reference's EMA of the number of positives, fed with the mean over ranks
  (resobj_loss.py): derived below from the EMA's formula and the halves' positive counts.
* ``GUIDED``: Sampling-Free FCOS's guided classification loss ``s * sg(L_reg / L_cls) * L_cls``
  takes its ratio per rank while FCOS normalises globally: derived below.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time

import pytest

from mmdet_imbalance.table.rows import ROWS

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, HERE)
from dist_equivalence import GATHER  # noqa: E402

GLOBAL, PER_RANK, RESOBJ, GUIDED = 'global', 'per rank', 'resobj', 'guided'
EXPECTED = {
    'faster-rcnn': PER_RANK, 'ohem': PER_RANK, 'iou-balanced': PER_RANK, 'isr': PER_RANK,
    'retinanet': PER_RANK, 'ghm-c': PER_RANK, 'ap-loss': PER_RANK,
    GATHER: dict(loss_cls=GLOBAL, loss_bbox=PER_RANK),
    'dr-loss': dict(loss_cls=GLOBAL, loss_bbox=PER_RANK),
    'resobj': RESOBJ,
    'sampling-free-retinanet': PER_RANK, 'sampling-free-faster-rcnn': PER_RANK,
    'fcos': GLOBAL,
    'fcos-sampling-free': dict(loss_cls=GUIDED, loss_bbox=GLOBAL, loss_centerness=GLOBAL),
    'atss': GLOBAL,
    'gfl': dict(loss_cls=GLOBAL, loss_bbox=PER_RANK, loss_dfl=PER_RANK),
    'rs-atss': PER_RANK, 'rs-faster-rcnn': PER_RANK, 'alrp-loss': PER_RANK,
}
# Rows whose state (small buffers) is per rank and moves in the first step.
PER_RANK_STATE = {'ghm-c': 'bbox_head.loss_cls.acc_sum', 'alrp-loss': 'bbox_head.sb_sums'}
# float32 sums in another order: measured differences are below 1e-6 of the norm.
RTOL = 1e-5
B2, B4, H0, H1 = range(4)  # rows of the Gram matrix: 2 ranks, batch 4, half 0, half 1


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp('equivalence')
    out = folder / 'report.json'
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    logs = [folder / f'rank{rank}.log' for rank in (0, 1)]
    procs = [subprocess.Popen([sys.executable, osp.join(HERE, 'dist_equivalence.py'), '--rank',
                               str(rank), '--store', str(folder), '--out', str(out)],
                              cwd=REPO, env=env, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
             for rank, log in zip((0, 1), logs)]
    # A rank that fails leaves the other waiting for it in the next process group: stop it.
    deadline = time.time() + 1800
    while any(p.poll() is None for p in procs) and time.time() < deadline \
            and all(p.poll() in (None, 0) for p in procs):
        time.sleep(0.5)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert [p.returncode for p in procs] == [0, 0], '\n'.join(
        log.read_text()[-3000:] for log in logs)
    with open(out) as f:
        return json.load(f)


def distance(gram, target, combination):
    """``|g_target - sum_k c_k g_k|`` from the Gram matrix of the gradients."""
    coef = [0.] * 4
    coef[target] += 1.
    for index, c in combination.items():
        coef[index] -= c
    square = sum(coef[i] * coef[j] * gram[i][j] for i in range(4) for j in range(4))
    return max(square, 0.) ** 0.5


def assert_gradient(component, combination, what):
    gram = component['gram']
    norm = distance(gram, B2, {}) + 1e-30
    assert distance(gram, B2, combination) <= RTOL * norm, what


def ema(init, momentum, steps, count):
    """The reference's normaliser after ``steps`` updates ``n <- m n + (1 - m) max(count, 1)``
    from ``init`` (detectron2's ``_ema_update``; docs/methods/resobj.md §4)."""
    return momentum**steps * init + (1 - momentum**steps) * max(count, 1)


def test_every_mini_row_is_classified():
    assert set(EXPECTED) == {row.key for row in ROWS if 'mini' in row.configs} | {GATHER}


@pytest.mark.slow
@pytest.mark.parametrize('key', sorted(EXPECTED))
def test_two_ranks_against_batch_four(report, key):
    row = report[key]
    expected = EXPECTED[key]
    kinds = expected if isinstance(expected, dict) else dict.fromkeys(row['components'], expected)
    assert set(kinds) == set(row['components']), key
    for name, kind in kinds.items():
        comp = row['components'][name]
        mean2, value4, half0, half1 = comp['values']
        what = f'{key} {name} ({kind}): values {comp["values"]}'
        if kind == GLOBAL:
            assert mean2 == pytest.approx(value4, rel=RTOL), what
            assert_gradient(comp, {B4: 1.}, what)
        elif kind == PER_RANK:
            assert comp['ranks'] == pytest.approx([half0, half1], rel=RTOL), what
            assert_gradient(comp, {H0: .5, H1: .5}, what)
        elif kind == GUIDED:
            # Rank r: s * (L_reg,r / L_cls,r) * grad L_cls,r, with L_cls,r = S_r / N (N global),
            # is s * L_reg,r * grad S_r / S_r: the normaliser cancels, so against half r (which
            # normalises by its own count) only L_reg differs. The value is s * L_reg,r.
            reg = row['components']['loss_bbox']
            scale = [r / h for r, h in zip(reg['ranks'], reg['values'][2:])]
            guided_scale = _config(key).model.bbox_head.guided_scale
            assert comp['ranks'] == pytest.approx([guided_scale * r for r in reg['ranks']],
                                                  rel=RTOL), what
            assert_gradient(comp, {H0: .5 * scale[0], H1: .5 * scale[1]}, what)
        else:
            _check_resobj(row, name, comp, what)


def _config(key):
    from mmdet_imbalance.table.rows import get_row
    from mmdet_imbalance.testing import load_config
    return load_config(osp.join(REPO, get_row(key).configs['mini']))


def _check_resobj(row, name, comp, what):
    loss_cfg = _config('resobj').model.bbox_head.loss_cls
    init, momentum = loss_cfg.ema_init, loss_cfg.ema_momentum
    buffer = 'bbox_head.loss_cls.num_pos_ema'
    # Each half's positives, from its buffer after the three updates of one step.
    counts = [(row['buffers'][h][buffer][0] - momentum**3 * init) / (1 - momentum**3)
              for h in ('h0', 'h1')]
    assert counts == pytest.approx([round(c) for c in counts], abs=1e-3)
    counts = [round(c) for c in counts]
    mean = sum(counts) / 2
    # Both ranks hold the EMA of the mean count.
    for rank in row['ranks']:
        assert rank['buffers'][buffer][0] == pytest.approx(ema(init, momentum, 3, mean),
                                                           rel=1e-6)
    # The released code updates once per term: objectness, class, box (resobj.md §4).
    steps = dict(loss_obj=1, loss_cls=2, loss_bbox=3)[name]
    scale = [ema(init, momentum, steps, c) / ema(init, momentum, steps, mean) for c in counts]
    assert comp['ranks'] == pytest.approx([s * v for s, v in zip(scale, comp['values'][2:])],
                                          rel=RTOL), what
    assert_gradient(comp, {H0: .5 * scale[0], H1: .5 * scale[1]}, what)


@pytest.mark.slow
@pytest.mark.parametrize('key', sorted(PER_RANK_STATE))
def test_per_rank_state_is_each_ranks_own(report, key):
    """GHM-C's bins and aLRP's self-balance sums: rank r holds what one process on half r holds,
    and the two ranks differ (nothing averages them)."""
    name = PER_RANK_STATE[key]
    row = report[key]
    ranks = [rank['buffers'][name] for rank in row['ranks']]
    for rank, half in zip(ranks, ('h0', 'h1')):
        assert rank == pytest.approx(row['buffers'][half][name], rel=1e-6)
    assert ranks[0] != pytest.approx(ranks[1], rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize('key', ['sampling-free-retinanet', 'sampling-free-faster-rcnn'])
def test_sampling_free_prior_is_computed_once_and_shared(report, key):
    row = report[key]
    assert row['priors'], 'the row resolves no prior'
    assert [rank['priors'] for rank in row['ranks']] == [row['priors'], row['priors']]
    # Rank 0 alone passes over the training set; rank 1 receives its result.
    assert [rank['stats_calls'] for rank in row['ranks']] == [1, 0]

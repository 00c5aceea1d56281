"""The ranking core of AP Loss, RS Loss and aLRP Loss: sums of the smoothed step over one ranking.

The three losses (docs/methods/ap-loss.md §3, rs-loss.md §3, alrp-loss.md §3) rank every
(anchor, class) logit of the minibatch with ``H(x) = clamp(x / (2 delta) + 1/2, 0, 1)`` and need,
for a flat vector of logits with positives ``P`` and negatives ``N``,

* ``FP(i) = sum_{j in N} H(s_j - s_i)`` for every positive ``i`` (AP-Loss's ``rank-``), and
* ``G_j = sum_{i in P} c_i H(s_j - s_i)`` for every negative ``j``, for per-positive coefficients
  ``c_i >= 0`` (the error-driven update a negative receives).

The references loop over the positives in Python. Here the 2|P| ramp ends ``s_i +- delta`` cut
the line into 2|P| + 1 buckets inside which every ``H(x - s_i)`` is 0, 1 or linear in ``x``, so
one pass over the negatives (bucket index and offset from the bucket's lower end) gives
per-bucket counts and offset sums, from which ``FP`` follows by prefix sums (:func:`_ramp_sums`),
and ``G_j = alpha_k + beta_k * offset_j`` with per-bucket coefficients. The cost is
O(|N| + |P| log |P|).

A negative's bucket is found without a binary search per element (``searchsorted`` over ~10^7
logits costs more than the whole focal loss on a CPU): a uniform grid of cells over
``[min(s_P) - delta, max(s_P) + delta]`` maps each cell to its bucket through a lookup table, and
only the few negatives whose cell contains a boundary go through ``searchsorted``
(:func:`_locate`). The cell index is a monotone function of the logit computed by the same
floating-point operations for boundaries and negatives, so the lookup is exact.

One implementation serves every device: each step is a tensor operation on the logits' device,
and nothing is read back to the host but the sizes of the data-dependent selections (the
positives, the negatives in cells that hold a boundary), which ``nonzero`` needs anywhere.
Per-element work runs at the working precision (float32 for float32 or lower logits, float64 for
float64), everything per bucket or per positive in float64: a float32 running sum over 10^7
negatives would lose whole units of ``FP``.
"""
from typing import Tuple

import torch
from torch import Tensor

# Cells of the bucket-lookup grid per ramp boundary, and its size limits. Performance knobs only,
# not method hyper-parameters: the result is exact for any grid. Finer grids put fewer negatives
# into cells that hold a boundary (those are resolved by binary search) at the price of a larger
# lookup table; the cap bounds the table (16 MiB) when nearly every anchor is positive.
_GRID_CELLS_PER_BOUNDARY = 64
_GRID_MIN_CELLS = 1 << 16
_GRID_MAX_CELLS = 1 << 22
# Entries per float64 copy of the offsets in the histogram; the sums accumulate in place in the
# order of one pass, so the chunking does not change them.
_CHUNK = 1 << 20


def working_dtype(logits: Tensor) -> torch.dtype:
    """float64 for float64 logits, float32 otherwise (half/bfloat16 are computed in float32)."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _locate(x: Tensor, bounds: Tensor, bounds_f64: Tensor) -> Tensor:
    """Bucket index ``#{q : bounds[q] <= x}`` (int32) of every element of the 1-D tensor ``x``.

    Grid lookup with binary search only in the cells that contain a boundary (module docstring).
    ``t(v) = (v - lo) * inv_h + 1`` is monotone in ``v`` and evaluated by the same tensor
    operations for ``x`` and for the boundaries, so a cell without a boundary lies strictly
    between two consecutive boundaries and its bucket is the number of boundaries in lower cells.
    """
    num_cells = min(max(_GRID_MIN_CELLS, _GRID_CELLS_PER_BOUNDARY * bounds.numel()),
                    _GRID_MAX_CELLS)
    lo = bounds_f64[0]
    span = bounds_f64[-1] - lo
    # A zero span only if float32 rounding merged s +- delta (|logits| ~ 1e8): any scale is exact.
    inv_h = torch.where(span > 0, num_cells / span, 1.0)
    top = num_cells + 2  # cells: 0 below lo, 1..num_cells+1 up to hi, num_cells+2 above

    def cell_of(v: Tensor) -> Tensor:
        t = v - lo
        return t.mul_(inv_h).add_(1).clamp_(0, top).to(torch.int32)

    bound_cells = cell_of(bounds).long()
    per_cell = torch.zeros(top + 1, dtype=torch.int64, device=bounds.device).index_add_(
        0, bound_cells, torch.ones_like(bound_cells))
    # lut[c] = number of boundaries in cells below c; -1 marks cells holding a boundary.
    lut = (per_cell.cumsum(0) - per_cell).to(torch.int32).masked_fill_(per_cell > 0, -1)
    bucket = lut.index_select(0, cell_of(x))
    dirty = (bucket < 0).nonzero().squeeze(1)
    if dirty.numel():
        bucket[dirty] = torch.searchsorted(bounds, x[dirty], right=True, out_int32=True)
    return bucket


def _histogram(bucket: Tensor, offset: Tensor, lower_bounds: Tensor,
               num_buckets: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Prefix sums (float64, length ``num_buckets``) of counts, offsets and ``count * B[k-1]``.

    Bucket 0 (below every boundary: parked entries, and negatives below ``min(s_P) - delta``) is
    excluded by zeroing its entry before the cumulative sums.
    """
    count = torch.zeros(num_buckets, dtype=torch.float64, device=offset.device)
    total = torch.zeros_like(count)
    one = count.new_ones(())
    for start in range(0, offset.numel(), _CHUNK):
        index = bucket[start:start + _CHUNK]
        count.index_add_(0, index, one.expand(index.numel()))
        total.index_add_(0, index, offset[start:start + _CHUNK].to(torch.float64))
    count[0] = 0
    total[0] = 0
    return count.cumsum(0), total.cumsum(0), (count * lower_bounds).cumsum(0)


def _ramp_sums(cum_cnt: Tensor, cum_off: Tensor, cum_cnt_lo: Tensor, lower: Tensor, upper: Tensor,
               scores: Tensor, delta: float) -> Tensor:
    """``sum_x H(x - s_i)`` for each positive ``i`` from per-bucket prefix sums (float64).

    ``cum_*[k]`` are prefix sums over buckets ``1..k`` (index 0 holds 0) of the count, of the
    offsets ``x - B[k-1]`` and of ``count * B[k-1]``; ``lower[i]``/``upper[i]`` are the positions
    of ``s_i - delta``/``s_i + delta`` among the sorted boundaries ``B``. Buckets ``lower+1 ..
    upper`` lie on the ramp of ``i``; buckets above ``upper`` have ``H = 1``.
    """
    total = cum_cnt[-1]
    n_ramp = cum_cnt[upper] - cum_cnt[lower]
    off_ramp = cum_off[upper] - cum_off[lower]
    lo_ramp = cum_cnt_lo[upper] - cum_cnt_lo[lower]
    # sum over the ramp of (x - s_i) / (2 delta) + 1/2, with x - s_i = offset + (B[k-1] - s_i).
    ramp = (off_ramp + lo_ramp - scores * n_ramp) / (2 * delta) + n_ramp / 2
    return (total - cum_cnt[upper]) + ramp


class NegativeRamp:
    """The negatives of one flat logit vector, bucketed by the ramps of the positives.

    Args:
        logits (Tensor): 1-D logits at the working precision (detached).
        negative (Tensor): 1-D bool, True on the entries that are negatives.
        scores (Tensor): float64 logits of the positives (any order; every result per positive
            is in this order).
        delta (float): half-width of the ramp of ``H``.
    """

    def __init__(self, logits: Tensor, negative: Tensor, scores: Tensor, delta: float) -> None:
        num_pos = scores.numel()
        self.delta = delta
        self.scores = scores
        ends = torch.cat([scores - delta, scores + delta])
        # Boundaries are used at the working precision for the per-element passes; their float64
        # values (exact copies of the rounded ones) keep the per-bucket formulas consistent.
        self.bounds, b_order = ends.to(logits.dtype).sort()
        self.bounds_f64 = self.bounds.to(torch.float64)
        position = torch.empty_like(b_order)
        position[b_order] = torch.arange(2 * num_pos, device=b_order.device)
        # Bucket k >= 1 holds [B[k-1], B[k]); positive i's ramp covers buckets lower_i+1..upper_i.
        self.lower, self.upper = position[:num_pos], position[num_pos:]
        self.num_buckets = 2 * num_pos + 1
        self.lower_bounds = torch.cat([self.bounds_f64.new_zeros(1), self.bounds_f64])
        # Entries that are not negatives are parked below every boundary (bucket 0, where every
        # H is 0); negatives below min(s_P) - delta land there by themselves.
        park = torch.finfo(logits.dtype).min
        values = torch.where(negative, logits, logits.new_tensor(park))
        self.bucket = _locate(values, self.bounds, self.bounds_f64)
        lower_work = self.lower_bounds.to(logits.dtype)
        lower_work[0] = 0  # parked offsets stay finite; bucket 0 is dropped from every sum
        self.offset = values.sub_(lower_work.index_select(0, self.bucket))

    def _sums(self, bucket: Tensor, offset: Tensor) -> Tensor:
        cum = _histogram(bucket, offset, self.lower_bounds, self.num_buckets)
        return _ramp_sums(*cum, self.lower, self.upper, self.scores, self.delta)

    def false_positives(self) -> Tensor:
        """``FP(i) = sum_{j in N} H(s_j - s_i)`` (float64) for the positives."""
        return self._sums(self.bucket, self.offset).clamp_(min=0)

    def positive_sums(self) -> Tensor:
        """``sum_{k in P} H(s_k - s_i)`` (float64) for the positives, the ``k = i`` term
        ``H(0) = 1/2`` included, by the same bucketing (O(|P| log |P|), no |P| x |P| matrix)."""
        bucket = torch.searchsorted(self.bounds_f64, self.scores, right=True)
        return self._sums(bucket, self.scores - self.lower_bounds[bucket])

    def weighted_sums(self, coef: Tensor) -> Tensor:
        """``G_j = sum_i coef_i H(s_j - s_i)`` for every entry (0 off the negatives), at the
        working precision. ``coef`` (float64, >= 0) is in the order of ``scores``."""
        # Difference arrays over buckets of (full weight, ramp weight, ramp weight * s_i): a
        # positive adds coef_i to the full weight above its upper end and to the ramp weight on
        # its ramp buckets.
        zero = torch.zeros_like(coef)
        rise = torch.stack([zero, coef, coef * self.scores], dim=1)
        top = torch.stack([coef, -coef, -coef * self.scores], dim=1)
        diff = coef.new_zeros(self.num_buckets + 1, 3)
        diff.index_add_(0, self.lower + 1, rise).index_add_(0, self.upper + 1, top)
        full, ramp, ramp_s = diff.cumsum(0)[:-1].unbind(1)
        two_delta = 2 * self.delta
        # G at the bucket's lower end, and its slope; >= 0 in exact arithmetic, so the clamp only
        # removes prefix-difference rounding.
        alpha = (full + (self.lower_bounds * ramp - ramp_s) / two_delta + ramp / 2).clamp_(min=0)
        beta = (ramp / two_delta).clamp_(min=0)
        alpha[0] = 0
        beta[0] = 0
        work = self.offset.dtype
        grad = self.offset.mul(beta.to(work).index_select(0, self.bucket))
        return grad.add_(alpha.to(work).index_select(0, self.bucket))


def positive_ramp(scores: Tensor, delta: float) -> Tensor:
    """Dense ``h_ij = H(s_j - s_i)`` (float64, |P| x |P|; the diagonal is H(0) = 1/2)."""
    return (scores[None, :] - scores[:, None]).div_(2 * delta).add_(0.5).clamp_(0, 1)


def split_positives(flat_logits: Tensor, positive: Tensor) -> Tuple[Tensor, Tensor]:
    """Flat indices of the positives (flat order) and their float64 logits."""
    pos_idx = positive.nonzero().squeeze(1)
    return pos_idx, flat_logits.index_select(0, pos_idx).to(torch.float64)

"""AP-Loss: average-precision loss, error-driven update (Chen et al., CVPR 2019; arXiv 1904.06373).

The classification task is a ranking task: every positive (anchor, class) logit should rank above
every negative one. With the smoothed step ``H(x) = clip(x / (2 delta) + 1/2, 0, 1)`` and, for a
positive ``i``, ``rank+(i) = 1 + sum_{k in P, k != i} H(s_k - s_i)`` and
``rank-(i) = sum_{j in N} H(s_j - s_i)`` (docs/methods/ap-loss.md §2):

* ``prec(i) = rank+(i) / (rank+(i) + rank-(i))`` and, in ascending score order, the interpolated
  precision ``prec_i = max_{k: s_k <= s_i} prec(k)``;
* loss ``1 - mean_i prec_i``;
* the update is **error-driven, not the derivative of the loss** (§3): with the primary
  terms ``L_ij = H(s_j - s_i) / (rank+(i) + rank-(i))``, rescaled by
  ``(1 - prec_i) / (1 - prec(i))`` where interpolation raised the precision, a negative ``j``
  receives ``sum_i L_ij / |P|`` and a positive ``i`` receives ``-(1 - prec_i) / |P|``. Ignored
  entries and negatives below the cut-off ``min(s_P) - delta`` receive zero. ``backward`` returns
  this gradient times the incoming one.

**Vectorized exact algorithm.** The reference loops in Python over the positives
(O(|P| (|P| + |N|)) interpreted steps). Here only the positives are sorted. Their 2|P| ramp
boundaries ``s_i +- delta`` cut the real line into 2|P| + 1 buckets; inside one bucket every
``H(x - s_i)`` is 0, 1 or linear in ``x``, so

* each positive's ``rank-`` (and ``rank+``) is a prefix sum over the per-bucket counts and sums of
  offsets ``x - (bucket's lower boundary)``;
* each negative's gradient is ``alpha_k + beta_k * offset`` with per-bucket coefficients built by
  prefix sums over the sorted positives (interpolation rescaling included);
* the interpolated precision is a cumulative maximum in ascending score order.

A negative's bucket is found without a binary search per element (``searchsorted`` over ~10^7
logits costs more than the whole focal loss): a uniform grid of cells over
``[min(s_P) - delta, max(s_P) + delta]`` maps each cell to its bucket through a lookup table, and
only the few negatives whose cell contains a boundary go through ``searchsorted``. The cell index
is a monotone function of the logit computed by the same floating-point operations for boundaries
and negatives, so the lookup is exact. The cost is O(|N| + |P| log |P|) in a fixed number of passes
over the logits.

Decisions:

* **Ties.** ``H`` is continuous, so bucket boundaries can be assigned either way. Tied positives get
  identical precisions, so the order in which the reference visits them (implementation-defined
  ``argsort``) does not change the result; this implementation is tie-exact.
* **Precision.** Per-element work runs in float32 (float64 for float64 logits); half/bfloat16
  logits are cast to float32 inside, with autocast disabled, and the loss and gradient are returned
  in the input dtype. Everything per bucket or per positive (ranks, histograms, prefix sums) is
  float64: a float32 running sum over 10^7 negatives would lose whole units of ``rank-``.
* **Bad input.** Non-finite logits raise ``ValueError`` (the bucket of a NaN is undefined); targets
  must have the logits' shape and values in {-1, 0, 1}.
* **``loss_weight``** scales both the reported loss and the error-driven gradient.
"""
from typing import Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .checks import check_finite_logits, check_same_shape, positive_number

# Cells of the bucket-lookup grid per ramp boundary, and its size limits. Performance knobs only,
# not method hyper-parameters: the result is exact for any grid. Finer grids put fewer negatives
# into cells that hold a boundary (those are resolved by binary search) at the price of a larger
# lookup table; the cap bounds the table (16 MiB) when nearly every anchor is positive.
_GRID_CELLS_PER_BOUNDARY = 64
_GRID_MIN_CELLS = 1 << 16
_GRID_MAX_CELLS = 1 << 22


def _check_inputs(logits: Tensor, targets: Tensor, delta: float) -> None:
    check_same_shape('targets', targets, 'logits', logits)
    positive_number('delta', delta)
    if targets.numel() == 0:
        return
    if targets.dtype == torch.bool:
        raise TypeError('targets must hold 1 (positive), 0 (negative), -1 (ignored); '
                        'got a bool tensor, which cannot mark ignored entries')
    t_min, t_max = torch.aminmax(targets)
    bad = t_min < -1 or t_max > 1
    if not bad and targets.is_floating_point():
        bad = not ((targets == 0) | (targets == 1) | (targets == -1)).all()
    if bad:
        raise ValueError('targets must only hold 1 (positive), 0 (negative) and -1 (ignored); '
                         f'got values in [{t_min.item()}, {t_max.item()}]')
    check_finite_logits(logits, 'AP-Loss')


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


def _bucket_histogram(bucket: Tensor, offset: Tensor, lower_bounds: Tensor,
                      num_buckets: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Prefix sums (float64, length ``num_buckets``) of counts, offsets and ``count * B[k-1]``.

    Bucket 0 (below every boundary: invalid negatives, positives and ignored entries of the
    negative pass) is excluded by zeroing its entry before the cumulative sums.
    """
    cnt = torch.bincount(bucket, minlength=num_buckets).to(torch.float64)
    # bincount accumulates in the weights' dtype: float64 weights, converted in chunks so that the
    # float64 copy never holds more than 2^20 entries.
    off = torch.zeros(num_buckets, dtype=torch.float64, device=offset.device)
    for start in range(0, offset.numel(), 1 << 20):
        off += torch.bincount(
            bucket[start:start + (1 << 20)],
            weights=offset[start:start + (1 << 20)].to(torch.float64),
            minlength=num_buckets)
    cnt[0] = 0
    off[0] = 0
    return cnt.cumsum(0), off.cumsum(0), (cnt * lower_bounds).cumsum(0)


def _locate(x: Tensor, bounds: Tensor, bounds_f64: Tensor) -> Tensor:
    """Bucket index ``#{q : bounds[q] <= x}`` (int32) of every element of the 1-D tensor ``x``.

    Grid lookup with binary search only in the cells that contain a boundary (module docstring).
    ``t(v) = (v - lo) * inv_h + 1`` is monotone in ``v`` and evaluated by the same tensor
    operations for ``x`` and for the boundaries, so a cell without a boundary lies strictly
    between two consecutive boundaries and its bucket is the number of boundaries in lower cells.
    """
    num_bounds = bounds.numel()
    num_cells = min(max(_GRID_MIN_CELLS, _GRID_CELLS_PER_BOUNDARY * num_bounds), _GRID_MAX_CELLS)
    lo, hi = bounds_f64[0].item(), bounds_f64[-1].item()
    # hi == lo only if float32 rounding merged s +- delta (|logits| ~ 1e8): any scale is exact then.
    inv_h = num_cells / (hi - lo) if hi > lo else 1.0
    top = num_cells + 2  # cells: 0 below lo, 1..num_cells+1 up to hi, num_cells+2 above

    def cell_of(v: Tensor) -> Tensor:
        t = v - lo
        return t.mul_(inv_h).add_(1).clamp_(0, top).to(torch.int32)

    bound_cells = cell_of(bounds).long()
    per_cell = torch.bincount(bound_cells, minlength=top + 1)
    # lut[c] = number of boundaries in cells below c; -1 marks cells holding a boundary.
    lut = (per_cell.cumsum(0) - per_cell).to(torch.int32)
    lut[per_cell > 0] = -1
    bucket = lut.index_select(0, cell_of(x))
    dirty = (bucket < 0).nonzero().squeeze(1)
    if dirty.numel():
        bucket[dirty] = torch.searchsorted(bounds, x[dirty], right=True, out_int32=True)
    return bucket


def _ap_loss_and_grad(logits: Tensor, targets: Tensor, delta: float) -> Tuple[Tensor, Tensor]:
    """Loss (0-dim, input dtype) and error-driven gradient (shape and dtype of ``logits``)."""
    out_dtype = logits.dtype
    work = torch.float64 if logits.dtype == torch.float64 else torch.float32
    flat = logits.detach().reshape(-1).to(work)
    flat_t = targets.reshape(-1)
    pos_idx = (flat_t == 1).nonzero().squeeze(1)
    num_pos = pos_idx.numel()
    if num_pos == 0:
        # ap-loss.md §3 step 1: no positive in the minibatch -> loss 0, gradient 0.
        return logits.new_zeros(()), torch.zeros_like(logits)

    # Sorted positives (ascending = highest recall first, §3 step 3) and the 2|P| ramp boundaries.
    scores, order = flat.index_select(0, pos_idx).to(torch.float64).sort()
    pos_idx = pos_idx[order]
    ends = torch.cat([scores - delta, scores + delta])
    # Boundaries are used at the working precision for the per-element passes; their float64 values
    # (exact copies of the rounded ones) keep the per-bucket formulas consistent with them.
    bounds, b_order = ends.to(work).sort()
    bounds_f64 = bounds.to(torch.float64)
    position = torch.empty_like(b_order)
    position[b_order] = torch.arange(2 * num_pos, device=b_order.device)
    # Bucket k holds [B[k-1], B[k]); positive i's ramp covers buckets lower_i+1 .. upper_i.
    lower, upper = position[:num_pos], position[num_pos:]
    num_buckets = 2 * num_pos + 1
    lower_bounds = torch.cat([bounds_f64.new_zeros(1), bounds_f64])  # B[k-1] of bucket k

    # Negatives: everything that is not a valid negative is parked below the lowest boundary
    # (bucket 0), where every H is 0; this also applies the cut-off min(s_P) - delta of §3.
    park = torch.finfo(work).min
    neg = torch.where(flat_t == 0, flat, flat.new_tensor(park))
    bucket = _locate(neg, bounds, bounds_f64)
    lower_work = lower_bounds.to(work)
    lower_work[0] = 0  # parked entries: offset = park, finite; their coefficients are 0
    offset = neg.sub_(lower_work.index_select(0, bucket))
    cum_cnt, cum_off, cum_lo = _bucket_histogram(bucket, offset, lower_bounds, num_buckets)
    rank_neg = _ramp_sums(cum_cnt, cum_off, cum_lo, lower, upper, scores, delta).clamp_(min=0)

    # rank+(i) = sum_k H(s_k - s_i) + 1/2 (the k = i term is H(0) = 1/2), by the same bucketing.
    p_bucket = torch.searchsorted(bounds_f64, scores, right=True)
    p_cum = _bucket_histogram(p_bucket, scores - lower_bounds[p_bucket], lower_bounds, num_buckets)
    rank_pos = _ramp_sums(*p_cum, lower, upper, scores, delta) + 0.5

    denom = rank_pos + rank_neg
    prec_raw = rank_pos / denom
    prec = prec_raw.cummax(0).values  # interpolated precision, §3 step 4
    # Rescale the primary terms where interpolation raised the precision (cur < max_prec <= 1).
    raised = prec_raw < prec
    rescale = torch.where(raised, (1 - prec) / torch.where(raised, 1 - prec_raw, 1.0), 1.0)
    weight = rescale / denom / num_pos

    # Per-bucket gradient coefficients: positive i contributes weight_i to buckets above its upper
    # boundary (H = 1) and weight_i * ((x - s_i) / (2 delta) + 1/2) to buckets on its ramp.
    full = torch.zeros(num_buckets + 1, dtype=torch.float64, device=weight.device)
    ramp_w = torch.zeros_like(full)
    ramp_ws = torch.zeros_like(full)
    full.index_add_(0, upper + 1, weight)
    ramp_w.index_add_(0, lower + 1, weight).index_add_(0, upper + 1, -weight)
    ramp_ws.index_add_(0, lower + 1, weight * scores).index_add_(0, upper + 1, -weight * scores)
    full, ramp_w, ramp_ws = full.cumsum(0)[:-1], ramp_w.cumsum(0)[:-1], ramp_ws.cumsum(0)[:-1]
    alpha = full + (lower_bounds * ramp_w - ramp_ws) / (2 * delta) + ramp_w / 2
    beta = ramp_w / (2 * delta)
    # Both are >= 0 in exact arithmetic (sums of non-negative ramp terms); clamping removes the
    # ~1e-20 rounding residue of the prefix differences so that negatives never get a negative push.
    alpha[0] = 0
    beta[0] = 0
    alpha.clamp_(min=0)
    beta.clamp_(min=0)
    # grad = alpha[bucket] + beta[bucket] * offset, built in the offset buffer to save memory.
    grad = offset.mul_(beta.to(work).index_select(0, bucket))
    grad.add_(alpha.to(work).index_select(0, bucket))
    grad[pos_idx] = (-(1 - prec) / num_pos).to(work)

    loss = (1 - prec).mean()
    return loss.to(out_dtype), grad.view_as(logits).to(out_dtype)


class _APLossFunction(torch.autograd.Function):
    """Returns the AP-loss value; ``backward`` returns the saved error-driven gradient."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, delta: float) -> Tensor:
        with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):
            loss, grad = _ap_loss_and_grad(logits, targets, delta)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad, = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None


def ap_loss(logits: Tensor, targets: Tensor, delta: float = 1.0) -> Tensor:
    """AP-Loss of a whole minibatch with the error-driven gradient of ap-loss.md §3.

    Args:
        logits (Tensor): raw classification scores of any shape (no sigmoid is applied; AP-Loss
            ranks logits).
        targets (Tensor): same shape; 1 for positives, 0 for negatives, -1 for ignored entries.
        delta (float): half-width of the ramp of the smoothed step function ``H``. Defaults to 1.0.

    Returns:
        Tensor: scalar ``1 - mean interpolated precision`` in ``logits.dtype``, in [0, 1]. Its
        backward deposits the error-driven gradient times the incoming gradient in ``logits``:
        ``-(1 - prec_i) / |P|`` on positives, the summed (rescaled) primary terms ``/ |P|`` on
        negatives, 0 on ignored entries and on negatives below ``min(s_P) - delta``. Without any
        positive the loss and the gradient are 0.
    """
    _check_inputs(logits, targets, delta)
    return _APLossFunction.apply(logits, targets, float(delta))


@MODELS.register_module()
class APLoss(nn.Module):
    """AP-Loss (Chen et al., CVPR 2019) over one ranking of all given (anchor, class) logits.

    Args:
        delta (float): half-width of the smoothed step function's ramp. Paper and code: 1.0.
        loss_weight (float): multiplies the loss and its error-driven gradient. Defaults to 1.0.

    ``forward(logits, targets)`` takes the {1, 0, -1} targets of :func:`ap_loss`; building them
    from mmdet labels, and ranking all levels and images at once, is ``APLossRetinaHead``'s job.
    """

    def __init__(self, delta: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.delta = positive_number('delta', delta)
        self.loss_weight = float(loss_weight)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Weighted AP-Loss of ``logits`` (any shape) against {1, 0, -1} ``targets``."""
        return self.loss_weight * ap_loss(logits, targets, self.delta)

    def extra_repr(self) -> str:
        return f'delta={self.delta}, loss_weight={self.loss_weight}'

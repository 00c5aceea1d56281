"""Positive-negative sums of the smoothed step, shared by RS Loss and aLRP Loss.

Both losses (docs/methods/rs-loss.md §3, docs/methods/alrp-loss.md §3) need, for a flat vector of
logits with positives ``P`` and negatives ``N``,

* ``FP(i) = sum_{j in N} H(s_j - s_i)`` for every positive ``i``, and
* ``G_j = sum_{i in P} c_i H(s_j - s_i)`` for every negative ``j``, for per-positive coefficients
  ``c_i >= 0`` that depend on ``FP``,

with ``H(x) = clamp(x / (2 delta) + 1/2, 0, 1)``. The references loop over the positives in Python.
Here the 2|P| ramp ends ``s_i +- delta`` cut the line into buckets inside which every
``H(x - s_i)`` is 0, 1 or linear in ``x``, so one pass over the negatives (bucket index and offset
from the bucket's lower end) gives per-bucket counts and offset sums, from which ``FP`` follows by
prefix sums, and ``G_j = alpha_k + beta_k * offset_j`` with per-bucket coefficients. The cost is
O(|N| + |P| log |P|). The bucket lookup and the prefix-sum formula are AP-Loss's (``ap_loss.py``).

On GPU the lookup is ``torch.bucketize`` and the histograms are ``index_add_``, so nothing here
reads a tensor value on the host. Per-element work runs at the working precision (float32 for
float32 or lower logits, float64 for float64), everything per bucket or per positive in float64.
"""
from typing import Tuple

import torch
from torch import Tensor

from .ap_loss import _locate, _ramp_sums


def working_dtype(logits: Tensor) -> torch.dtype:
    """float64 for float64 logits, float32 otherwise (half/bfloat16 are computed in float32)."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


class NegativeRamp:
    """The negatives of one flat logit vector, bucketed by the ramps of the positives.

    Args:
        logits (Tensor): 1-D logits at the working precision (detached).
        negative (Tensor): 1-D bool, True on the entries that are negatives.
        scores (Tensor): float64 logits of the positives (any order).
        delta (float): half-width of the ramp of ``H``.
    """

    def __init__(self, logits: Tensor, negative: Tensor, scores: Tensor, delta: float) -> None:
        num_pos = scores.numel()
        self.delta = delta
        self.scores = scores
        ends = torch.cat([scores - delta, scores + delta])
        bounds, b_order = ends.to(logits.dtype).sort()
        bounds_f64 = bounds.to(torch.float64)
        position = torch.empty_like(b_order)
        position[b_order] = torch.arange(2 * num_pos, device=b_order.device)
        # Bucket k >= 1 holds [B[k-1], B[k]); positive i's ramp covers buckets lower_i+1..upper_i.
        self.lower, self.upper = position[:num_pos], position[num_pos:]
        self.num_buckets = 2 * num_pos + 1
        self.lower_bounds = torch.cat([bounds_f64.new_zeros(1), bounds_f64])
        # Entries that are not negatives are parked below every boundary (bucket 0, where every
        # H is 0); negatives below min(s_P) - delta land there by themselves.
        park = torch.finfo(logits.dtype).min
        values = torch.where(negative, logits, logits.new_tensor(park))
        if values.is_cuda:
            self.bucket = torch.bucketize(values, bounds, right=True, out_int32=True)
        else:
            self.bucket = _locate(values, bounds, bounds_f64)
        lower_work = self.lower_bounds.to(logits.dtype)
        lower_work[0] = 0  # parked offsets stay finite; bucket 0 is dropped from every sum
        self.offset = values.sub_(lower_work.index_select(0, self.bucket))

    def false_positives(self) -> Tensor:
        """``FP(i)`` (float64) for the positives, in the order of ``scores``."""
        count = torch.zeros(self.num_buckets, dtype=torch.float64, device=self.offset.device)
        count.index_add_(0, self.bucket, torch.ones_like(self.offset, dtype=torch.float64))
        total = torch.zeros_like(count).index_add_(0, self.bucket, self.offset.to(torch.float64))
        count[0] = 0
        total[0] = 0
        fp = _ramp_sums(count.cumsum(0), total.cumsum(0), (count * self.lower_bounds).cumsum(0),
                        self.lower, self.upper, self.scores, self.delta)
        return fp.clamp_(min=0)

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

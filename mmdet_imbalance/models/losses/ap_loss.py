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
(O(|P| (|P| + |N|)) interpreted steps). Here the ranking core shared with RS Loss and aLRP Loss
(:mod:`.pairwise_ramp`) buckets the negatives by the ramps of the sorted positives, so that

* each positive's ``rank-`` (and ``rank+``) is a prefix sum over per-bucket counts and offsets;
* each negative's gradient is ``alpha_k + beta_k * offset`` with per-bucket coefficients built by
  prefix sums over the positives (interpolation rescaling included);
* the interpolated precision is a cumulative maximum in ascending score order.

The cost is O(|N| + |P| log |P|) in a fixed number of passes over the logits.

Decisions:

* **Ties.** ``H`` is continuous, so bucket boundaries can be assigned either way. Tied positives get
  identical precisions, so the order in which the reference visits them (implementation-defined
  ``argsort``) does not change the result; this implementation is tie-exact.
* **Precision.** Per-element work runs in float32 (float64 for float64 logits); half/bfloat16
  logits are cast to float32 inside, with autocast disabled, and the loss and gradient are returned
  in the input dtype. Everything per bucket or per positive (ranks, histograms, prefix sums) is
  float64: a float32 running sum over 10^7 negatives would lose whole units of ``rank-``.
* **Bad input.** Targets must have the logits' shape and must not be bool (which cannot mark
  ignored entries). On CPU tensors, non-finite logits (the bucket of a NaN is undefined) and
  target values outside {-1, 0, 1} raise ``ValueError``; on a GPU these value checks are skipped,
  since each would wait for the device every step (:func:`.checks.on_host`).
* **``loss_weight``** scales both the reported loss and the error-driven gradient.
"""
from typing import Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .checks import check_finite_logits, check_same_shape, on_host, positive_number
from .pairwise_ramp import NegativeRamp, split_positives, working_dtype


def _check_inputs(logits: Tensor, targets: Tensor, delta: float) -> None:
    check_same_shape('targets', targets, 'logits', logits)
    positive_number('delta', delta)
    if targets.dtype == torch.bool:
        raise TypeError('targets must hold 1 (positive), 0 (negative), -1 (ignored); '
                        'got a bool tensor, which cannot mark ignored entries')
    if targets.numel() == 0 or not on_host(targets):
        return
    t_min, t_max = torch.aminmax(targets)
    bad = t_min < -1 or t_max > 1
    if not bad and targets.is_floating_point():
        bad = not ((targets == 0) | (targets == 1) | (targets == -1)).all()
    if bad:
        raise ValueError('targets must only hold 1 (positive), 0 (negative) and -1 (ignored); '
                         f'got values in [{t_min.item()}, {t_max.item()}]')
    check_finite_logits(logits, 'AP-Loss')


def _ap_loss_and_grad(logits: Tensor, targets: Tensor, delta: float) -> Tuple[Tensor, Tensor]:
    """Loss (0-dim, input dtype) and error-driven gradient (shape and dtype of ``logits``)."""
    out_dtype = logits.dtype
    flat = logits.detach().reshape(-1).to(working_dtype(logits))
    flat_t = targets.reshape(-1)
    pos_idx, scores = split_positives(flat, flat_t == 1)
    num_pos = scores.numel()
    if num_pos == 0:
        # ap-loss.md §3 step 1: no positive in the minibatch -> loss 0, gradient 0.
        return logits.new_zeros(()), torch.zeros_like(logits)

    # Sorted positives (ascending = highest recall first, §3 step 3). Every valid negative is
    # bucketed; the cut-off min(s_P) - delta of §3 is bucket 0, where every H is 0.
    scores, order = scores.sort()
    pos_idx = pos_idx[order]
    ramp = NegativeRamp(flat, flat_t == 0, scores, delta)
    rank_neg = ramp.false_positives()
    # rank+(i) = 1 + sum_{k != i} H(s_k - s_i) = sum_k H(s_k - s_i) + 1/2 (the k = i term is 1/2).
    rank_pos = ramp.positive_sums() + 0.5

    denom = rank_pos + rank_neg
    prec_raw = rank_pos / denom
    prec = prec_raw.cummax(0).values  # interpolated precision, §3 step 4
    # Rescale the primary terms where interpolation raised the precision (cur < max_prec <= 1).
    raised = prec_raw < prec
    rescale = torch.where(raised, (1 - prec) / torch.where(raised, 1 - prec_raw, 1.0), 1.0)
    # A negative receives sum_i rescale_i H(s_j - s_i) / (rank+(i) + rank-(i)) / |P|.
    grad = ramp.weighted_sums(rescale / denom / num_pos)
    grad[pos_idx] = (-(1 - prec) / num_pos).to(grad.dtype)

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
    mmdet's ``weight``, ``avg_factor`` and ``reduction_override`` are absent: the loss is one
    ranking of every given logit, already a mean over its positives (§3), so there is no
    per-entry loss to weight, reduce or return, and no normaliser to divide by; an entry leaves
    the ranking through its target -1.
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

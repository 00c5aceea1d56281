"""aLRP Loss, error-driven update (Oksuz et al., NeurIPS 2020; arXiv 2009.13592).

Average LRP over the positives of one ranking of every (anchor, class) logit of the minibatch,
split into a classification and a localisation component (docs/methods/alrp-loss.md §1). With
``H(x) = clamp(x / (2 delta) + 1/2, 0, 1)``, ``h_ik = H(s_k - s_i)`` for positives ``k != i``
(``h_ii = 0``) and the localisation error ``E_k`` of each positive:

* ``rank+(i) = 1 + sum_{k != i} h_ik``, ``FP(i) = sum_{j in N} H(s_j - s_i)``,
  ``rank(i) = rank+(i) + FP(i)``;
* ``cls_loss = mean_i FP(i) / rank(i)``;
* ``loc_loss = mean_i (sum of E over the positives ranked at or above i) / rank(i)``, a hard
  order (descending logit, ties: higher flat index first, the reference's stable ascending sort
  flipped) over the smoothed ``rank``; ``rank`` and the order are constants for the gradient into
  ``E`` (alrp-loss.md §2).

The logit update is the reference's error-driven one, not a derivative: a positive with
``FP(i) > 1e-5`` receives ``-(FP(i) + sum_{k != i} h_ik E_k) / rank(i) / |P|``, which carries
the localisation errors of the positives ranked above it, and each negative receives the same
amount in proportion to ``H(s_j - s_i) / FP(i)``. Positives with ``FP(i) <= 1e-5`` pass no update
and get none. Ignored entries and negatives below ``min(s_P) - delta`` get zero.
"""
from typing import Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .checks import check_finite_logits, check_same_shape, on_host, positive_number
from .pairwise_ramp import NegativeRamp, positive_ramp, split_positives, working_dtype

# Below this many false positives a positive passes no update (reference; RS uses 1e-10).
_ALRP_EPS = 1e-5


def _check_inputs(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> None:
    check_same_shape('targets', targets, 'logits', logits)
    if loc_errors.dim() != 1:
        raise ValueError('loc_errors must be a 1-D Tensor, one error per positive in flat order')
    positive_number('delta', delta)
    if on_host(targets):
        num_pos = int((targets == 1).sum())
        if num_pos != loc_errors.numel():
            raise ValueError(f'{num_pos} positives but {loc_errors.numel()} localisation errors')
        check_finite_logits(logits, 'aLRP Loss')


def _alrp_and_grad(logits: Tensor, targets: Tensor, loc_errors: Tensor,
                   delta: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """cls_loss (0-dim float64), the positives in descending-logit order (indices into the flat
    positive order), their rank (float64) and the update (flat, working precision)."""
    flat = logits.detach().reshape(-1).to(working_dtype(logits))
    flat_t = targets.detach().reshape(-1)
    pos_idx, scores = split_positives(flat, flat_t == 1)
    num_pos = scores.numel()
    if num_pos == 0:
        return scores.new_zeros(()), pos_idx, scores, torch.zeros_like(flat)
    ramp = NegativeRamp(flat, flat_t == 0, scores, delta)
    fp = ramp.false_positives()
    h = positive_ramp(scores, delta).fill_diagonal_(0)
    # Row sums of h_ik and of h_ik E_k in one product. E_i itself is excluded (h_ii = 0), as the
    # reference: a positive passes on its false positives plus the localisation errors of the
    # positives ranked above it (alrp-loss.md §5).
    errors = loc_errors.detach().to(torch.float64)
    rank_pos, loc_above = (h @ torch.stack([torch.ones_like(errors), errors], dim=1)).unbind(1)
    rank = 1 + rank_pos + fp
    has_fp = fp > _ALRP_EPS
    error = (fp + loc_above) / rank
    grad = ramp.weighted_sums(torch.where(has_fp, error / torch.where(has_fp, fp, 1.0), 0.0)
                              / num_pos)
    grad.index_copy_(0, pos_idx, (torch.where(has_fp, -error, 0.0) / num_pos).to(grad.dtype))
    # Descending logit; among ties the higher flat index first (stable ascending sort, flipped).
    desc = scores.sort(stable=True).indices.flip(0)
    return (fp / rank).mean(), desc, rank.index_select(0, desc), grad


class _ALRPFunction(torch.autograd.Function):
    """Returns (cls_loss, descending order, rank in that order); ``backward`` returns the saved
    update times the cls_loss grad."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float):
        with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):
            cls_loss, desc, rank, grad = _alrp_and_grad(logits, targets, loc_errors, delta)
        ctx.save_for_backward(grad.view(logits.shape).to(logits.dtype))
        ctx.mark_non_differentiable(desc, rank)
        return cls_loss.to(logits.dtype), desc, rank

    @staticmethod
    def backward(ctx, grad_cls: Tensor, grad_desc: Tensor, grad_rank: Tensor):
        grad, = ctx.saved_tensors
        return grad * grad_cls.to(grad.dtype), None, None, None


def alrp_loss(logits: Tensor, targets: Tensor, loc_errors: Tensor,
              delta: float = 1.0) -> Tuple[Tensor, Tensor]:
    """aLRP Loss of a whole minibatch with the reference's error-driven update.

    Args:
        logits (Tensor): raw scores of any shape, flattened over all images and classes.
        targets (Tensor): same shape; 1 positive, 0 negative, -1 ignored.
        loc_errors (Tensor): (P,) localisation error of each positive, in the flat order of the
            positives (``targets.reshape(-1) == 1``); GIoU loss for tau = 0.5.
        delta (float): half-width of the ramp of ``H``. Paper and code: 1.0.

    Returns:
        tuple[Tensor, Tensor]: ``(cls_loss, loc_loss)``, 0-dim. ``cls_loss.backward()`` deposits
        the error-driven update in ``logits`` (none in ``loc_errors``); ``loc_loss.backward()``
        the gradient into ``loc_errors`` with rank and order constant (none in ``logits``).
        Without a positive both are 0 and stay in the graph.
    """
    _check_inputs(logits, targets, loc_errors, delta)
    cls_loss, desc, rank = _ALRPFunction.apply(logits, targets, loc_errors, float(delta))
    if desc.numel() == 0:
        return cls_loss, loc_errors.sum() * 0
    walked = loc_errors.index_select(0, desc).cumsum(0)
    return cls_loss, (walked / rank.to(walked.dtype)).mean()


@MODELS.register_module()
class ALRPLoss(nn.Module):
    """aLRP Loss (Oksuz et al., NeurIPS 2020) over one ranking of all given logits.

    Args:
        delta (float): half-width of the smoothed step's ramp, the method's one hyper-parameter.
            Paper and code: 1.0.
        loss_weight (float): multiplies both outputs and their gradients. Defaults to 1.0.

    ``forward(logits, targets, loc_errors)`` returns ``(cls_loss, loc_loss)``; the self-balance
    weight of ``loc_loss`` is the head's (``ALRPLossRetinaHead``). mmdet's ``weight``,
    ``avg_factor`` and ``reduction_override`` are absent: both outputs are means over the
    positives of one ranking of every given logit, so there is no per-entry loss to weight,
    reduce or return, and no normaliser to divide by; an entry leaves the ranking through its
    target -1.
    """

    def __init__(self, delta: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.delta = positive_number('delta', delta)
        self.loss_weight = float(loss_weight)

    def forward(self, logits: Tensor, targets: Tensor,
                loc_errors: Tensor) -> Tuple[Tensor, Tensor]:
        cls_loss, loc_loss = alrp_loss(logits, targets, loc_errors, self.delta)
        return self.loss_weight * cls_loss, self.loss_weight * loc_loss

    def extra_repr(self) -> str:
        return f'delta={self.delta}, loss_weight={self.loss_weight}'

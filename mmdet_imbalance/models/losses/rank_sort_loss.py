"""Rank & Sort (RS) Loss with the error-driven "identity update" (Oksuz et al., ICCV 2021).

One ranking of every (anchor or RoI, class) logit of the minibatch. A positive carries a
continuous label ``y_i`` (the IoU of its current prediction); with the smoothed step
``H(x) = clamp(x / (2 delta) + 1/2, 0, 1)`` and ``h_ij = H(s_j - s_i)`` (arXiv 2107.11669;
docs/methods/rs-loss.md §1):

* ``rank+(i) = sum_{j in P} h_ij`` (the ``j = i`` term is ``H(0) = 1/2``, as in the reference code;
  decision in docs/methods/rs-loss.md §5), ``FP(i) = sum_{j in N} h_ij``,
  ``rank(i) = rank+(i) + FP(i)``;
* ranking error ``l_R(i) = FP(i) / rank(i)`` (RS Eq. 7);
* sorting error ``l_S(i) = sum_{j in P} h_ij (1 - y_j) / rank+(i)`` (RS Eq. 7) minus its target
  ``sum_j T_ij (1 - y_j) / sum_j T_ij``, ``T_ij = [y_j >= y_i] h_ij`` (RS Eq. 8);
* the returned values are ``mean_i l_R(i)`` and ``mean_i (l_S(i) - l*_S(i))``.

The update is **not the derivative** of these values (docs/methods/rs-loss.md §2): a positive
receives ``-(l_R(i) + sorting error(i)) / |P|``; the ranking error is spread over the negatives in
proportion to ``h_ij / FP(i)``, the sorting error over the positives ranked above it with a lower
label, in proportion to ``h_ij`` (RS Eq. 9). A positive with ``FP(i) <= 1e-10`` (or no mis-sorted
positive) passes no ranking (sorting) update, as the reference. Ignored entries and negatives below
``min(s_P) - delta`` get zero. ``backward`` returns that gradient times the incoming gradient of the
**ranking** output; the sorting output's incoming gradient is ignored, so scaling only the sorting
output changes nothing (reference behaviour; weight the pair through one factor).

The positive-negative part runs loop-free in O(|N| + |P| log |P|) (``pairwise_ramp.py``); the
positive-positive part is a dense |P| x |P| float64 matrix.
"""
from typing import Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .checks import check_finite_logits, check_same_shape, on_host, positive_number
from .pairwise_ramp import NegativeRamp, positive_ramp, split_positives, working_dtype

# Below this many false positives (resp. mis-sorted mass) a positive passes no update (reference).
_RS_EPS = 1e-10


def _check_inputs(logits: Tensor, targets: Tensor, delta: float) -> None:
    check_same_shape('targets', targets, 'logits', logits)
    positive_number('delta', delta)
    if on_host(targets) and targets.numel():
        if targets.max() > 1:
            raise ValueError('RS targets are IoUs in (0, 1] for positives, 0 for negatives, < 0 '
                             f'for ignored entries; got a value {targets.max().item()} > 1')
        check_finite_logits(logits, 'RS Loss')


def _rank_sort_and_grad(logits: Tensor, targets: Tensor,
                        delta: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Ranking loss, sorting loss (0-dim, float64) and the error-driven gradient (flat, work)."""
    flat = logits.detach().reshape(-1).to(working_dtype(logits))
    flat_t = targets.detach().reshape(-1)
    pos_idx, scores = split_positives(flat, flat_t > 0)
    num_pos = scores.numel()
    if num_pos == 0:
        zero = scores.new_zeros(())
        return zero, zero, torch.zeros_like(flat)
    ramp = NegativeRamp(flat, flat_t == 0, scores, delta)
    fp = ramp.false_positives()
    label = flat_t.index_select(0, pos_idx).to(torch.float64)
    miss = 1 - label
    h = positive_ramp(scores, delta)
    # Row sums of (1 - y_j) h_ij and h_ij in one product; likewise for the target order.
    weights = torch.stack([miss, torch.ones_like(miss)], dim=1)
    current, rank_pos = (h @ weights).unbind(1)
    rank = rank_pos + fp
    ranking = fp / rank
    target = torch.where(label[None, :] >= label[:, None], h, 0.0)
    target_miss, target_sum = (target @ weights).unbind(1)
    sorting = current / rank_pos - target_miss / target_sum
    # Mis-sorted pairs: j ranked near or above i with a lower label (RS Eq. 9); h or 0, exactly.
    missorted = h.sub_(target)
    mass = missorted.sum(1)
    has_fp, has_miss = fp > _RS_EPS, mass > _RS_EPS
    share = torch.where(has_miss, sorting / torch.where(has_miss, mass, 1.0), 0.0)
    grad_pos = (missorted.t().mv(share) - torch.where(has_fp, ranking, 0.0)
                - torch.where(has_miss, sorting, 0.0)) / num_pos
    # Negative j receives sum_i [FP_i > eps] l_R(i) h_ij / FP(i) / |P| = sum_i h_ij / rank(i) / |P|.
    grad = ramp.weighted_sums(torch.where(has_fp, 1 / rank, 0.0) / num_pos)
    grad.index_copy_(0, pos_idx, grad_pos.to(grad.dtype))
    return ranking.mean(), sorting.mean(), grad


class _RankSortFunction(torch.autograd.Function):
    """Returns (ranking, sorting); ``backward`` returns the saved update times the ranking grad."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, delta: float):
        with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):
            ranking, sorting, grad = _rank_sort_and_grad(logits, targets, delta)
        ctx.save_for_backward(grad.view(logits.shape).to(logits.dtype))
        return ranking.to(logits.dtype), sorting.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_ranking: Tensor, grad_sorting: Tensor):
        grad, = ctx.saved_tensors
        return grad * grad_ranking.to(grad.dtype), None, None


def rank_sort_loss(logits: Tensor, targets: Tensor, delta: float = 0.5) -> Tuple[Tensor, Tensor]:
    """RS Loss of a whole minibatch with the reference's error-driven update.

    Args:
        logits (Tensor): raw scores of any shape, flattened over all images and classes.
        targets (Tensor): same shape; ``> 0`` a positive whose value (its IoU, <= 1) is its
            continuous label, ``0`` a negative, ``< 0`` ignored.
        delta (float): half-width of the ramp of ``H``. Paper and code: 0.5.

    Returns:
        tuple[Tensor, Tensor]: ``(ranking_loss, sorting_loss)``, 0-dim in ``logits.dtype``. The
        backward of their sum (or of the ranking loss alone) deposits the error-driven update in
        ``logits``. Without a positive both are 0 and the gradient is 0; they stay in the graph.
    """
    _check_inputs(logits, targets, delta)
    return _RankSortFunction.apply(logits, targets, float(delta))


@MODELS.register_module()
class RankSortLoss(nn.Module):
    """RS Loss (Oksuz et al., ICCV 2021) over one ranking of all given logits.

    Args:
        delta (float): half-width of the smoothed step's ramp (``delta_RS``). Paper and code: 0.5.
        loss_weight (float): multiplies both outputs and the update. Defaults to 1.0.

    ``forward(logits, targets)`` returns ``(loss_rank, loss_sort)``. Heads build the targets
    (:func:`rank_sort_head_losses`). The attributes below let mmdet's ``BBoxHead`` use it as a
    sigmoid classifier without a background logit (RS-R-CNN, docs/methods/rs-loss.md §4).
    mmdet's ``weight``, ``avg_factor`` and ``reduction_override`` are absent: both outputs are
    means over the positives of one ranking of every given logit, so there is no per-entry loss
    to weight, reduce or return, and no normaliser to divide by; an entry leaves the ranking
    through a negative target.
    """

    custom_cls_channels = True

    def __init__(self, delta: float = 0.5, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.delta = positive_number('delta', delta)
        self.loss_weight = float(loss_weight)

    def forward(self, logits: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        ranking, sorting = rank_sort_loss(logits, targets, self.delta)
        return self.loss_weight * ranking, self.loss_weight * sorting

    def get_cls_channels(self, num_classes: int) -> int:
        """One sigmoid logit per class, no background logit."""
        return num_classes

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Sigmoid scores with a zero background column appended (mmdet's (R, C + 1) layout)."""
        return torch.cat([cls_score.sigmoid(), cls_score.new_zeros(cls_score.size(0), 1)], dim=1)

    def extra_repr(self) -> str:
        return f'delta={self.delta}, loss_weight={self.loss_weight}'


def rank_sort_head_losses(loss_cls: RankSortLoss, loss_bbox: nn.Module, logits: Tensor,
                          targets: Tensor, pos_rows: Tensor, pos_labels: Tensor,
                          pos_pred: Tensor, pos_target: Tensor,
                          norm_eps: float = 1e-12) -> Tuple[Tensor, Tensor, Tensor]:
    """The RS heads' three losses, as the reference heads compute them (rs-loss.md §4).

    Args:
        loss_cls: the :class:`RankSortLoss`.
        loss_bbox: a box loss taking decoded boxes and ``reduction_override='none'`` (GIoU).
        logits (Tensor): (R, C) classification logits of all rows of the minibatch.
        targets (Tensor): (R, C) {1, 0, -1} targets (``ranking_targets``); the 1s become IoUs.
        pos_rows, pos_labels (Tensor): row and class of every positive, in row order.
        pos_pred, pos_target (Tensor): (P, 4) decoded predicted and ground-truth boxes.
        norm_eps (float): below this total score weight the box loss is not normalised.

    Returns:
        tuple: ``loss_rank``, ``loss_sort`` and ``loss_bbox``: the GIoU of each positive weighted
        by its detached highest class score, normalised by the weights' sum, then rescaled to
        ``loss_rank + loss_sort`` (self-balance, every iteration, detached ratio).
    """
    # Local import: mmdet.structures pulls in mmcv ops, not needed by the loss itself.
    from mmdet.structures.bbox import bbox_overlaps
    labels = targets.to(logits.dtype if logits.is_floating_point() else torch.float32)
    # IoU labels; the clamp only guards against a rounding excess over 1 (an IoU of 0 stays 0:
    # that positive becomes a negative, as in the reference, rs-loss.md §5).
    labels[pos_rows, pos_labels] = bbox_overlaps(
        pos_pred.detach().float(), pos_target.float(), is_aligned=True).clamp_(max=1).to(
            labels.dtype)
    loss_rank, loss_sort = loss_cls(logits.reshape(-1), labels.reshape(-1))
    weight = logits.detach().sigmoid().max(dim=1).values.index_select(0, pos_rows)
    total = weight.sum()
    per_box = loss_bbox(pos_pred, pos_target, reduction_override='none')
    loss_box = (weight * per_box).sum() / torch.where(total < norm_eps, 1.0, total)
    # Self-balance: the box loss is rescaled to the classification total; 0 stays 0.
    balanced = (loss_rank + loss_sort).detach() / torch.where(
        loss_box.detach() > 0, loss_box.detach(), 1.0)
    return loss_rank, loss_sort, loss_box * balanced

"""DR Loss: Distributional Ranking loss (Qian, Chen, Li, Jin; arXiv 1907.10156, CVPR 2020).

DR Loss turns per-image classification into ranking one expectation of the positive scores above one
expectation of the negative scores (docs/methods/dr-loss.md §2). With ``p = sigmoid(z)``:

* negatives, weighted towards the hard (high-score) ones: ``q-_j = softmax_j(p_j / neg_lambda)`` and
  ``P- = sum_j q-_j p_j``;
* positives, weighted towards the hard (low-score) ones: ``q+_i = softmax_i(-p_i / pos_lambda)`` and
  ``P+ = sum_i q+_i p_i``;
* loss ``tau / L * log(1 + exp(L * (P- - P+ + margin)))``, a smoothed hinge on the two expectations.

It is a RetinaNet classification loss in its paper and reference code (``idstcv/DR_loss``), although
Table 1 of the review prints it under Faster R-CNN (dr-loss.md §6).

Decisions (the reference leaves these open, or uses another label convention):

* **Label convention.** mmdet's: foreground classes ``0..C-1``, background ``C``, ignored rows have
  ``label_weights == 0``. Positives are the GT-class entries of foreground rows; negatives are every
  other entry of a kept row, *including the non-GT classes of foreground rows* (as the reference).
* **Row weights are a mask.** A row is kept when its weight is ``> 0``; the magnitude is not used,
  because DR Loss is one ranking of expectations, not a sum over rows that a weight could scale.
* **Not detached.** The softmax weights ``q`` carry gradient, as in the reference; the gradient is
  autograd's, so easy negatives far below ``P-`` get a small gradient of the opposite sign (§2).
* **Empty sets.** No positive: ``P+ := 1`` (the reference's rule). No negative: ``P- := 0`` (the
  value of the reference's sum over an empty set). Every row ignored: the group contributes a
  finite zero that stays connected to the graph. (The reference would return the constant
  ``tau/L * log(1 + exp(L * (margin - 1)))`` there; an all-ignored image carries no information.)
* **Precision.** bf16/half logits are computed and returned in float32 with autocast disabled
  (8-11 mantissa bits are too few for a softmax over ~10^7 entries); float32/float64 stay as they
  are, so ``gradcheck`` runs in float64.
* **Stability.** ``p`` is bounded in [0, 1], so the softmaxes (max-shifted inside ``torch.softmax``)
  and the final ``softplus`` are finite for any finite logits, including +-100.
* **Accumulation.** Each expectation is ``sum(w * p) / sum(w)`` with ``w = softmax(.)``: the same
  value, but CPU softmax kernels accumulate their normaliser sequentially in float32, which over
  ~10^6 entries scales every weight by up to 1e-4 (measured); torch's cascaded ``sum`` divides that
  common error out and keeps float32 within 1e-7 of float64.
* **Speed.** One softmax over the flattened (M*C) scores; positives and ignored rows are excluded by
  writing ``-inf`` in place into the scaled scores instead of building boolean-indexed copies.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .checks import check_label_range, check_same_shape, finite_number, positive_number


def _check_hyper_parameters(margin: float, pos_lambda: float, neg_lambda: float, L: float,
                            tau: float) -> None:
    """Raise ValueError for hyper-parameters outside the domain of the formulas of dr-loss.md §2:
    the lambdas and L divide the scores, a negative tau would flip the loss."""
    finite_number('margin', margin)
    for name, value in (('pos_lambda', pos_lambda), ('neg_lambda', neg_lambda), ('L', L)):
        positive_number(name, value)
    if finite_number('tau', tau) < 0:
        raise ValueError(f'tau must be >= 0 (it scales the loss), got {tau!r}')


def _check_inputs(cls_score: Tensor, labels: Tensor, label_weights: Optional[Tensor]) -> None:
    """Raise TypeError/ValueError for inputs that are not one (M, C) ranking group."""
    if not cls_score.is_floating_point():
        raise TypeError(f'cls_score must be a floating-point Tensor, got {cls_score.dtype}')
    if cls_score.dim() != 2 or cls_score.size(1) == 0:
        raise ValueError(f'cls_score must have shape (M, C) with C >= 1, got '
                         f'{tuple(cls_score.shape)}')
    num_rows, num_classes = cls_score.shape
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f'labels must be an integer Tensor, got {labels.dtype}')
    if labels.shape != (num_rows, ):
        raise ValueError(f'labels must have shape ({num_rows},) to match cls_score '
                         f'{tuple(cls_score.shape)}, got {tuple(labels.shape)}')
    check_label_range(labels, num_classes)
    if label_weights is not None:
        check_same_shape('label_weights', label_weights, 'labels', labels)


def _softmax_expectation(scaled: Tensor, values: Tensor) -> Tensor:
    """``sum_j softmax(scaled)_j * values_j``, self-normalised so float32 stays accurate."""
    weights = torch.softmax(scaled, dim=0)
    return (weights * values).sum() / weights.sum()


def dr_loss(cls_score: Tensor,
            labels: Tensor,
            label_weights: Optional[Tensor] = None,
            margin: float = 0.5,
            pos_lambda: float = 1.0,
            neg_lambda: float = 0.1 / math.log(3.5),
            L: float = 6.0,
            tau: float = 4.0) -> Tensor:
    """DR Loss of one ranking group (for example all anchors of one image), dr-loss.md §2.

    Args:
        cls_score (Tensor): (M, C) classification logits (any floating dtype).
        labels (Tensor): (M,) integer labels, mmdet convention: foreground ``0..C-1``,
            background ``C``.
        label_weights (Tensor, optional): (M,) row weights; rows with weight ``<= 0`` are ignored.
            Defaults to None (every row kept).
        margin (float): margin gamma between the two expectations. Defaults to 0.5.
        pos_lambda (float): temperature lambda+ of the positive distribution. Defaults to 1.0.
        neg_lambda (float): temperature lambda- of the negative distribution; 0.1 / ln(3.5) gives a
            negative 0.1 higher in probability 3.5x the weight. Defaults to 0.0798.
        L (float): steepness of the logistic smoothing of the hinge. Defaults to 6.0.
        tau (float): scale of the loss. Defaults to 4.0.

    Returns:
        Tensor: scalar, float32 (float64 for float64 input). A finite zero, still attached to
        ``cls_score``, when every row is ignored.
    """
    _check_hyper_parameters(margin, pos_lambda, neg_lambda, L, tau)
    _check_inputs(cls_score, labels, label_weights)
    num_rows, num_classes = cls_score.shape
    if cls_score.dtype not in (torch.float32, torch.float64):
        cls_score = cls_score.float()
    # Under autocast the (M*C)-way softmax could otherwise run in bf16/half.
    with torch.autocast(device_type=cls_score.device.type, enabled=False):
        probs = cls_score.sigmoid()
        if label_weights is None:
            kept = torch.ones(num_rows, dtype=torch.bool, device=cls_score.device)
        else:
            kept = label_weights > 0
        num_kept = int(kept.sum())
        if num_kept == 0:
            # sigmoid keeps the zero finite (0 * sigmoid(+-inf) = 0) and attached to the graph.
            return probs.sum() * 0.

        fg_rows = (kept & (labels < num_classes)).nonzero().squeeze(1)
        fg_labels = labels[fg_rows]

        # Negatives: one softmax over every entry of the kept rows; positive entries and ignored
        # rows get -inf, i.e. weight exactly 0 and zero gradient (no boolean-indexed copies).
        if num_kept * num_classes > fg_rows.numel():
            scaled = probs * (1. / neg_lambda)
            if num_kept < num_rows:
                scaled.index_fill_(0, (~kept).nonzero().squeeze(1), float('-inf'))
            scaled.index_put_((fg_rows, fg_labels), scaled.new_tensor(float('-inf')))
            neg_expectation = _softmax_expectation(scaled.view(-1), probs.view(-1))
        else:
            neg_expectation = probs.new_zeros(())

        if fg_rows.numel() > 0:
            pos_probs = probs[fg_rows, fg_labels]
            pos_expectation = _softmax_expectation(pos_probs * (-1. / pos_lambda), pos_probs)
        else:
            pos_expectation = 1.

        # softplus is the overflow-free form of log(1 + exp(.)).
        return tau / L * F.softplus(L * (neg_expectation - pos_expectation + margin))


@MODELS.register_module()
class DRLoss(nn.Module):
    """DR Loss (CVPR 2020) as an mmdet classification loss; see :func:`dr_loss`.

    One call is one ranking group. DR Loss does not decompose over anchors or FPN levels, so it
    must not be used in a stock ``AnchorHead`` (which calls the loss once per level with an
    ``avg_factor``); use ``DRLossRetinaHead``, which calls it once per image over all levels.

    Of mmdet's loss arguments, ``forward`` takes ``weight`` (the row weights, used as a mask:
    the magnitude would scale nothing in a ranking of two expectations). ``avg_factor`` and
    ``reduction_override`` are absent: the loss is already normalised by its softmax expectations,
    and one ranking gives one scalar, with no per-row loss to average or return (dr-loss.md §4).
    A stock ``AnchorHead`` passing ``avg_factor`` fails with Python's ``TypeError`` for it.

    Args:
        use_sigmoid (bool): must be True. Not a hyper-parameter: ``AnchorHead`` reads this key of
            ``loss_cls`` to give the classifier C sigmoid outputs instead of C+1 softmax ones,
            which DR Loss (defined on per-class sigmoid probabilities) requires.
        margin, pos_lambda, neg_lambda, L, tau: see :func:`dr_loss` (defaults: the paper's and the
            reference code's values, dr-loss.md §3).
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 margin: float = 0.5,
                 pos_lambda: float = 1.0,
                 neg_lambda: float = 0.1 / math.log(3.5),
                 L: float = 6.0,
                 tau: float = 4.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if use_sigmoid is not True:
            raise ValueError(f'DRLoss is defined on sigmoid scores: use_sigmoid must be True, '
                             f'got {use_sigmoid!r}')
        _check_hyper_parameters(margin, pos_lambda, neg_lambda, L, tau)
        self.use_sigmoid = use_sigmoid
        self.margin = margin
        self.pos_lambda = pos_lambda
        self.neg_lambda = neg_lambda
        self.L = L
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, cls_score: Tensor, labels: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """DR Loss of one ranking group times ``loss_weight``.

        Args:
            cls_score (Tensor): (M, C) logits of the group.
            labels (Tensor): (M,) mmdet labels (background = C).
            weight (Tensor, optional): (M,) row weights; rows with weight ``<= 0`` are ignored.
        """
        return self.loss_weight * dr_loss(
            cls_score,
            labels,
            weight,
            margin=self.margin,
            pos_lambda=self.pos_lambda,
            neg_lambda=self.neg_lambda,
            L=self.L,
            tau=self.tau)

    def extra_repr(self) -> str:
        return (f'margin={self.margin}, pos_lambda={self.pos_lambda}, '
                f'neg_lambda={self.neg_lambda:.7g}, L={self.L}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}')

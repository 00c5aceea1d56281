"""Residual Objectness (ResObj) losses: objectness BCE, positive-only class BCE, EMA normaliser.

Chen et al., "Residual Objectness for Imbalance Reduction", arXiv 1908.09075 / Pattern Recognition
130 (2022); documented in docs/methods/resobj.md §4, which follows the released detectron2 code
(``chenjoya/resobj`` @ 15da804, ``ResObjRetinaNet.losses``). The head that produces the logits is
:class:`mmdet_imbalance.models.dense_heads.ResObjRetinaHead`.

With ``o`` the objectness logit of an anchor, ``z`` its K class logits and ``N`` the loss
normaliser (§4):

* ``L_obj = obj_weight * sum_{valid} BCE(o, 1[pos]) / N_obj``. Plain BCE over every non-ignored
  anchor, no focal term and no sampling: ResObj moves the foreground-background imbalance onto this
  single "objectness class" and lets the residual stages absorb it.
* ``L_cls = cls_weight * sum_{pos} sum_k BCE(z_k, onehot_k) / N_cls``. Sigmoid BCE over all K
  classes of the positive anchors only; background anchors never reach the class branch.
* The released weights are 1/20 (objectness) and 1/10 (class) relative to the box loss (§4).

Decisions:

* **Normaliser: the released code's EMA, not mmdet's per-iteration ``num_pos``.** ``N`` is
  detectron2's moving average of ``max(num_pos, 1)`` (initial 100, momentum 0.9). The released
  code calls the update three times per iteration with the same state (once per loss term), so the
  objectness, class and box terms use the 1st, 2nd and 3rd of three successive updates and the
  effective per-iteration momentum is 0.9**3 = 0.729. We reproduce that quirk exactly
  (resobj.md §4). ``ema_momentum=0`` turns it into mmdet's ``max(num_pos, 1)``.
* **Distributed training.** detectron2 keeps the average per GPU (a Python attribute, lost on
  resume). We average ``num_pos`` over ranks (``mmdet.utils.reduce_mean``) before the update, so
  every rank holds the same value, and keep the average in a persistent buffer
  (``num_pos_ema``) so it is saved in checkpoints and survives ``--resume``. mmengine wraps models
  with ``broadcast_buffers=False``; because the ranks agree anyway, broadcasting would not change
  it either. With one process the update equals the released code's.
* **The average only moves in training mode.** In eval mode the normalisers are the values an
  update would give, but the buffer is left unchanged.
* Both BCE terms are computed in float32 whatever the logits' dtype (bfloat16 autocast), and
  weighted by mmdet's ``label_weights`` (1 for sampled anchors, 0 for ignored ones, ``pos_weight``
  for positives where the train_cfg sets it).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import reduce_mean
from torch import Tensor

from .checks import check_same_shape, finite_number, one_of, positive_number

Number = Union[int, float, Tensor]
REDUCTIONS = ('none', 'mean', 'sum')


def _check_reduction(reduction: str, avg_factor: Number) -> None:
    one_of('reduction', reduction, REDUCTIONS)
    # Tensor normalisers come from the EMA (always >= 1) and are not read back, which would cost
    # a device synchronisation every iteration; Python numbers are checked.
    if reduction == 'mean' and not torch.is_tensor(avg_factor) and not avg_factor > 0:
        raise ValueError(f'avg_factor must be positive, got {avg_factor!r}')


def _reduce(per_anchor: Tensor, reduction: str, avg_factor: Number) -> Tensor:
    # 'mean' is the released code's sum / N, not mmdet's weight_reduce_loss (which adds an eps).
    if reduction == 'none':
        return per_anchor
    total = per_anchor.sum()
    return total / avg_factor if reduction == 'mean' else total


def _check_anchor_args(labels: Tensor, label_weights: Tensor, num_anchors: int,
                       logits_name: str) -> None:
    # A (M, 1) or (M, K) mismatch would broadcast against the (M,) weights instead of failing.
    if labels.dim() != 1 or labels.numel() != num_anchors:
        raise ValueError(f'labels must have shape ({num_anchors},) to match {logits_name}, '
                         f'got {tuple(labels.shape)}')
    check_same_shape('label_weights', label_weights, 'labels', labels)


def positive_mask(labels: Tensor, label_weights: Tensor, num_classes: int) -> Tensor:
    """Foreground anchors in mmdet's convention: label in ``[0, num_classes)`` and not ignored."""
    return (labels >= 0) & (labels < num_classes) & (label_weights > 0)


def objectness_bce_loss(obj_logits: Tensor,
                        labels: Tensor,
                        label_weights: Tensor,
                        num_classes: int,
                        avg_factor: Number = 1.0,
                        reduction: str = 'mean') -> Tensor:
    """ResObj objectness loss: BCE of every valid anchor against "is foreground" (resobj.md §4).

    Args:
        obj_logits (Tensor): objectness logits, shape (M,).
        labels (Tensor): mmdet anchor labels, shape (M,): ``0..num_classes-1`` foreground,
            ``num_classes`` background.
        label_weights (Tensor): per-anchor weights, shape (M,); 0 marks an ignored anchor.
        num_classes (int): number of foreground classes K.
        avg_factor (float | Tensor): the sum is divided by it (the objectness normaliser) when
            ``reduction='mean'``.
        reduction (str): ``'mean'`` (sum / ``avg_factor``), ``'sum'`` or ``'none'`` (per anchor).

    Returns:
        Tensor: ``sum_valid w * BCE(o, 1[pos]) / avg_factor`` in float32 (``'mean'``), the plain
        sum (``'sum'``) or the (M,) weighted per-anchor terms (``'none'``).
    """
    _check_anchor_args(labels, label_weights, obj_logits.numel(), 'obj_logits')
    _check_reduction(reduction, avg_factor)
    weights = label_weights.float()
    targets = positive_mask(labels, label_weights, num_classes).float()
    bce = F.binary_cross_entropy_with_logits(obj_logits.float(), targets, reduction='none')
    return _reduce(bce * weights, reduction, avg_factor)


def positive_class_bce_loss(cls_logits: Tensor,
                            labels: Tensor,
                            label_weights: Tensor,
                            avg_factor: Number = 1.0,
                            reduction: str = 'mean') -> Tensor:
    """ResObj class loss: sigmoid BCE over all K classes of the positive anchors only (§4).

    Args:
        cls_logits (Tensor): class logits of all anchors, shape (M, K).
        labels (Tensor): mmdet anchor labels, shape (M,); only labels in ``[0, K)`` with a positive
            weight contribute.
        label_weights (Tensor): per-anchor weights, shape (M,).
        avg_factor (float | Tensor): the sum is divided by it (the class normaliser) when
            ``reduction='mean'``.
        reduction (str): ``'mean'`` (sum / ``avg_factor``), ``'sum'`` or ``'none'`` (per anchor).

    Returns:
        Tensor: ``sum_pos w * sum_k BCE(z_k, onehot_k) / avg_factor`` in float32 (``'mean'``;
        exactly 0, with a gradient path, when there is no positive anchor), the plain sum
        (``'sum'``) or the (M,) weighted per-anchor terms, 0 off the positives (``'none'``).
    """
    if cls_logits.dim() != 2:
        raise ValueError(f'cls_logits must have shape (M, K), got {tuple(cls_logits.shape)}')
    _check_anchor_args(labels, label_weights, cls_logits.size(0), 'cls_logits')
    _check_reduction(reduction, avg_factor)
    num_classes = cls_logits.size(1)
    pos = positive_mask(labels, label_weights, num_classes)
    # Index the positives first: the class branch sees no background anchor, and this keeps the
    # cost at num_pos * K instead of M * K.
    pos_logits = cls_logits[pos].float()
    targets = F.one_hot(labels[pos].long(), num_classes).float()
    bce = F.binary_cross_entropy_with_logits(pos_logits, targets, reduction='none')
    per_positive = bce.sum(dim=1) * label_weights[pos].float()
    if reduction == 'none':
        return per_positive.new_zeros(pos.shape).masked_scatter(pos, per_positive)
    return _reduce(per_positive, reduction, avg_factor)


def ema_loss_normalizers(ema: Number,
                         num_pos: Number,
                         momentum: float = 0.9,
                         num_updates: int = 3) -> Tensor:
    """Successive detectron2-style EMA updates of the loss normaliser (resobj.md §4).

    Each update is ``n <- momentum * n + (1 - momentum) * max(num_pos, 1)``; the released code
    applies it ``num_updates=3`` times per iteration (objectness, class, box).

    Returns:
        Tensor: float32 vector of the ``num_updates`` values after each update, in order.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f'momentum must be in [0, 1), got {momentum!r}')
    if num_updates < 1:
        raise ValueError(f'num_updates must be >= 1, got {num_updates!r}')
    value = torch.as_tensor(ema, dtype=torch.float32)
    count = torch.as_tensor(num_pos, dtype=torch.float32, device=value.device).clamp(min=1)
    values = []
    for _ in range(num_updates):
        value = momentum * value + (1 - momentum) * count
        values.append(value)
    return torch.stack(values)


@MODELS.register_module()
class ResObjLoss(nn.Module):
    """ResObj objectness and class losses with the released code's EMA normaliser (resobj.md §4).

    Used as the ``loss_cls`` of :class:`ResObjRetinaHead`, which calls :meth:`normalizers` once
    per iteration and uses the third value for its box loss.

    Args:
        obj_weight (float): weight of the objectness loss relative to the box loss (1/20).
        cls_weight (float): weight of the positive-only class loss relative to the box loss (1/10).
        ema_momentum (float): momentum of the ``num_pos`` moving average (0.9, detectron2's
            ``_ema_update``); 0 gives mmdet's per-iteration ``max(num_pos, 1)``.
        ema_init (float): initial value of the moving average (100, detectron2's).
    """

    def __init__(self,
                 obj_weight: float = 1 / 20,
                 cls_weight: float = 1 / 10,
                 ema_momentum: float = 0.9,
                 ema_init: float = 100.0) -> None:
        super().__init__()
        for name, value in (('obj_weight', obj_weight), ('cls_weight', cls_weight)):
            if finite_number(name, value) < 0:
                raise ValueError(f'{name} must be >= 0, got {value!r}')
        if not 0 <= finite_number('ema_momentum', ema_momentum) < 1:
            raise ValueError(f'ema_momentum must be in [0, 1), got {ema_momentum!r}')
        self.obj_weight = float(obj_weight)
        self.cls_weight = float(cls_weight)
        self.ema_momentum = float(ema_momentum)
        self.ema_init = positive_number('ema_init', ema_init)
        # Persistent so that checkpoints carry it and a resumed run continues the same average.
        self.register_buffer('num_pos_ema', torch.tensor(self.ema_init))

    def normalizers(self, num_pos: Number) -> Tuple[Tensor, Tensor, Tensor]:
        """Objectness, class and box normalisers for this iteration (three EMA updates).

        ``num_pos`` is this process's number of positive anchors; it is averaged over ranks first
        so that every rank keeps the same average. The buffer moves only in training mode.
        """
        count = torch.as_tensor(num_pos, dtype=torch.float32, device=self.num_pos_ema.device)
        count = reduce_mean(count.detach())
        values = ema_loss_normalizers(self.num_pos_ema.detach().float(), count,
                                      self.ema_momentum, num_updates=3)
        if self.training:
            self.num_pos_ema.copy_(values[-1])
        return values[0], values[1], values[2]

    def forward(self,
                cls_score: Tensor,
                obj_score: Tensor,
                labels: Tensor,
                weight: Tensor,
                obj_avg_factor: Optional[Number] = None,
                cls_avg_factor: Optional[Number] = None,
                reduction_override: Optional[str] = None) -> Tuple[Tensor, Tensor]:
        """Weighted class and objectness losses.

        mmdet's ``avg_factor`` comes as two, one per term: the released code normalises them by
        successive EMA updates (:meth:`normalizers`).

        Args:
            cls_score (Tensor): class logits, shape (M, K).
            obj_score (Tensor): objectness logits, shape (M,).
            labels (Tensor): mmdet anchor labels, shape (M,).
            weight (Tensor): mmdet's anchor weights (``label_weights``), shape (M,).
            obj_avg_factor, cls_avg_factor (float | Tensor, optional): normalisers of the mean;
                when None, ``max(num_pos, 1)`` of this call (no EMA).
            reduction_override (str, optional): ``'none'`` (per-anchor terms, shape (M,)),
                ``'sum'`` or ``'mean'`` (the default: the sums divided by the normalisers).

        Returns:
            tuple[Tensor, Tensor]: ``(loss_cls, loss_obj)``, already multiplied by their weights.
        """
        reduction = reduction_override or 'mean'
        num_classes = cls_score.size(1)
        if reduction == 'mean' and (obj_avg_factor is None or cls_avg_factor is None):
            num_pos = positive_mask(labels, weight, num_classes).sum().clamp(min=1).float()
            obj_avg_factor = num_pos if obj_avg_factor is None else obj_avg_factor
            cls_avg_factor = num_pos if cls_avg_factor is None else cls_avg_factor
        loss_obj = objectness_bce_loss(obj_score, labels, weight, num_classes,
                                       avg_factor=obj_avg_factor, reduction=reduction)
        loss_cls = positive_class_bce_loss(cls_score, labels, weight, avg_factor=cls_avg_factor,
                                           reduction=reduction)
        return self.cls_weight * loss_cls, self.obj_weight * loss_obj

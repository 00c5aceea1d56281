"""What the ranking-loss heads share (AP, RS, aLRP): sigmoid logits, {1, 0, -1} targets, and the
decoded boxes of the positives.

AP Loss, RS Loss and aLRP Loss rank every (anchor, class) logit of the minibatch at once
(docs/methods/ap-loss.md §5, rs-loss.md §4, alrp-loss.md §4). :func:`ranking_rows` turns the
:class:`~.flat_targets.FlatTargets` of the minibatch into those rows; the positives are listed in
row order, which is the flat order of the 1s in the targets.
"""
from typing import NamedTuple

import torch
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

from ..losses.checks import check_label_range, check_same_shape
from .flat_targets import FlatTargets


class SigmoidLogitsMixin:
    """One logit per class (sigmoid-style) whatever ``loss_cls`` says: the ranking losses rank raw
    logits and the test scores are ``sigmoid(logit)``, but they have no ``use_sigmoid`` argument,
    from which ``AnchorHead`` would infer a background logit. ``AnchorHead.__init__`` calls
    ``_init_layers`` after reading the loss and before building the convs."""

    def _init_layers(self) -> None:
        self.use_sigmoid_cls = True
        self.cls_out_channels = self.num_classes
        super()._init_layers()


def ranking_targets(labels: Tensor, label_weights: Tensor, num_classes: int) -> Tensor:
    """{1, 0, -1} targets (int8, ``labels.shape + (num_classes,)``) of one ranking of every
    (row, class) logit, from mmdet labels; the AP, RS and aLRP heads all rank these.

    The GT class of a positive is 1, every other entry of a kept row 0, and every class of a row
    with ``label_weight <= 0`` (ignore band, invalid anchor) -1 (ap-loss.md §6).
    """
    check_same_shape('label_weights', label_weights, 'labels', labels)
    check_label_range(labels, num_classes)
    valid = label_weights > 0
    targets = torch.zeros(labels.shape + (num_classes, ), dtype=torch.int8, device=labels.device)
    targets[~valid] = -1
    pos = (valid & (labels < num_classes)).nonzero(as_tuple=True)
    targets[pos + (labels[pos], )] = 1
    return targets


class RankingRows(NamedTuple):
    """The minibatch as rows: logits and targets of every anchor, decoded boxes of positives."""
    logits: Tensor  # (R, C) float32
    targets: Tensor  # (R, C) int8: 1 positive class, 0 negative, -1 ignored anchor
    pos_rows: Tensor  # (P,) rows of the positive anchors, ascending
    pos_labels: Tensor  # (P,) their classes
    pos_pred: Tensor  # (P, 4) decoded predicted boxes
    pos_target: Tensor  # (P, 4) ground-truth boxes
    bbox_pred: Tensor  # (R, encode_size) raw regression output, for zero losses in the graph


def ranking_rows(head, flat: FlatTargets) -> RankingRows:
    """The rows of a ranking head's minibatch; the head regresses decoded boxes
    (``reg_decoded_bbox=True``), so its box targets are the GT boxes."""
    bbox_pred = flat.bbox_pred.float()
    targets = ranking_targets(flat.labels, flat.label_weights, head.num_classes)
    pos_rows = ((flat.label_weights > 0) & (flat.labels < head.num_classes)).nonzero().squeeze(1)
    pos_pred = get_box_tensor(head.bbox_coder.decode(flat.anchors.index_select(0, pos_rows),
                                                     bbox_pred.index_select(0, pos_rows)))
    return RankingRows(flat.cls_score.float(), targets, pos_rows,
                       flat.labels.index_select(0, pos_rows), pos_pred,
                       flat.bbox_targets.index_select(0, pos_rows).float(), bbox_pred)


def check_ranking_head(head, loss_type: type) -> None:
    """The ranking heads need their own loss (it carries the error-driven update) and decoded
    boxes (IoU labels and GIoU errors are computed on them)."""
    if not isinstance(head.loss_cls, loss_type):
        raise TypeError(f'{type(head).__name__} needs loss_cls=dict(type={loss_type.__name__!r}, '
                        f'...), got {type(head.loss_cls).__name__}')
    if not head.reg_decoded_bbox:
        raise ValueError(f'{type(head).__name__} needs reg_decoded_bbox=True: its box loss and '
                         'IoU labels are computed on decoded boxes')


def in_graph_of(loss: Tensor, prediction: Tensor) -> Tensor:
    """``loss`` plus ``prediction.sum() * 0``: with no positive in a batch, a ranking head's box
    loss is a constant, and the box branch would drop out of the autograd graph; distributed
    training then waits forever for its gradients on the other ranks. The value is unchanged."""
    return loss + prediction.sum() * 0

"""One flat ranking over all levels and images, for the ranking-loss dense heads (RS, aLRP).

RS Loss and aLRP Loss rank every (anchor, class) logit of the minibatch at once
(docs/methods/rs-loss.md §4, docs/methods/alrp-loss.md §4), and both need the decoded box of
every positive anchor. :func:`ranking_rows` turns the per-level outputs of ``get_targets`` into
those rows, in the order of ``levels_to_rows`` (image, level, position, base anchor), so that the
flat order of the positives in the {1, 0, -1} targets is the row order of the positive anchors.
"""
from typing import List, NamedTuple

import torch
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from .ap_loss_retina_head import ap_loss_targets
from .sampling_free_base import levels_to_rows


class SigmoidLogitsMixin:
    """One logit per class (sigmoid-style) whatever ``loss_cls`` says: the ranking losses rank raw
    logits and the test scores are ``sigmoid(logit)``, but they have no ``use_sigmoid`` argument,
    from which ``AnchorHead`` would infer a background logit. ``AnchorHead.__init__`` calls
    ``_init_layers`` after reading the loss and before building the convs."""

    def _init_layers(self) -> None:
        self.use_sigmoid_cls = True
        self.cls_out_channels = self.num_classes
        super()._init_layers()


class RankingRows(NamedTuple):
    """The minibatch as rows: logits and targets of every anchor, decoded boxes of positives."""
    logits: Tensor  # (R, C) float32
    targets: Tensor  # (R, C) int8: 1 positive class, 0 negative, -1 ignored anchor
    pos_rows: Tensor  # (P,) rows of the positive anchors, ascending
    pos_labels: Tensor  # (P,) their classes
    pos_pred: Tensor  # (P, 4) decoded predicted boxes
    pos_target: Tensor  # (P, 4) ground-truth boxes
    bbox_pred: Tensor  # (R, encode_size) raw regression output, for zero losses in the graph


def ranking_rows(head, cls_scores: List[Tensor], bbox_preds: List[Tensor], anchors: Tensor,
                 labels_list: List[Tensor], label_weights_list: List[Tensor],
                 bbox_targets_list: List[Tensor]) -> RankingRows:
    """Rows of an anchor head's minibatch.

    Args:
        head: the anchor head (``num_classes``, ``cls_out_channels``, ``bbox_coder``); it must
            regress decoded boxes (``reg_decoded_bbox=True``), so the box targets are GT boxes.
        cls_scores, bbox_preds (list[Tensor]): the head's per-level outputs.
        anchors (Tensor): (R, 4) anchors in row order.
        labels_list, label_weights_list, bbox_targets_list (list[Tensor]): per-level (N, A_l, ...)
            outputs of ``get_targets``.
    """
    labels = torch.cat(labels_list, dim=1).reshape(-1)
    label_weights = torch.cat(label_weights_list, dim=1).reshape(-1)
    bbox_targets = torch.cat(bbox_targets_list, dim=1).reshape(labels.numel(), -1)
    logits = levels_to_rows(cls_scores, head.cls_out_channels)
    bbox_pred = levels_to_rows(bbox_preds, head.bbox_coder.encode_size)
    targets = ap_loss_targets(labels, label_weights, head.num_classes)
    pos_rows = ((label_weights > 0) & (labels < head.num_classes)).nonzero().squeeze(1)
    pos_pred = get_box_tensor(head.bbox_coder.decode(anchors.index_select(0, pos_rows),
                                                     bbox_pred.index_select(0, pos_rows)))
    return RankingRows(logits, targets, pos_rows, labels.index_select(0, pos_rows), pos_pred,
                       bbox_targets.index_select(0, pos_rows).float(), bbox_pred)


def anchor_head_rows(head,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> RankingRows:
    """:func:`ranking_rows` of an ``AnchorHead`` (RetinaNet, RPN), from ``loss_by_feat``'s
    arguments, with ``AnchorHead``'s anchors and targets."""
    featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
    anchor_list, valid_flag_list = head.get_anchors(
        featmap_sizes, batch_img_metas, device=cls_scores[0].device)
    labels_list, label_weights_list, bbox_targets_list, _, _ = head.get_targets(
        anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
        batch_gt_instances_ignore=batch_gt_instances_ignore)
    anchors = torch.cat([get_box_tensor(cat_boxes(per_image)) for per_image in anchor_list])
    return ranking_rows(head, cls_scores, bbox_preds, anchors, labels_list, label_weights_list,
                        bbox_targets_list)


def check_decoded_regression(head) -> None:
    """The ranking heads compare decoded boxes (IoU labels, GIoU errors): refuse delta targets."""
    if not head.reg_decoded_bbox:
        raise ValueError(f'{type(head).__name__} needs reg_decoded_bbox=True: its box loss and '
                         'IoU labels are computed on decoded boxes')

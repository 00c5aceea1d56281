"""An anchor head's minibatch as one row per anchor, for losses taken over all levels at once.

mmdet's ``AnchorHead.loss_by_feat`` calls its losses once per FPN level. The methods here do not
decompose per level: AP Loss, RS Loss and aLRP Loss rank the whole minibatch (ap-loss.md §5,
rs-loss.md §4, alrp-loss.md §4), DR Loss ranks one image (dr-loss.md §4), the guided loss takes the
ratio of two totals (sampling-free.md §5) and ResObj's normaliser is one per iteration
(resobj.md §4). :func:`anchor_targets` runs the stock ``get_anchors`` and ``get_targets`` and
concatenates their per-level outputs, and :class:`FlatAnchorLossMixin` is the ``loss_by_feat``
that hands the result to the head's own ``loss_by_flat``.

Row order everywhere: image, then level, then mmdet's (y, x, base anchor) order within a level.
"""
from typing import List, NamedTuple, Union

import torch
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor


def levels_to_rows(per_level: List[Tensor], last_dim: int) -> Tensor:
    """(N, A_l*K, H_l, W_l) maps of every level -> one (N * sum_l A_l*H_l*W_l, K) tensor."""
    num_imgs = per_level[0].size(0)
    rows = torch.cat(
        [level.permute(0, 2, 3, 1).reshape(num_imgs, -1, last_dim) for level in per_level], dim=1)
    return rows.reshape(-1, last_dim)


def _cat_levels(per_level: List[Tensor]) -> Tensor:
    """Per-level (N, A_l, ...) targets of ``get_targets`` -> (N * sum_l A_l, ...) rows."""
    return torch.cat(per_level, dim=1).flatten(0, 1)


class FlatTargets(NamedTuple):
    """Outputs and targets of every anchor of the minibatch, one row per anchor."""
    cls_score: Tensor  # (R, cls_out_channels), the head's dtype
    bbox_pred: Tensor  # (R, encode_size), the head's dtype
    anchors: Tensor  # (R, 4)
    labels: Tensor  # (R,) foreground 0..C-1, background C
    label_weights: Tensor  # (R,) 0 for ignored and invalid anchors
    bbox_targets: Tensor  # (R, 4) deltas, or GT boxes with reg_decoded_bbox
    bbox_weights: Tensor  # (R, 4)
    avg_factor: Union[int, float]  # mmdet's: sum over images of the sampler's avg_factor
    num_imgs: int


def anchor_targets(head,
                   cls_scores: List[Tensor],
                   bbox_preds: List[Tensor],
                   batch_gt_instances: InstanceList,
                   batch_img_metas: List[dict],
                   batch_gt_instances_ignore: OptInstanceList = None) -> FlatTargets:
    """:class:`FlatTargets` of an ``AnchorHead`` from ``loss_by_feat``'s arguments."""
    featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
    anchor_list, valid_flag_list = head.get_anchors(
        featmap_sizes, batch_img_metas, device=cls_scores[0].device)
    # Before get_targets: ATSSHead.get_targets concatenates anchor_list's levels in place.
    anchors = torch.cat([get_box_tensor(cat_boxes(per_image)) for per_image in anchor_list])
    # ATSSHead.get_targets returns its per-level anchors first; on every valid anchor they are
    # these, and invalid anchors carry no target, so that entry is not needed.
    *_, labels, label_weights, bbox_targets, bbox_weights, avg_factor = head.get_targets(
        anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
        batch_gt_instances_ignore=batch_gt_instances_ignore)
    return FlatTargets(
        levels_to_rows(cls_scores, head.cls_out_channels),
        levels_to_rows(bbox_preds, head.bbox_coder.encode_size), anchors, _cat_levels(labels),
        _cat_levels(label_weights), _cat_levels(bbox_targets), _cat_levels(bbox_weights),
        avg_factor, len(batch_img_metas))


def flat_bbox_loss(head, flat: FlatTargets, avg_factor) -> Tensor:
    """``head.loss_bbox`` over all rows (zero-weight rows drop out), on decoded boxes when the
    head regresses them (``reg_decoded_bbox``)."""
    bbox_pred = flat.bbox_pred
    if head.reg_decoded_bbox:
        bbox_pred = get_box_tensor(head.bbox_coder.decode(flat.anchors, bbox_pred))
    return head.loss_bbox(bbox_pred, flat.bbox_targets, flat.bbox_weights, avg_factor=avg_factor)


class FlatAnchorLossMixin:
    """``loss_by_feat`` over the whole minibatch: :func:`anchor_targets`, then the head's
    ``loss_by_flat(flat) -> dict``. Mixed in before a stock mmdet anchor head."""

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """The head's losses (``loss_by_flat``) over all levels and images at once."""
        return self.loss_by_flat(
            anchor_targets(self, cls_scores, bbox_preds, batch_gt_instances, batch_img_metas,
                           batch_gt_instances_ignore))

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        raise NotImplementedError(f'{type(self).__name__} must implement loss_by_flat')

"""RetinaNet head trained with AP-Loss (Chen et al., CVPR 2019); docs/methods/ap-loss.md §5-§7.

AP-Loss ranks every (anchor, class) logit of the minibatch against every other one; it does not
decompose per FPN level (ap-loss.md §6), so mmdet's per-level ``loss_by_feat`` would
compute a different loss. This head overrides only ``loss_by_feat``: it concatenates all levels of
all images of the batch and calls ``loss_cls`` (an :class:`APLoss`) once, on one ranking.

Decisions:

* **Targets** (§6), from mmdet's assigner output: the GT class of a positive anchor is 1, the
  other classes of a positive anchor and every class of a negative anchor are 0, and every class
  of an anchor with ``label_weight == 0`` (the 0.4-0.5 IoU band, invalid anchors) is -1. mmdet's
  ``MaxIoUAssigner(0.5, 0.4, min_pos_iou=0)`` with ``gt_max_assign_all`` is the reference's rule
  (IoU >= 0.5, or the best anchor of a GT, all ties).
* **Sigmoid scores.** AP-Loss ranks raw logits; at test time the reference scores are
  ``sigmoid(logit)`` (§6). The head is therefore always sigmoid-style (``num_classes`` outputs
  per anchor) whatever ``loss_cls`` says, so ``APLoss`` needs no ``use_sigmoid`` argument.
* **Ranking scope: the per-GPU batch** (§5), as the reference. With
  ``gather_across_ranks=True`` the logits and targets of all distributed ranks are all-gathered and
  ranked together, as one global batch. Gathered copies are detached: only the local part's
  gradient flows back, multiplied by the world size, so that after DDP's gradient averaging the
  parameters receive exactly the gradient of the global-batch AP-Loss (each rank holds the same
  global loss; the logged ``loss_cls`` is that global value). Ranks may hold different numbers of
  anchors (different padded image sizes): shorter ones are padded with ignored entries.
* **Regression is mmdet's** (``loss_bbox`` over all levels at once with the usual ``avg_factor``,
  the number of positive anchors; equal to the stock per-level sum since L1 decomposes). The
  reference's hand-written smooth-L1 whose applied gradient is a quarter of its logged loss (§7)
  is not replicated, so that the row differs from the Focal Loss baseline in the classification
  loss only.
"""
from typing import List, Tuple

import torch
import torch.distributed as torch_dist
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.dist import get_rank, get_world_size
from torch import Tensor

from ..losses.ap_loss import APLoss


def ap_loss_targets(labels: Tensor, label_weights: Tensor, num_classes: int) -> Tensor:
    """{1, 0, -1} AP-Loss targets (int8, ``labels.shape + (num_classes,)``) from mmdet labels.

    Args:
        labels (Tensor): anchor labels, foreground ``0..num_classes-1``, background ``num_classes``.
        label_weights (Tensor): same shape; anchors with weight ``<= 0`` are ignored (all classes
            -1).
        num_classes (int): number of foreground classes.
    """
    if labels.shape != label_weights.shape:
        raise ValueError(f'label_weights must have the shape of labels {tuple(labels.shape)}, '
                         f'got {tuple(label_weights.shape)}')
    if labels.numel() and (labels.min() < 0 or labels.max() > num_classes):
        raise ValueError(f'labels must lie in [0, num_classes={num_classes}] (mmdet convention, '
                         f'background = num_classes), got [{labels.min().item()}, '
                         f'{labels.max().item()}]')
    valid = label_weights > 0
    targets = torch.zeros(labels.shape + (num_classes, ), dtype=torch.int8, device=labels.device)
    targets[~valid] = -1
    pos = (valid & (labels < num_classes)).nonzero(as_tuple=True)
    targets[pos + (labels[pos], )] = 1
    return targets


def gather_for_ranking(logits: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor, int]:
    """All-gather (rows, C) logits and targets of every rank into one ranking.

    Returns the concatenated logits (float32; only this rank's rows carry gradient), targets and
    the world size. Rows are padded to the longest rank with ignored (-1) entries. Without an
    initialised process group (or with one rank) the inputs come back unchanged with world size 1.
    """
    world_size = get_world_size()
    if world_size == 1:
        return logits, targets, 1
    rank = get_rank()
    num_rows = torch.tensor([logits.size(0)], device=logits.device)
    all_rows = [torch.zeros_like(num_rows) for _ in range(world_size)]
    torch_dist.all_gather(all_rows, num_rows)
    pad = int(max(r.item() for r in all_rows)) - logits.size(0)
    local = torch.cat([logits.float(), logits.new_zeros(pad, logits.size(1), dtype=torch.float32)])
    local_t = torch.cat([targets, targets.new_full((pad, targets.size(1)), -1)])
    gathered = [torch.empty_like(local) for _ in range(world_size)]
    gathered_t = [torch.empty_like(local_t) for _ in range(world_size)]
    torch_dist.all_gather(gathered, local.detach())
    torch_dist.all_gather(gathered_t, local_t)
    gathered[rank] = local  # the only part with a graph back to this rank's parameters
    return torch.cat(gathered), torch.cat(gathered_t), world_size


def _levels_to_batch(per_level: List[Tensor], last_dim: int) -> Tensor:
    """(N, A_l*K, H, W) maps of every level -> one (N, sum_l A_l*H*W, K) tensor in mmdet's anchor
    order (level, then y, x, then base anchor), which is the order of ``get_targets``'s output."""
    return torch.cat(
        [level.permute(0, 2, 3, 1).reshape(level.size(0), -1, last_dim) for level in per_level],
        dim=1)


@MODELS.register_module()
class APLossRetinaHead(RetinaHead):
    """``RetinaHead`` whose classification loss is one AP-Loss over all levels and images.

    Args:
        gather_across_ranks (bool): rank the logits of all distributed ranks together (global
            batch) instead of the per-GPU batch of the reference. Defaults to False.
        *args, **kwargs: ``RetinaHead``'s; ``loss_cls`` must build an :class:`APLoss`.
    """

    def __init__(self, *args, gather_across_ranks: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.loss_cls, APLoss):
            raise TypeError('APLossRetinaHead needs loss_cls=dict(type=\'APLoss\', ...), got '
                            f'{type(self.loss_cls).__name__}')
        if not isinstance(gather_across_ranks, bool):
            raise TypeError(f'gather_across_ranks must be a bool, got {gather_across_ranks!r}')
        self.gather_across_ranks = gather_across_ranks

    def _init_layers(self) -> None:
        """Sigmoid-style outputs (``num_classes`` per anchor): AP-Loss ranks logits and inference
        uses ``sigmoid(logit)`` (§6). ``AnchorHead.__init__`` calls this before building convs."""
        self.use_sigmoid_cls = True
        self.cls_out_channels = self.num_classes
        super()._init_layers()

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """AP-Loss over all levels and images at once; mmdet's bbox loss.

        Args and the anchor/target computation are those of ``AnchorHead.loss_by_feat``.

        Returns:
            dict: ``loss_cls`` (scalar) and ``loss_bbox`` (scalar).
        """
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=cls_scores[0].device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         avg_factor) = self.get_targets(
             anchor_list,
             valid_flag_list,
             batch_gt_instances,
             batch_img_metas,
             batch_gt_instances_ignore=batch_gt_instances_ignore)

        # get_targets returns per-level (N, A_l, ...) tensors; one ranking covers them all (§5).
        targets = ap_loss_targets(
            torch.cat(labels_list, dim=1), torch.cat(label_weights_list, dim=1), self.num_classes)
        logits = _levels_to_batch(cls_scores, self.cls_out_channels)
        logits = logits.reshape(-1, self.cls_out_channels)
        targets = targets.reshape(-1, self.cls_out_channels)
        world_size = 1
        if self.gather_across_ranks:
            logits, targets, world_size = gather_for_ranking(logits, targets)
        loss_cls = self.loss_cls(logits, targets)
        if world_size > 1:
            # Same value, world_size x the gradient: undoes DDP's averaging (module docstring).
            loss_cls = loss_cls + (world_size - 1) * (loss_cls - loss_cls.detach())

        bbox_pred = _levels_to_batch(bbox_preds, self.bbox_coder.encode_size)
        bbox_targets = torch.cat(bbox_targets_list, dim=1)
        bbox_weights = torch.cat(bbox_weights_list, dim=1)
        if self.reg_decoded_bbox:
            # cat_boxes over one image's levels gives the row order of _levels_to_batch.
            anchors = torch.stack(
                [get_box_tensor(cat_boxes(per_image)) for per_image in anchor_list])
            bbox_pred = get_box_tensor(
                self.bbox_coder.decode(
                    anchors.reshape(-1, anchors.size(-1)),
                    bbox_pred.reshape(-1, bbox_pred.size(-1))))
        loss_bbox = self.loss_bbox(
            bbox_pred.reshape(-1, bbox_pred.size(-1)),
            bbox_targets.reshape(-1, bbox_targets.size(-1)),
            bbox_weights.reshape(-1, bbox_weights.size(-1)),
            avg_factor=avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)

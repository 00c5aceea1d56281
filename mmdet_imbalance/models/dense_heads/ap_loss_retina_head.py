"""RetinaNet head trained with AP-Loss (Chen et al., CVPR 2019); docs/methods/ap-loss.md §5-§7.

AP-Loss ranks every (anchor, class) logit of the minibatch against every other one; it does not
decompose per FPN level (ap-loss.md §6), so mmdet's per-level ``loss_by_feat`` would compute a
different loss. This head replaces only ``loss_by_feat`` (through
:class:`~.flat_targets.FlatAnchorLossMixin`): it concatenates all levels of all images of the
batch and calls ``loss_cls`` (an :class:`APLoss`) once, on one ranking.

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
from typing import Tuple

import torch
import torch.distributed as torch_dist
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.utils import ConfigType
from mmengine.dist import get_rank, get_world_size
from torch import Tensor

from ..losses.ap_loss import APLoss
from .flat_targets import FlatAnchorLossMixin, FlatTargets, flat_bbox_loss
from .ranking_rows import SigmoidLogitsMixin, ranking_targets


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


@MODELS.register_module()
class APLossRetinaHead(SigmoidLogitsMixin, FlatAnchorLossMixin, RetinaHead):
    """``RetinaHead`` whose classification loss is one AP-Loss over all levels and images.

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the input feature maps.
        gather_across_ranks (bool): rank the logits of all distributed ranks together (global
            batch) instead of the per-GPU batch of the reference. Defaults to False.
        loss_cls (dict): must build an :class:`APLoss`; the paper's delta 1.0 by default.
        **kwargs: the rest of ``RetinaHead``'s arguments (anchors, box coder, ``loss_bbox``,
            ``train_cfg``, ...), passed on unchanged.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 gather_across_ranks: bool = False,
                 loss_cls: ConfigType = dict(type='APLoss', delta=1.0, loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, loss_cls=loss_cls, **kwargs)
        if not isinstance(self.loss_cls, APLoss):
            raise TypeError('APLossRetinaHead needs loss_cls=dict(type=\'APLoss\', ...), got '
                            f'{type(self.loss_cls).__name__}')
        if not isinstance(gather_across_ranks, bool):
            raise TypeError(f'gather_across_ranks must be a bool, got {gather_across_ranks!r}')
        self.gather_across_ranks = gather_across_ranks

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """One AP-Loss ranking over every (anchor, class) logit of the batch (§5); mmdet's box
        loss over all levels at once.

        Returns:
            dict: ``loss_cls`` (scalar) and ``loss_bbox`` (scalar).
        """
        logits = flat.cls_score
        targets = ranking_targets(flat.labels, flat.label_weights, self.num_classes)
        world_size = 1
        if self.gather_across_ranks:
            logits, targets, world_size = gather_for_ranking(logits, targets)
        loss_cls = self.loss_cls(logits, targets)
        if world_size > 1:
            # Same value, world_size x the gradient: undoes DDP's averaging (module docstring).
            loss_cls = loss_cls + (world_size - 1) * (loss_cls - loss_cls.detach())
        return dict(loss_cls=loss_cls,
                    loss_bbox=flat_bbox_loss(self, flat, flat.avg_factor))

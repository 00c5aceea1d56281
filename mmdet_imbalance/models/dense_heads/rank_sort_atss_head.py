"""RS-ATSS: the ATSS head trained with Rank & Sort Loss (Oksuz et al., ICCV 2021).

docs/methods/rs-loss.md §4. ``ATSSHead`` (GN towers, a ``Scale`` per level, ``ATSSAssigner``) with:

* **no centerness branch**: the sorting objective ranks well-localised positives higher, which is
  what centerness was for (RS §1, "no auxiliary head");
* ``loss_by_feat`` replaced by one RS Loss call on every (anchor, class) logit of all levels and
  images, each positive labelled with the IoU of its current decoded prediction (detached);
* the GIoU box loss of each positive weighted by its detached highest class score, normalised by
  the weights' sum, and rescaled every iteration to ``loss_rank + loss_sort`` (self-balance).

Classification outputs are sigmoid-style whatever ``loss_cls`` says: RS ranks logits and the test
scores are ``sigmoid(logit)``.
"""
from typing import List, Tuple

import torch.nn as nn
from mmdet.models.dense_heads import ATSSHead
from mmdet.registry import MODELS
from mmdet.utils import ConfigType
from torch import Tensor

from ..losses.rank_sort_loss import RankSortLoss, rank_sort_head_losses
from .flat_targets import FlatAnchorLossMixin, FlatTargets
from .ranking_rows import SigmoidLogitsMixin, check_ranking_head, in_graph_of, ranking_rows


@MODELS.register_module()
class RankSortATSSHead(SigmoidLogitsMixin, FlatAnchorLossMixin, ATSSHead):
    """``ATSSHead`` without centerness, trained with RS Loss and self-balanced GIoU.

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the input feature maps.
        reg_decoded_bbox (bool): must be True: IoU labels and the box loss are computed on
            decoded boxes.
        loss_cls (dict): must build a :class:`RankSortLoss`; the paper's delta 0.5 by default.
        **kwargs: the rest of ``ATSSHead``'s arguments (anchors, ``loss_bbox``, a per-box loss on
            decoded boxes such as GIoU, ...), passed on unchanged; ``loss_centerness`` is unused.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 reg_decoded_bbox: bool = True,
                 loss_cls: ConfigType = dict(type='RankSortLoss', delta=0.5, loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, reg_decoded_bbox=reg_decoded_bbox,
                         loss_cls=loss_cls, **kwargs)
        check_ranking_head(self, RankSortLoss)

    def _init_layers(self) -> None:
        """No centerness parameters: ``ATSSHead.forward_single`` still calls ``atss_centerness``,
        now a parameter-free identity whose output ``forward`` drops."""
        super()._init_layers()
        self.atss_centerness = nn.Identity()

    def forward(self, x: Tuple[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Classification scores and box deltas of every level (no centerness)."""
        cls_scores, bbox_preds, _ = super().forward(x)
        return cls_scores, bbox_preds

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """RS Loss over all levels and images at once and the self-balanced box loss.

        Returns:
            dict: ``loss_rank``, ``loss_sort`` and ``loss_bbox`` (value ``loss_rank +
            loss_sort``); all 0, in the graph, for a batch without positives.
        """
        rows = ranking_rows(self, flat)
        loss_rank, loss_sort, loss_bbox = rank_sort_head_losses(
            self.loss_cls, self.loss_bbox, rows.logits, rows.targets, rows.pos_rows,
            rows.pos_labels, rows.pos_pred, rows.pos_target)
        return dict(loss_rank=loss_rank, loss_sort=loss_sort,
                    loss_bbox=in_graph_of(loss_bbox, rows.bbox_pred))

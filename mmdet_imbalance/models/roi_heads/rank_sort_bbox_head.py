"""RS-R-CNN box head: ``Shared2FCBBoxHead`` trained with Rank & Sort Loss (Oksuz et al., ICCV 2021).

docs/methods/rs-loss.md §4. With no sampler (``AllSampler``: every proposal plus the GT boxes),
the classifier is one sigmoid logit per class, no background logit (``RankSortLoss`` tells
``BBoxHead`` so through ``custom_cls_channels``), and ``loss`` is replaced by one RS Loss call on
every (RoI, class) logit of the minibatch, each positive labelled with the IoU of its current
class-specific decoded box (detached), plus the score-weighted GIoU box loss self-balanced to
``loss_rank + loss_sort``.
"""
from typing import Optional

import torch
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import ConfigType
from torch import Tensor

from ..dense_heads.ranking_rows import check_ranking_head, in_graph_of, ranking_targets
from ..losses.rank_sort_loss import RankSortLoss, rank_sort_head_losses


@MODELS.register_module()
class RankSortBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` with a sigmoid classifier trained by RS Loss (module docstring).

    Args:
        fc_out_channels (int): width of the two shared fully connected layers.
        reg_decoded_bbox (bool): must be True: IoU labels and the box loss are computed on
            decoded boxes.
        loss_cls (dict): must build a :class:`RankSortLoss`; the paper's delta 0.5 by default.
        loss_bbox (dict): a per-box loss on decoded boxes; the reference's GIoU by default.
        **kwargs: the rest of ``Shared2FCBBoxHead``'s arguments (``num_classes``, box coder,
            ``roi_feat_size``, ...), passed on unchanged.
    """

    def __init__(self,
                 fc_out_channels: int = 1024,
                 reg_decoded_bbox: bool = True,
                 loss_cls: ConfigType = dict(type='RankSortLoss', delta=0.5, loss_weight=1.0),
                 loss_bbox: ConfigType = dict(type='GIoULoss', loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(fc_out_channels, reg_decoded_bbox=reg_decoded_bbox, loss_cls=loss_cls,
                         loss_bbox=loss_bbox, **kwargs)
        check_ranking_head(self, RankSortLoss)

    def loss(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor, labels: Tensor,
             label_weights: Tensor, bbox_targets: Tensor, bbox_weights: Tensor,
             reduction_override: Optional[str] = None) -> dict:
        """RS Loss over all RoIs and classes of the minibatch and the self-balanced box loss.

        Returns:
            dict: ``loss_rank``, ``loss_sort`` and ``loss_bbox`` (value ``loss_rank +
            loss_sort``); all 0, in the graph, for a batch without positive RoIs.
        """
        if reduction_override is not None:
            raise ValueError('RankSortBBoxHead ranks the whole minibatch; per-RoI losses '
                             f'(reduction_override={reduction_override!r}) are not defined')
        targets = ranking_targets(labels, label_weights, self.num_classes)
        pos_rows = ((label_weights > 0) & (labels < self.num_classes)).nonzero().squeeze(1)
        pos_labels = labels.index_select(0, pos_rows)
        deltas = bbox_pred.index_select(0, pos_rows)
        if not self.reg_class_agnostic:
            # Class-specific regression: the deltas of each positive's GT class.
            deltas = deltas.view(pos_rows.numel(), self.num_classes, self.bbox_coder.encode_size)[
                torch.arange(pos_rows.numel(), device=deltas.device), pos_labels]
        pos_pred = get_box_tensor(self.bbox_coder.decode(rois.index_select(0, pos_rows)[:, 1:],
                                                         deltas))
        loss_rank, loss_sort, loss_bbox = rank_sort_head_losses(
            self.loss_cls, self.loss_bbox, cls_score.float(), targets, pos_rows, pos_labels,
            pos_pred, bbox_targets.index_select(0, pos_rows).float(), norm_eps=1e-10)
        return dict(loss_rank=loss_rank, loss_sort=loss_sort,
                    loss_bbox=in_graph_of(loss_bbox, bbox_pred))

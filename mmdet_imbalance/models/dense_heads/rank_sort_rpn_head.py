"""RS-RPN: the RPN of RS-R-CNN, trained with Rank & Sort Loss (Oksuz et al., ICCV 2021).

docs/methods/rs-loss.md §4. ``RPNHead`` with ``loss_by_feat`` replaced: no sampler (the row config
sets ``train_cfg.rpn.sampler=None``, mmdet's ``PseudoSampler``), one RS Loss call on the objectness
logits of every anchor of the minibatch, each positive labelled with the IoU of its current decoded
proposal, and the score-weighted GIoU box loss self-balanced to ``loss_rank + loss_sort``. The
three losses are multiplied by ``head_weight`` (0.2 in the reference), which scales the RPN's
update against the RoI head's.
"""
from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS

from ..losses.checks import positive_number
from ..losses.rank_sort_loss import RankSortLoss, rank_sort_head_losses
from .flat_targets import FlatAnchorLossMixin, FlatTargets
from .ranking_rows import SigmoidLogitsMixin, check_ranking_head, in_graph_of, ranking_rows


@MODELS.register_module()
class RankSortRPNHead(SigmoidLogitsMixin, FlatAnchorLossMixin, RPNHead):
    """``RPNHead`` trained with RS Loss on all anchors and a self-balanced GIoU loss.

    Args:
        in_channels (int): channels of the input feature maps.
        head_weight (float): factor of all three RPN losses. Reference: 0.2.
        **kwargs: ``RPNHead``'s; ``loss_cls`` must build a :class:`RankSortLoss`, ``loss_bbox``
            a per-box loss on decoded boxes (GIoU, ``reg_decoded_bbox=True``).
    """

    def __init__(self, in_channels: int, head_weight: float = 0.2, **kwargs) -> None:
        super().__init__(in_channels, **kwargs)
        check_ranking_head(self, RankSortLoss)
        self.head_weight = positive_number('head_weight', head_weight)

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """RS Loss over all anchors of all levels and images, and the self-balanced box loss.

        Returns:
            dict: ``loss_rpn_rank``, ``loss_rpn_sort`` and ``loss_rpn_bbox``, each times
            ``head_weight``; all 0, in the graph, for a batch without positives.
        """
        rows = ranking_rows(self, flat)
        losses = rank_sort_head_losses(self.loss_cls, self.loss_bbox, rows.logits, rows.targets,
                                       rows.pos_rows, rows.pos_labels, rows.pos_pred,
                                       rows.pos_target, norm_eps=1e-10)
        loss_rank, loss_sort, loss_bbox = (self.head_weight * loss for loss in losses)
        return dict(loss_rpn_rank=loss_rank, loss_rpn_sort=loss_sort,
                    loss_rpn_bbox=in_graph_of(loss_bbox, rows.bbox_pred))

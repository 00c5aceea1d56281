"""RetinaNet head trained with aLRP Loss and self-balance (Oksuz et al., NeurIPS 2020).

docs/methods/alrp-loss.md §4. ``RetinaHead`` with ``loss_by_feat`` replaced:

* one :class:`ALRPLoss` call on every (anchor, class) logit of all levels and images, with the
  {1, 0, -1} targets of ``ranking_targets`` (ignored: the 0.4-0.5 IoU band and invalid anchors);
* localisation error ``E_i`` of each positive = ``loss_bbox`` (GIoU) of its decoded box, per
  positive; LRP's ``(1 - IoU) / (1 - tau)`` normaliser with GIoU's range [0, 2] and tau = 0.5 is 1;
* total ``L_cls + SB * L_loc``: the self-balance weight SB starts at ``sb_init`` (50) and, at the
  end of every period, becomes ``(mean L_cls + mean L_loc) / mean L_loc`` over the period's
  iterations (aLRP Sec. 4.2). The reference hard-codes the period (3665 iterations, one COCO
  epoch at batch 32); here it is one epoch of the actual dataloader, set before training by
  :class:`~mmdet_imbalance.engine.ALRPSelfBalanceHook`, or an explicit ``sb_period``. SB and the
  running sums are buffers, so they survive a resume; the update is tensor arithmetic (no host
  sync). Each process keeps its own SB, as the reference.

Classification outputs are sigmoid-style (``num_classes`` per anchor) whatever ``loss_cls`` says:
aLRP ranks logits and the scores are ``sigmoid(logit)`` at test time.
"""
import logging
from numbers import Integral
from typing import Optional

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.utils import ConfigType
from mmengine.logging import print_log
from torch import Tensor

from ..losses.alrp_loss import ALRPLoss
from ..losses.checks import positive_number
from .flat_targets import FlatAnchorLossMixin, FlatTargets
from .ranking_rows import SigmoidLogitsMixin, check_ranking_head, in_graph_of, ranking_rows


@MODELS.register_module()
class ALRPLossRetinaHead(SigmoidLogitsMixin, FlatAnchorLossMixin, RetinaHead):
    """``RetinaHead`` trained with aLRP Loss over all levels and images, with self-balance.

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the input feature maps.
        sb_init (float): initial self-balance weight of the localisation component. Paper and
            code: 50 (aLRP Table 4: the effect of this value is small).
        sb_period (int, optional): iterations per self-balance update. None (default): one epoch
            of the training dataloader, set by
            :class:`~mmdet_imbalance.engine.ALRPSelfBalanceHook`.
        reg_decoded_bbox (bool): must be True: the localisation errors are GIoU losses of
            decoded boxes.
        loss_cls (dict): must build an :class:`ALRPLoss`; the paper's delta 1.0 by default.
        loss_bbox (dict): a per-box loss on decoded boxes; the paper's GIoU by default.
        **kwargs: the rest of ``RetinaHead``'s arguments (anchors, box coder, ``train_cfg``,
            ...), passed on unchanged.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 sb_init: float = 50.0,
                 sb_period: Optional[int] = None,
                 reg_decoded_bbox: bool = True,
                 loss_cls: ConfigType = dict(type='ALRPLoss', delta=1.0, loss_weight=1.0),
                 loss_bbox: ConfigType = dict(type='GIoULoss', loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, reg_decoded_bbox=reg_decoded_bbox,
                         loss_cls=loss_cls, loss_bbox=loss_bbox, **kwargs)
        check_ranking_head(self, ALRPLoss)
        sb_init = positive_number('sb_init', sb_init)
        self.sb_period = None
        if sb_period is not None:
            self.set_self_balance_period(sb_period)
        self._warned_period = False
        self.register_buffer('sb_weight', torch.tensor(sb_init))
        # Sums of L_cls and L_loc over the current period, and its iteration count.
        self.register_buffer('sb_sums', torch.zeros(3))

    def set_self_balance_period(self, period: int) -> None:
        """Iterations between self-balance updates (the hook passes one epoch)."""
        if isinstance(period, bool) or not isinstance(period, Integral) or period < 1:
            raise ValueError(f'the self-balance period must be a positive int, got {period!r}')
        self.sb_period = int(period)

    def _self_balance(self, cls_loss: Tensor, loc_loss: Tensor) -> Tensor:
        """The current SB weight; records this iteration and updates SB at the period's end."""
        weight = self.sb_weight.clone()
        if self.sb_period is None:
            if not self._warned_period:
                print_log('ALRPLossRetinaHead: no self-balance period (add ALRPSelfBalanceHook '
                          'or set sb_period); SB stays at its initial value', 'current',
                          level=logging.WARNING)
                self._warned_period = True
            return weight
        self.sb_sums += torch.stack([cls_loss.detach(), loc_loss.detach(),
                                     cls_loss.new_ones(())]).to(self.sb_sums)
        cls_sum, loc_sum, count = self.sb_sums.unbind()
        update = (count >= self.sb_period) & (loc_sum > 0)
        self.sb_weight.copy_(torch.where(update, (cls_sum + loc_sum) / loc_sum, self.sb_weight))
        self.sb_sums.mul_(~(count >= self.sb_period))
        return weight

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """aLRP over all levels and images at once (module docstring).

        Returns:
            dict: ``loss_cls`` (aLRP classification component) and ``loss_bbox`` (SB times the
            localisation component); both 0, in the graph, for a batch without positives.
        """
        rows = ranking_rows(self, flat)
        loc_errors = self.loss_bbox(rows.pos_pred, rows.pos_target, reduction_override='none')
        cls_loss, loc_loss = self.loss_cls(rows.logits.reshape(-1), rows.targets.reshape(-1),
                                           loc_errors)
        if rows.pos_rows.numel() == 0:
            return dict(loss_cls=cls_loss, loss_bbox=in_graph_of(loc_loss, rows.bbox_pred))
        return dict(loss_cls=cls_loss, loss_bbox=self._self_balance(cls_loss, loc_loss) * loc_loss)

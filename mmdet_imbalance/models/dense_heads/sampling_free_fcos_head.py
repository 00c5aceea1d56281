"""Sampling-Free FCOS head (the 2021 recipe with the Dec-2019 guided loss).

FCOS is not in Table 1; Sampling-Free's 2021 code added it (docs/methods/sampling-free.md §6).
This head follows that recipe where it fixes a setting and the Dec-2019 release elsewhere:

* Focal loss is replaced by plain sigmoid cross-entropy over all points, divided by ``N_pos``
  (``loss_cls=CrossEntropyLoss(use_sigmoid=True)``; ``FCOSHead.loss_by_feat`` already flattens all
  levels and images, so the totals need no re-implementation).
* The classification bias starts at ``pi = 1e-4`` (hand-set in the 2021 code; ``'auto'`` also
  works and uses the FCOS-point statistics); the test threshold is 1e-3 (``test_cfg.score_thr``
  in the row configs, left to the config).

Decision: the guided loss is the **Dec-2019 form** ``L_cls <- s * sg(L_reg / L_cls) * L_cls``
with s = 1 and ``L_reg`` = FCOS's box loss (IoU loss weighted by the centerness targets and
normalised by their sum, mmdet's stock normalisation). The 2021 code's learnable
``delta^2 ... - log delta^2`` (May 2021) and frozen ratio with uncertainty weighting (Sep 2021) are
not reproduced, so that every Sampling-Free row uses one mechanism. The centerness loss is left
out of the ratio (the Sep-2021 form averages it in) and stays a separate, unscaled term. With no
positive point in the batch, the box, centerness and guided classification losses are all 0.
"""
from typing import Dict, List

from mmdet.models.dense_heads import FCOSHead
from mmdet.registry import MODELS
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from ..losses.checks import positive_number
from ..losses.guided_loss import guided_loss
from .sampling_free_base import SamplingFreePriorMixin


@MODELS.register_module()
class SamplingFreeFCOSHead(SamplingFreePriorMixin, FCOSHead):
    """``FCOSHead`` with the Sampling-Free prior and guided classification loss (module docstring).

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the input feature maps.
        prior_prob (float | str): initial score ``pi`` (2021 recipe: 1e-4) or ``'auto'``.
        guided_scale (float): ``s`` of the guided loss.
        loss_cls (dict): plain sigmoid cross-entropy by default.
        **kwargs: the rest of ``FCOSHead``'s arguments.
    """

    prior_conv_name = 'conv_cls'
    imbalance_stage = 'bbox_head'

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 prior_prob=1e-4,
                 guided_scale: float = 1.0,
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, loss_cls=loss_cls, **kwargs)
        if not self.use_sigmoid_cls:
            raise ValueError('SamplingFreeFCOSHead needs sigmoid class scores: set '
                             "loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True)")
        self._init_prior(prior_prob)
        self.guided_scale = positive_number('guided_scale', guided_scale)

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     centernesses: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """``FCOSHead`` losses with ``loss_cls`` replaced by its guided form.

        Returns:
            dict: ``loss_cls`` (value ``guided_scale * loss_bbox``), ``loss_bbox`` and
            ``loss_centerness`` as ``FCOSHead``.
        """
        self.require_prior()
        cls_scores = [score.float() for score in cls_scores]
        losses = super().loss_by_feat(cls_scores, bbox_preds, centernesses, batch_gt_instances,
                                      batch_img_metas, batch_gt_instances_ignore)
        losses['loss_cls'] = guided_loss(losses['loss_cls'], losses['loss_bbox'],
                                         self.guided_scale)
        return losses

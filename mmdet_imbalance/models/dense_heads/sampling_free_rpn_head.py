"""Sampling-Free RPN head (Chen et al., arXiv 1909.04868; Dec-2019 release).

Documented in docs/methods/sampling-free.md §5.

The RPN half of Sampling-Free Faster R-CNN:

* **No sampler**: the objectness loss covers every valid anchor of every image (mmdet builds a
  ``PseudoSampler`` when ``train_cfg.rpn.sampler=None``; a real sampler is rejected). Anchors that
  cross the image border are ignored: the row configs set ``allowed_border=0``, the reference's
  ``STRADDLE_THRESH=0`` (§5).
* **Optimal bias initialisation** of ``rpn_cls`` (COCO: 1.70879e-4; ``'auto'`` from the training
  set's RPN-anchor statistics, C = 1).
* **Guided loss** with s = 1 on the totals over all levels and images:
  ``L_obj = sg(L_rpn_box / L_obj) * L_obj``.
* **Regression** as the reference: ``0.5 * mean over positives and 4 coordinates`` of smooth-L1
  (beta 1/9) on deltas with unit stds. The 0.5 is the default ``loss_bbox.loss_weight``; it is
  part of ``L_reg`` and therefore of the guided scale (§3).

Proposal generation (train and test) is ``RPNHead``'s, unchanged.
"""
from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS

from .flat_targets import FlatTargets
from .sampling_free_base import GuidedAnchorLossMixin, SamplingFreePriorMixin


@MODELS.register_module()
class SamplingFreeRPNHead(SamplingFreePriorMixin, GuidedAnchorLossMixin, RPNHead):
    """``RPNHead`` trained the Sampling-Free way (module docstring; §5).

    Args:
        in_channels (int): channels of the input feature maps.
        num_classes (int): must be 1 (``RPNHead``).
        prior_prob (float | str): objectness prior ``pi`` or ``'auto'`` (see
            :mod:`.sampling_free_base`). COCO: 1.70879e-4.
        guided_scale (float): ``s`` of the guided loss; 1 for the RPN.
        loss_bbox (dict): the regression loss; the default is the reference's
            ``0.5 * smooth-L1(beta=1/9)``.
        **kwargs: the rest of ``RPNHead``'s arguments.
    """

    prior_conv_name = 'rpn_cls'
    imbalance_stage = 'rpn_head'

    def __init__(self,
                 in_channels: int,
                 num_classes: int = 1,
                 prior_prob='auto',
                 guided_scale: float = 1.0,
                 loss_bbox: dict = dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=0.5),
                 **kwargs) -> None:
        super().__init__(in_channels, num_classes=num_classes, loss_bbox=loss_bbox, **kwargs)
        self._init_prior(prior_prob)
        self._init_guided(guided_scale)

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """Guided objectness CE over all valid anchors and the reference box loss (§5).

        Returns:
            dict: ``loss_rpn_cls`` (guided, value ``guided_scale * loss_rpn_bbox``) and
            ``loss_rpn_bbox``; both 0 for a batch without positive anchors.
        """
        self.require_prior()
        loss_cls, loss_bbox = self.guided_anchor_losses(flat)
        return dict(loss_rpn_cls=loss_cls, loss_rpn_bbox=loss_bbox)

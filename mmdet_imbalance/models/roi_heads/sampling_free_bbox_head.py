"""Sampling-Free Fast R-CNN box head (Chen et al., arXiv 1909.04868; Dec-2019).

Documented in docs/methods/sampling-free.md §5.

The RoI half of Sampling-Free Faster R-CNN. With ``AllSampler`` (every proposal plus the GT boxes,
:mod:`mmdet_imbalance.models.task_modules.all_sampler`) the head sees about 1000 + GT RoIs per
image, and:

* ``L_cls`` = softmax cross-entropy, mean over all those RoIs (the normaliser cancels anyway);
* ``L_box`` = class-specific smooth-L1 (beta 1, deltas with stds 0.1, 0.1, 0.2, 0.2) averaged over
  positives **and the 4 coordinates** (``/ 4 N_pos``). mmdet's ``BBoxHead.loss`` divides the
  positives' sum by the number of all RoIs instead; this head rescales that value by
  ``N_rois / (4 N_pos)``, which is the reference normalisation up to mmdet's 1e-7 epsilon;
* ``L_cls <- s * sg(L_box / L_cls) * L_cls`` with **s = 2** ("to keep consistency with biased
  sampling", §3), on the totals of the batch (``StandardRoIHead`` calls the loss once on the
  RoIs of all images).

The classifier keeps mmdet's default initialisation (the reference does not apply the prior here)
and the test threshold 0.001 is ``test_cfg.rcnn.score_thr`` in the row configs. With
``reduction_override`` set (OHEM-style samplers ask for per-RoI losses) the stock losses are
returned unchanged, because the guided ratio is only defined on totals.
"""
from typing import Optional

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from torch import Tensor

from ..losses.checks import positive_number
from ..losses.guided_loss import guided_loss


@MODELS.register_module()
class SamplingFreeBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` with the Sampling-Free box normalisation and guided CE (§5).

    Args:
        fc_out_channels (int): width of the two shared fully connected layers.
        guided_scale (float): ``s`` of the guided loss; 2 for the Fast R-CNN head.
        loss_bbox (dict): the regression loss; the default is the reference's smooth-L1 (beta 1).
        **kwargs: the rest of ``Shared2FCBBoxHead``'s arguments (``num_classes``, box coder,
            ``loss_cls``, ...), passed on unchanged.
    """

    def __init__(self,
                 fc_out_channels: int = 1024,
                 guided_scale: float = 2.0,
                 loss_bbox: dict = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
                 **kwargs) -> None:
        guided_scale = positive_number('guided_scale', guided_scale)
        super().__init__(fc_out_channels, loss_bbox=loss_bbox, **kwargs)
        self.guided_scale = guided_scale

    def loss(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor, labels: Tensor,
             label_weights: Tensor, bbox_targets: Tensor, bbox_weights: Tensor,
             reduction_override: Optional[str] = None) -> dict:
        """``BBoxHead.loss`` with ``loss_bbox`` divided by ``4 N_pos`` and ``loss_cls`` guided.

        Returns:
            dict: ``loss_cls`` (value ``guided_scale * loss_bbox``), ``acc`` and ``loss_bbox``;
            ``loss_cls`` and ``loss_bbox`` are 0 when no RoI of the batch is positive.
        """
        losses = super().loss(cls_score, bbox_pred, rois, labels, label_weights, bbox_targets,
                              bbox_weights, reduction_override=reduction_override)
        if reduction_override is not None or 'loss_cls' not in losses \
                or 'loss_bbox' not in losses:
            return losses
        num_pos = int(((labels >= 0) & (labels < self.num_classes)).sum())
        if num_pos > 0:
            losses['loss_bbox'] = losses['loss_bbox'] * (
                bbox_targets.size(0) / (num_pos * bbox_targets.size(-1)))
        losses['loss_cls'] = guided_loss(losses['loss_cls'], losses['loss_bbox'],
                                         self.guided_scale)
        return losses

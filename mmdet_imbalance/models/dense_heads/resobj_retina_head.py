"""Residual Objectness (ResObj) RetinaNet head.

Chen et al., "Residual Objectness for Imbalance Reduction", arXiv 1908.09075 / Pattern Recognition
130 (2022); documented in docs/methods/resobj.md, which follows the released detectron2 code
(``chenjoya/resobj`` @ 15da804, ``ResObjRetinaNetHead``). Losses live in
:mod:`mmdet_imbalance.models.losses.resobj_loss`.

Architecture (per FPN level, shared across levels, §2). On the classification tower output
``c``, a chain of conv3x3+ReLU blocks ``f_1 = conv(c)``, ``f_{s+1} = conv(f_s)`` each feeds a
conv3x3 scoring ``A`` objectness logits (one per anchor); the objectness logit is their **sum in
logit space**, ``o = sum_s score_s(f_s)``. Class logits ``z`` come from the stock ``retina_cls``
and boxes from the stock regression tower.

Decisions:

* **``num_stages`` = number of residual stages after the first objectness estimator.** The default
  1 is the released code (``obj_subnet``/``obj_score`` + ``res_subnet``/``res_score``). The 2019
  preprint cited by the review describes "multiple cascaded objectness-related modules with
  residual connections" without a depth or a per-stage supervision that we could verify
  (resobj.md §1); ``num_stages > 1`` extends the released chain with more residual stages,
  all added into the same logit and supervised only through the sum, which is our reading, not a
  reproduction of the preprint. ``num_stages=0`` is objectness without residual.
* **Initialisation.** Every conv N(0, 0.01), bias 0 (mmdet's RetinaHead ``init_cfg``, as
  §3 states). Each objectness score conv gets the bias of prior ``obj_prior_prob=0.001``, so the
  initial objectness logit is ``(num_stages + 1) * logit(0.001)`` (about -13.8, probability about
  1e-6, for the default). The class logits get prior ``1/K`` (bias ``-log(K-1)``) as in the
  released code. The released code leaves its two hidden objectness convs at PyTorch's default
  init (weight std 0.012 instead of 0.01, bias U(+-1/48) instead of 0); we do not copy that
  detail: it is immaterial next to the prior biases and keeps the initial objectness exact.
* **Class branch is always per-class sigmoid**, whatever ``loss_cls`` says (§4), and
  ``loss_cls`` must be a :class:`ResObjLoss`.
* **Losses on the concatenation of all levels and images**, with one call of
  ``ResObjLoss.normalizers`` per iteration (the released code's three EMA updates, one per term:
  ``loss_obj``, ``loss_cls``, ``loss_bbox``); the box loss is the configured ``loss_bbox`` (L1 in
  the released code and in mmdet's RetinaNet) normalised by the third value (§4).
* **Degenerate ground truth** (zero width or height) is dropped before anchor assignment
  (:func:`drop_degenerate_boxes`), as COCO loading and detectron2 do.
* **Inference fuses before filtering.** The head returns ``(cls_scores, bbox_preds,
  obj_scores)``. :meth:`predict_by_feat` replaces each class logit by the logit of the fused score,
  ``logit(sigma(o) * sigma(z)) = -log(e^-o + e^-z + e^-(o+z))`` (:func:`fuse_objectness_logits`),
  and hands it to mmdet's stock ``predict_by_feat``. mmdet's sigmoid then gives exactly
  ``sigma(o) * sigma(z)`` (§5), so ``nms_pre`` top-k, ``score_thr`` and NMS of the stock
  ``test_cfg`` all act on the fused score. (mmdet's ``score_factors`` path would multiply only
  after the top-k and threshold, which is not what the released code does.)
* **``score_mode`` takes the fused score apart, for diagnosis.** ``'fused'`` (default) is the
  released inference. ``'class'`` scores with ``sigma(z_k)`` alone and ``'objectness'`` with
  ``sigma(o)``, given to the anchor's top class only, so that each factor can be evaluated on
  its own from the same checkpoint (resobj.md §10).
"""
from typing import List, Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import ConfigType, InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.model.weight_init import bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor

from ..losses.checks import one_of, probability
from ..losses.resobj_loss import ResObjLoss, positive_mask
from .flat_targets import anchor_targets, flat_bbox_loss, levels_to_rows


def fuse_objectness_logits(cls_logits: Tensor, obj_logits: Tensor) -> Tensor:
    """The logit of ``sigmoid(obj) * sigmoid(cls)``, computed without overflow (resobj.md §5).

    ``p = s(o) s(z)`` gives ``p / (1 - p) = 1 / (e^-o + e^-z + e^-(o+z))``, so
    ``logit(p) = -logsumexp(-o, -z, -(o+z))``, which is finite for any finite ``o`` and ``z``
    (``o = z = -100`` gives -200, ``o = z = 100`` gives ``100 - log 2``). The arguments
    broadcast against each other.
    """
    neg_o, neg_z = -obj_logits, -cls_logits
    return -torch.logaddexp(torch.logaddexp(neg_o, neg_z), neg_o + neg_z)


def drop_degenerate_boxes(gt_instances: InstanceData) -> InstanceData:
    """Ground truth without its zero-width or zero-height boxes.

    Such a box overlaps no anchor, so the low-quality matching (min_pos_iou 0) would make every
    anchor at IoU 0 a positive of it, and its log(0) size target is infinite. COCO loading (w or
    h < 1) and detectron2 (``filter_empty_instances``) drop these boxes before training; the head
    does the same so that a batch that reaches it with one still trains.
    """
    boxes = get_box_tensor(gt_instances.bboxes)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return gt_instances[keep]


#: The class prior that stands in for ``1 / K`` when K = 1 (the one-class ``trees`` benchmark):
#: 1/1 would be an infinite bias; at 0.99 (bias 4.6) the objectness prior alone sets the initial
#: score sigma(o) sigma(z), as 1/K intends (docs/methods/resobj.md).
SINGLE_CLASS_PRIOR = 0.99

#: Test-time scores of :class:`ResObjRetinaHead` (module docstring, resobj.md §10).
SCORE_MODES = ('fused', 'objectness', 'class')


def objectness_of_top_class(cls_logits: Tensor, obj_logits: Tensor) -> Tensor:
    """Class-shaped logits holding ``o`` at each anchor's top class, and a zero score elsewhere.

    ``cls_logits`` has the classes in dimension 2 and ``obj_logits`` size 1 there. The other
    classes get the dtype's lowest value, whose sigmoid is 0, so any ``score_thr >= 0`` drops them.
    """
    top = cls_logits.argmax(dim=2, keepdim=True)
    out = torch.full_like(cls_logits, torch.finfo(cls_logits.dtype).min)
    return out.scatter(2, top, obj_logits.expand_as(top).to(cls_logits.dtype))


@MODELS.register_module()
class ResObjRetinaHead(RetinaHead):
    """RetinaHead with residual objectness (docs/methods/resobj.md).

    Args:
        num_classes (int): number of foreground classes K.
        in_channels (int): channels of the FPN features.
        num_stages (int): residual objectness stages after the first objectness estimator
            (1 = the released code; see the module docstring for > 1 and 0).
        obj_prior_prob (float): prior probability that sets the bias of every objectness score conv
            (0.001 in the released config).
        cls_prior_prob (float, optional): prior of the class logits; None means ``1 / K`` as in
            the released code, and :data:`SINGLE_CLASS_PRIOR` when K = 1.
        loss_cls (dict): config of a :class:`ResObjLoss` (objectness + positive-only class loss).
        loss_bbox (dict): box loss config; L1 = the released code's smooth-L1 with beta 0.
        score_mode (str): test score, one of :data:`SCORE_MODES`: ``'fused'`` (the released
            ``sigma(o) * sigma(z)``), or one factor alone for diagnosis.
        **kwargs: the remaining :class:`RetinaHead` / ``AnchorHead`` arguments.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_stages: int = 1,
                 obj_prior_prob: float = 0.001,
                 cls_prior_prob: Optional[float] = None,
                 loss_cls: ConfigType = dict(
                     type='ResObjLoss',
                     obj_weight=1 / 20,
                     cls_weight=1 / 10,
                     ema_momentum=0.9,
                     ema_init=100.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=1.0),
                 score_mode: str = 'fused',
                 **kwargs) -> None:
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) or num_stages < 0:
            raise ValueError(f'num_stages must be a non-negative int, got {num_stages!r}')
        one_of('score_mode', score_mode, SCORE_MODES)
        self.score_mode = score_mode
        if isinstance(num_classes, int) and num_classes < 2 and cls_prior_prob is None:
            cls_prior_prob = SINGLE_CLASS_PRIOR
        self.num_stages = num_stages
        self.obj_prior_prob = probability('obj_prior_prob', obj_prior_prob)
        self.cls_prior_prob = (None if cls_prior_prob is None else
                               probability('cls_prior_prob', cls_prior_prob))
        super().__init__(num_classes, in_channels, loss_cls=loss_cls, loss_bbox=loss_bbox, **kwargs)
        if not isinstance(self.loss_cls, ResObjLoss):
            raise TypeError(f'loss_cls of ResObjRetinaHead must be a ResObjLoss config, got '
                            f'{type(self.loss_cls).__name__}')

    def _init_layers(self) -> None:
        """Stock RetinaNet towers plus the objectness chain on the classification tower."""
        # The class branch of ResObj is per-class sigmoid by construction (§4); AnchorHead would
        # otherwise derive a softmax layout from loss_cls, which has no use_sigmoid key here.
        self.use_sigmoid_cls = True
        self.cls_out_channels = self.num_classes
        super()._init_layers()
        channels = self.feat_channels if self.stacked_convs > 0 else self.in_channels
        self.obj_convs = nn.ModuleList()
        self.retina_obj = nn.ModuleList()
        for _ in range(self.num_stages + 1):
            self.obj_convs.append(
                ConvModule(channels, self.feat_channels, 3, stride=1, padding=1,
                           conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg))
            self.retina_obj.append(
                nn.Conv2d(self.feat_channels, self.num_base_priors, 3, padding=1))
            channels = self.feat_channels

    def init_weights(self) -> None:
        """mmdet's init (N(0, 0.01) convs), then the prior biases of resobj.md §3."""
        already_initialised = self.is_init
        super().init_weights()
        if already_initialised:
            return
        cls_prior = (1.0 / self.num_classes if self.cls_prior_prob is None else
                     self.cls_prior_prob)
        nn.init.constant_(self.retina_cls.bias, bias_init_with_prob(cls_prior))
        for score in self.retina_obj:
            nn.init.constant_(score.bias, bias_init_with_prob(self.obj_prior_prob))

    def forward_single(self, x: Tensor):
        """One FPN level.

        Returns:
            tuple: ``cls_score`` (N, A*K, H, W), ``bbox_pred`` (N, A*4, H, W) and ``obj_score``
            (N, A, H, W), the objectness logit summed over all stages.
        """
        cls_feat = x
        for conv in self.cls_convs:
            cls_feat = conv(cls_feat)
        reg_feat = x
        for conv in self.reg_convs:
            reg_feat = conv(reg_feat)
        obj_feat = cls_feat
        obj_score = None
        for conv, score in zip(self.obj_convs, self.retina_obj):
            obj_feat = conv(obj_feat)
            stage_logit = score(obj_feat)
            # Residual connection in logit space (resobj.md §2): each stage adds a correction.
            obj_score = stage_logit if obj_score is None else obj_score + stage_logit
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat), obj_score

    def _check_outputs(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                       obj_scores: List[Tensor]) -> None:
        num_levels = self.prior_generator.num_levels
        for name, value in (('cls_scores', cls_scores), ('bbox_preds', bbox_preds),
                            ('obj_scores', obj_scores)):
            if len(value) != num_levels:
                raise ValueError(f'{name} must have one tensor per level ({num_levels}), '
                                 f'got {len(value)}')
        for level, (cls_score, obj_score) in enumerate(zip(cls_scores, obj_scores)):
            expected = (cls_score.size(0), self.num_base_priors) + tuple(cls_score.shape[-2:])
            if tuple(obj_score.shape) != expected:
                raise ValueError(f'obj_scores[{level}] must have shape {expected}, '
                                 f'got {tuple(obj_score.shape)}')

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     obj_scores: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """ResObj losses over all levels and images (resobj.md §4).

        Returns:
            dict: ``loss_cls`` (positive-only class BCE), ``loss_obj`` (objectness BCE over valid
            anchors) and ``loss_bbox``, each a scalar.
        """
        self._check_outputs(cls_scores, bbox_preds, obj_scores)
        batch_gt_instances = [drop_degenerate_boxes(gt) for gt in batch_gt_instances]
        flat = anchor_targets(self, cls_scores, bbox_preds, batch_gt_instances, batch_img_metas,
                              batch_gt_instances_ignore)
        obj_score = levels_to_rows(obj_scores, 1).reshape(-1)
        num_pos = positive_mask(flat.labels, flat.label_weights, self.num_classes).sum()
        obj_norm, cls_norm, box_norm = self.loss_cls.normalizers(num_pos)
        loss_cls, loss_obj = self.loss_cls(flat.cls_score, obj_score, flat.labels,
                                           flat.label_weights, obj_avg_factor=obj_norm,
                                           cls_avg_factor=cls_norm)
        loss_bbox = flat_bbox_loss(self, flat, avg_factor=box_norm)
        return dict(loss_cls=loss_cls, loss_obj=loss_obj, loss_bbox=loss_bbox)

    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        obj_scores: List[Tensor],
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: Optional[ConfigDict] = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Boxes scored by ``sigmoid(obj) * sigmoid(cls)``, through mmdet's stock post-processing.

        The fused score is passed as a logit (:func:`fuse_objectness_logits`), so the stock
        ``nms_pre`` top-k, ``score_thr`` and NMS act on it (resobj.md §5). ``score_mode`` can
        replace it by one of its factors.
        """
        self._check_outputs(cls_scores, bbox_preds, obj_scores)
        test_logits = []
        for cls_score, obj_score in zip(cls_scores, obj_scores):
            num_imgs, _, height, width = cls_score.shape
            # Channel a*K + k of the class map belongs to anchor a, like channel a of obj_score.
            per_class = cls_score.reshape(num_imgs, self.num_base_priors, self.cls_out_channels,
                                          height, width)
            if self.score_mode == 'fused':
                logits = fuse_objectness_logits(per_class, obj_score.unsqueeze(2))
            elif self.score_mode == 'objectness':
                logits = objectness_of_top_class(per_class, obj_score.unsqueeze(2))
            else:
                logits = per_class
            test_logits.append(logits.reshape_as(cls_score))
        return super().predict_by_feat(
            test_logits, bbox_preds, score_factors=None, batch_img_metas=batch_img_metas,
            cfg=cfg, rescale=rescale, with_nms=with_nms)

"""Sampling-Free RetinaNet head (Chen et al., arXiv 1909.04868; Dec-2019 release).

Sampling-Free replaces Focal Loss by three ingredients (docs/methods/sampling-free.md §2-§4,
recipe §5):

1. **Optimal bias initialisation**: ``retina_cls`` starts at ``pi* = N_fg / (C (N_fg + N_bg))``
   (COCO: 1.11352e-5); ``prior_prob='auto'`` takes it from the training set's statistics
   (:mod:`.sampling_free_base`).
2. **Guided loss**: plain sigmoid cross-entropy over every valid (anchor, class) entry, ignored
   anchors excluded, no alpha and no gamma, scaled to ``sg(L_reg / L_cls) * L_cls`` on the totals
   over all levels and images (s = 1).
3. **Threshold = prior**: the pre-NMS candidate filter is ``score > pi`` (``ImbalancedDecider``),
   because un-down-weighted negatives push all scores down and 0.05 loses recall.

Decisions:

* **Regression matches maskrcnn-benchmark's RetinaNet, not mmdet's.** The guided loss makes the
  value of ``L_reg`` set the scale of the classification gradient (§3), so the
  defaults (and the row configs) use the reference parameterisation: ``DeltaXYWHBBoxCoder`` with
  stds (0.1, 0.1, 0.2, 0.2) (maskrcnn-benchmark's ``RetinaNetModule`` builds
  ``BoxCoder(weights=(10, 10, 5, 5))``), ``SmoothL1Loss(beta=0.11)``, divided by ``4 N_pos``.
  mmdet's RetinaNet uses stds 1 and L1 summed over coordinates / N_pos: about ``4 mean|d|``
  for errors ``d`` that the reference scores at about ``5-10 mean|d|`` (deltas scaled by 10 for
  the centre and 5 for the size).
* **Threshold modes** (``score_thr_mode``). The head owns the threshold (:meth:`score_thr`): it
  applies it in ``predict_by_feat`` and shows it in ``test_cfg.score_thr`` once it is known, so a
  configured ``score_thr`` does not matter outside ``'config'`` mode. ``'prior'`` (default, the
  Dec-2019 code) is the resolved ``pi``; ``'class_prior'`` is the paper's early
  *class-adaptive threshold*, unverified (§4): class ``c`` keeps candidates with
  ``score > pi_c = N_fg,c / (N_fg + N_bg)``, the per-class optimal prior, which is proportional to
  the class's share of foreground anchors and averages to ``pi`` over classes (the reference's
  commented-out code used instance counts; anchor counts are what ``pi`` itself is made of).
  mmdet filters with one scalar, so this mode filters at ``min_c pi_c`` before NMS and applies the
  per-class thresholds to the final detections; class-wise NMS makes that equal to filtering
  first, except that ``nms_pre`` / ``max_per_img`` truncation sees the extra candidates.
  ``'config'`` leaves ``test_cfg.score_thr`` as configured.
"""
import copy
from typing import List, Optional

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.utils import InstanceList
from mmengine.config import ConfigDict
from torch import Tensor

from ..losses.checks import one_of
from .flat_targets import FlatTargets
from .sampling_free_base import GuidedAnchorLossMixin, SamplingFreePriorMixin

SCORE_THR_MODES = ('prior', 'class_prior', 'config')


@MODELS.register_module()
class SamplingFreeRetinaHead(SamplingFreePriorMixin, GuidedAnchorLossMixin, RetinaHead):
    """``RetinaHead`` trained and tested the Sampling-Free way (module docstring; §5).

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the input feature maps.
        prior_prob (float | str): ``pi`` of the bias initialisation and of the ``'prior'``
            threshold, or ``'auto'`` for the training set's ``pi*`` (see
            :mod:`.sampling_free_base`). COCO: 1.11352e-5.
        guided_scale (float): ``s`` of the guided loss; 1 for RetinaNet.
        score_thr_mode (str): ``'prior'``, ``'class_prior'`` or ``'config'`` (module docstring).
        bbox_coder, loss_cls, loss_bbox: as ``AnchorHead``; the defaults are the reference's.
        **kwargs: the rest of ``RetinaHead``'s arguments.
    """

    prior_conv_name = 'retina_cls'
    imbalance_stage = 'bbox_head'

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 prior_prob='auto',
                 guided_scale: float = 1.0,
                 score_thr_mode: str = 'prior',
                 bbox_coder: dict = dict(
                     type='DeltaXYWHBBoxCoder',
                     target_means=[0.0, 0.0, 0.0, 0.0],
                     target_stds=[0.1, 0.1, 0.2, 0.2]),
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                 loss_bbox: dict = dict(type='SmoothL1Loss', beta=0.11, loss_weight=1.0),
                 **kwargs) -> None:
        one_of('score_thr_mode', score_thr_mode, SCORE_THR_MODES)
        super().__init__(num_classes, in_channels, bbox_coder=bbox_coder, loss_cls=loss_cls,
                         loss_bbox=loss_bbox, **kwargs)
        if not self.use_sigmoid_cls:
            raise ValueError('SamplingFreeRetinaHead needs sigmoid class scores: set '
                             "loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True)")
        self.score_thr_mode = score_thr_mode
        self.class_score_thrs: Optional[Tensor] = None
        self._init_prior(prior_prob)
        self._init_guided(guided_scale)
        self._show_score_thr()

    @property
    def needs_imbalance_stats(self) -> bool:
        """True while ``'auto'`` or the per-class thresholds still wait for dataset statistics."""
        return self.resolved_prior is None or (self.score_thr_mode == 'class_prior'
                                               and self.class_score_thrs is None)

    def apply_imbalance_stats(self, stats: dict) -> None:
        """Resolve ``'auto'`` and, in ``'class_prior'`` mode, the per-class thresholds.

        Args:
            stats (dict): the ``bbox_head`` stage of the imbalance statistics; uses ``prior``,
                ``counts.fg``, ``counts.bg`` and ``counts.fg_per_class``.
        """
        super().apply_imbalance_stats(stats)
        if self.score_thr_mode == 'class_prior':
            counts = stats['counts']
            per_class = counts['fg_per_class']
            if len(per_class) != self.num_classes:
                raise ValueError(f'fg_per_class has {len(per_class)} entries but the head has '
                                 f'num_classes={self.num_classes}')
            total = counts['fg'] + counts['bg']
            if total <= 0:
                raise ValueError(f'no foreground or background anchor in the statistics: {counts}')
            self.class_score_thrs = torch.tensor(per_class, dtype=torch.float32) / total
        self._show_score_thr()

    def set_prior(self, prior: float) -> None:
        """Fix the prior (bias initialisation and, in ``'prior'`` mode, the threshold)."""
        super().set_prior(prior)
        self._show_score_thr()

    def score_thr(self) -> Optional[float]:
        """The pre-NMS score threshold this head tests with (§4): the resolved prior, the lowest
        per-class prior, or None in ``'config'`` mode (``test_cfg.score_thr`` as configured)."""
        if self.score_thr_mode == 'config':
            return None
        if self.score_thr_mode == 'prior':
            return self.require_prior()
        if self.class_score_thrs is None:
            raise ValueError(
                "SamplingFreeRetinaHead: score_thr_mode='class_prior' needs per-class "
                'foreground counts: run `python tools/imbalance_stats.py <config>` and test '
                "through the runner with custom_hooks=[..., dict(type='SamplingFreePriorHook')]")
        return float(self.class_score_thrs.min())

    def _show_score_thr(self) -> None:
        # The threshold is the head's (score_thr); test_cfg only shows it, once it is known.
        if self.test_cfg is not None and self.score_thr_mode != 'config' \
                and not self.needs_imbalance_stats:
            self.test_cfg['score_thr'] = self.score_thr()

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """Guided sigmoid CE over all valid anchors and per-coordinate smooth-L1 (§5).

        Returns:
            dict: ``loss_cls`` (guided, value ``guided_scale * loss_bbox``) and ``loss_bbox``;
            both 0 for a batch without positive anchors.
        """
        self.require_prior()
        loss_cls, loss_bbox = self.guided_anchor_losses(flat)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)

    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        score_factors: Optional[List[Tensor]] = None,
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: Optional[ConfigDict] = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """``RetinaHead`` inference with the head's score threshold (:meth:`score_thr`)."""
        cfg = copy.deepcopy(self.test_cfg if cfg is None else cfg)
        score_thr = self.score_thr()
        if score_thr is not None:
            cfg['score_thr'] = score_thr
        results = super().predict_by_feat(
            cls_scores, bbox_preds, score_factors=score_factors, batch_img_metas=batch_img_metas,
            cfg=cfg, rescale=rescale, with_nms=with_nms)
        if self.score_thr_mode == 'class_prior':
            thrs = self.class_score_thrs.to(cls_scores[0].device)
            results = [res[res.scores > thrs[res.labels]] for res in results]
        return results

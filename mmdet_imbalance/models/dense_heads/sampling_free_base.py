"""What the Sampling-Free dense heads share: the prior (``prior_prob``) and the guided anchor loss.

Used by :class:`SamplingFreeRetinaHead`, :class:`SamplingFreeRPNHead` and
:class:`SamplingFreeFCOSHead` (docs/methods/sampling-free.md §2, §3, §5).

``prior_prob`` is a number in (0, 1) or ``'auto'``:

* a number sets the classification bias to ``-log((1 - pi) / pi)`` in ``init_weights`` (after the
  stock initialisation, so whatever ``init_cfg`` says about that conv's bias is replaced);
* ``'auto'`` takes ``pi* = N_fg / (C (N_fg + N_bg))`` of the training set (§2). A head cannot see
  its dataset, so the value is filled in from outside: ``SamplingFreePriorHook``
  (:mod:`mmdet_imbalance.engine.sampling_free_hook`) reads the statistics cache of
  ``tools/imbalance_stats.py`` for the config's training set in ``before_run`` (computing it on
  first use) and calls :meth:`SamplingFreePriorMixin.apply_imbalance_stats`. mmengine's runner
  calls ``before_run`` before it initialises the weights, so the bias is set from the resolved
  value. A head whose ``'auto'`` was never resolved refuses to initialise, train or predict, with an
  error that says what to run.

The anchor loss (:meth:`SamplingFreePriorMixin.sampling_free_anchor_losses`) follows the Dec-2019
recipes of §5: one classification total and one regression total over all levels and all images
(the guided ratio does not decompose per level, §5), the classification loss over every
valid anchor (ignored anchors carry ``label_weights == 0`` and drop out; no sampler), and the
regression loss divided by ``4 N_pos`` (per-coordinate mean over positives). ``N_pos`` is the exact
number of positive anchors of the batch, not mmdet's ``avg_factor`` (the sum over images of
``max(N_pos_i, 1)``), which differs when an image has no positive.
"""
import math
from numbers import Real
from typing import List, Optional, Tuple, Union

import torch
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from ..losses.guided_loss import guided_loss, prior_to_bias

AUTO = 'auto'


def unresolved_prior_message(head: str) -> str:
    """The error text for a head whose ``prior_prob='auto'`` has no value."""
    return (f"{head}: prior_prob='auto' has no value: no imbalance statistics are available for "
            'the training set. Run `python tools/imbalance_stats.py <config>` to compute and cache '
            "them, and train or test through mmengine's runner with "
            "custom_hooks=[..., dict(type='SamplingFreePriorHook')], which loads them into the "
            'head (computing them if the cache is missing); or set prior_prob to a number.')


def check_prior_prob(prior_prob) -> Union[str, float]:
    """Validate a ``prior_prob`` argument: ``'auto'`` or a number strictly between 0 and 1."""
    if prior_prob == AUTO:
        return AUTO
    if isinstance(prior_prob, bool) or not isinstance(prior_prob, Real) \
            or not 0 < prior_prob < 1:
        raise ValueError(f"prior_prob must be 'auto' or a number strictly between 0 and 1, "
                         f'got {prior_prob!r}')
    return float(prior_prob)


def check_guided_scale(guided_scale) -> float:
    """Validate ``guided_scale`` (``s`` of the guided loss): a positive finite number."""
    if isinstance(guided_scale, bool) or not isinstance(guided_scale, Real) \
            or not math.isfinite(guided_scale) or guided_scale <= 0:
        raise ValueError(f'guided_scale must be a positive finite number, got {guided_scale!r}')
    return float(guided_scale)


def levels_to_rows(per_level: List[Tensor], last_dim: int) -> Tensor:
    """(N, A_l*K, H_l, W_l) maps of every level -> one (N * sum_l A_l*H_l*W_l, K) float tensor.

    Rows are ordered image, then level, then mmdet's (y, x, base anchor) order: the order of
    ``torch.cat(get_targets(...)[i], dim=1).reshape(-1)``.
    """
    num_imgs = per_level[0].size(0)
    rows = torch.cat([
        level.permute(0, 2, 3, 1).reshape(num_imgs, -1, last_dim) for level in per_level
    ], dim=1)
    return rows.reshape(-1, last_dim).float()


class SamplingFreePriorMixin:
    """Prior resolution, bias initialisation and the guided anchor loss of Sampling-Free heads.

    Mixed in before a stock mmdet head (``class X(SamplingFreePriorMixin, RetinaHead)``). The
    subclass names the conv whose bias carries the prior (``prior_conv_name``) and the key of its
    statistics stage (``imbalance_stage``: the head's attribute name in the detector, which is
    also the stage key of :mod:`mmdet_imbalance.analysis.imbalance_stats`).
    """

    prior_conv_name: str = ''
    imbalance_stage: str = 'bbox_head'

    def _init_sampling_free(self, prior_prob, guided_scale) -> None:
        self.prior_prob = check_prior_prob(prior_prob)
        self.guided_scale = check_guided_scale(guided_scale)
        self.resolved_prior: Optional[float] = None if self.prior_prob == AUTO \
            else self.prior_prob
        sampler = (self.train_cfg or {}).get('sampler', None)
        if sampler is not None and sampler.get('type') != 'PseudoSampler':
            # §5: the Sampling-Free heads learn from every valid anchor; a sampler would
            # re-introduce exactly the mini-batch selection the method removes.
            raise ValueError(f'{type(self).__name__} trains on all valid anchors; its '
                             f"train_cfg.sampler must be None (or PseudoSampler), got {sampler!r}")

    @property
    def needs_imbalance_stats(self) -> bool:
        """True while the head still waits for dataset statistics (``prior_prob='auto'``)."""
        return self.resolved_prior is None

    def apply_imbalance_stats(self, stats: dict) -> None:
        """Take what the head needs from one stage of the imbalance statistics.

        Args:
            stats (dict): one entry of ``stats['stages']`` returned by
                :func:`mmdet_imbalance.analysis.imbalance_stats.get_imbalance_stats`; uses
                ``prior`` (``pi*``) when ``prior_prob='auto'``.
        """
        if self.prior_prob == AUTO:
            prior = stats.get('prior')
            if prior is None:
                raise ValueError(
                    f"{type(self).__name__}: prior_prob='auto' but the statistics of stage "
                    f"{stats.get('stage')!r} have no prior (no foreground example was found: "
                    f"fg={stats.get('counts', {}).get('fg')}); set prior_prob to a number")
            self.set_prior(prior)

    def set_prior(self, prior: float) -> None:
        """Fix the prior (``pi``) the head initialises its bias with and, where used, tests with."""
        self.resolved_prior = check_prior_prob(prior)
        if self.resolved_prior == AUTO:
            raise ValueError("set_prior needs a number, got 'auto'")

    def require_prior(self) -> float:
        """The resolved prior; a ValueError saying what to run when ``'auto'`` is unresolved."""
        if self.resolved_prior is None:
            raise ValueError(unresolved_prior_message(type(self).__name__))
        return self.resolved_prior

    def init_weights(self) -> None:
        """Stock initialisation, then the classification bias set to ``-log((1 - pi) / pi)``."""
        prior = self.require_prior()
        super().init_weights()
        conv = getattr(self, self.prior_conv_name)
        with torch.no_grad():
            conv.bias.fill_(prior_to_bias(prior))

    def sampling_free_anchor_losses(
            self,
            cls_scores: List[Tensor],
            bbox_preds: List[Tensor],
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None) -> Tuple[Tensor, Tensor]:
        """Guided classification total and regression total over all levels and images (§5).

        Args and the anchor/target computation are those of ``AnchorHead.loss_by_feat``.

        Returns:
            tuple[Tensor, Tensor]: ``(loss_cls, loss_bbox)``: the guided classification loss
            (value ``guided_scale * loss_bbox``) and the regression loss (sum over positives
            divided by ``encode_size * N_pos``, times ``loss_bbox.loss_weight``). Both are 0 when
            the batch has no positive anchor.
        """
        self.require_prior()
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=cls_scores[0].device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         _) = self.get_targets(
             anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
             batch_gt_instances_ignore=batch_gt_instances_ignore)
        labels = torch.cat(labels_list, dim=1).reshape(-1)
        label_weights = torch.cat(label_weights_list, dim=1).reshape(-1)
        bbox_targets = torch.cat(bbox_targets_list, dim=1)
        bbox_targets = bbox_targets.reshape(-1, bbox_targets.size(-1))
        bbox_weights = torch.cat(bbox_weights_list, dim=1).reshape(-1, bbox_targets.size(-1))
        cls_score = levels_to_rows(cls_scores, self.cls_out_channels)
        bbox_pred = levels_to_rows(bbox_preds, self.bbox_coder.encode_size)
        if self.reg_decoded_bbox:
            anchors = torch.cat([get_box_tensor(cat_boxes(per_image)) for per_image in anchor_list])
            bbox_pred = get_box_tensor(self.bbox_coder.decode(anchors, bbox_pred))

        num_pos = int(((labels >= 0) & (labels < self.num_classes)).sum())
        # The classification normaliser cancels in the guided loss (§3); N_pos keeps the logged
        # value comparable with the reference's sum / N_pos.
        loss_cls = self.loss_cls(cls_score, labels, label_weights, avg_factor=max(num_pos, 1))
        loss_bbox = self.loss_bbox(
            bbox_pred, bbox_targets.float(), bbox_weights.float(),
            avg_factor=max(num_pos, 1) * bbox_targets.size(-1))
        return guided_loss(loss_cls, loss_bbox, self.guided_scale), loss_bbox

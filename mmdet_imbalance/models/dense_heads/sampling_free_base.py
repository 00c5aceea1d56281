"""What the Sampling-Free dense heads share: the prior (``prior_prob``) and the guided anchor loss.

:class:`SamplingFreePriorMixin` (all three heads: RetinaNet, RPN, FCOS) resolves the prior and
initialises the classification bias with it (docs/methods/sampling-free.md §2).
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

:class:`GuidedAnchorLossMixin` (the anchor heads, RetinaNet and RPN; FCOS guides its stock
losses instead, §6) is the Dec-2019 loss of §5: one classification total and one regression total
over all levels and all images (the guided ratio does not decompose per level), the classification
loss over every valid anchor (ignored anchors carry ``label_weights == 0`` and drop out; no
sampler), and the regression loss divided by ``4 N_pos`` (per-coordinate mean over positives).
``N_pos`` is the exact number of positive anchors of the batch, not mmdet's ``avg_factor`` (the
sum over images of ``max(N_pos_i, 1)``), which differs when an image has no positive.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..losses.checks import positive_number, probability
from ..losses.guided_loss import guided_loss, prior_to_bias
from .flat_targets import FlatAnchorLossMixin, FlatTargets, flat_bbox_loss

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
    return AUTO if prior_prob == AUTO else probability('prior_prob', prior_prob)


class SamplingFreePriorMixin:
    """Prior resolution and bias initialisation of the Sampling-Free heads.

    Mixed in before a stock mmdet head (``class X(SamplingFreePriorMixin, RetinaHead)``). The
    subclass names the conv whose bias carries the prior (``prior_conv_name``) and the key of its
    statistics stage (``imbalance_stage``: the head's attribute name in the detector, which is
    also the stage key of :mod:`mmdet_imbalance.analysis.imbalance_stats`).
    """

    prior_conv_name: str = ''
    imbalance_stage: str = 'bbox_head'

    def _init_prior(self, prior_prob) -> None:
        self.prior_prob = check_prior_prob(prior_prob)
        self.resolved_prior: Optional[float] = None if self.prior_prob == AUTO \
            else self.prior_prob

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
        self.resolved_prior = probability('prior', prior)

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


class GuidedAnchorLossMixin(FlatAnchorLossMixin):
    """The guided classification and regression totals of an anchor head (module docstring)."""

    def _init_guided(self, guided_scale) -> None:
        self.guided_scale = positive_number('guided_scale', guided_scale)
        sampler = (self.train_cfg or {}).get('sampler', None)
        if sampler is not None and sampler.get('type') != 'PseudoSampler':
            # §5: the Sampling-Free heads learn from every valid anchor; a sampler would
            # re-introduce exactly the mini-batch selection the method removes.
            raise ValueError(f'{type(self).__name__} trains on all valid anchors; its '
                             f"train_cfg.sampler must be None (or PseudoSampler), got {sampler!r}")

    def guided_anchor_losses(self, flat: FlatTargets) -> Tuple[Tensor, Tensor]:
        """Guided classification total and regression total over all levels and images (§5).

        Returns:
            tuple[Tensor, Tensor]: ``(loss_cls, loss_bbox)``: the guided classification loss
            (value ``guided_scale * loss_bbox``) and the regression loss (sum over positives
            divided by ``encode_size * N_pos``, times ``loss_bbox.loss_weight``). Both are 0 when
            the batch has no positive anchor.
        """
        # Both totals in float32 under autocast: the guided ratio is taken on them (§3).
        flat = flat._replace(cls_score=flat.cls_score.float(), bbox_pred=flat.bbox_pred.float())
        num_pos = int(((flat.labels >= 0) & (flat.labels < self.num_classes)).sum())
        # The classification normaliser cancels in the guided loss (§3); N_pos keeps the logged
        # value comparable with the reference's sum / N_pos.
        loss_cls = self.loss_cls(flat.cls_score, flat.labels, flat.label_weights,
                                 avg_factor=max(num_pos, 1))
        loss_bbox = flat_bbox_loss(self, flat, max(num_pos, 1) * flat.bbox_targets.size(-1))
        return guided_loss(loss_cls, loss_bbox, self.guided_scale), loss_bbox

"""Sampling-Free's guided loss and optimal bias initialisation (Chen et al., arXiv 1909.04868).

Pure functions of tensors and counts shared by the Sampling-Free heads and by the imbalance
statistics tool (:mod:`mmdet_imbalance.analysis.imbalance_stats`); documented in
docs/methods/sampling-free.md §2, §3:

* :func:`guided_loss`: ``s * sg(L_reg / L_cls) * L_cls`` (the Dec-2019 ``GuidedLossWeighter``).
  Its value is ``s * L_reg``; its gradient is ``s * L_reg * grad(L_cls) / L_cls``, so any constant
  normaliser of ``L_cls`` cancels and only the normalisation of ``L_reg`` sets the scale (§3).
* :func:`optimal_prior`: ``pi* = N_fg / (C (N_fg + N_bg))``, the constant score that minimises the
  initial summed BCE over all non-ignored (example, class) entries (§2).
* :func:`prior_to_bias`: the logit bias ``-log((1 - pi) / pi)`` whose sigmoid is ``pi``.

Decisions (edge cases the reference leaves to CUDA or never meets):

* **Zero regression loss** (no positive in the batch): the value and the gradient are exactly 0,
  as in the reference, which returns zero for both losses then (§3).
* **Zero, non-finite or negative classification loss** (every entry ignored, or a perfectly fitted
  batch in low precision): the ratio is undefined there, so the guided loss is 0 with a zero
  gradient instead of NaN. A negative ``L_cls`` cannot come from a cross-entropy; it is treated the
  same way rather than flipping the sign of the gradient.
* **Precision**: the ratio and the product are computed in float32 whatever the input dtype, so a
  bfloat16 ``L_cls`` under autocast does not lose the ratio to rounding.
"""
import math
from numbers import Integral

import torch
from torch import Tensor

from .checks import positive_number, probability


def _check_scalar_loss(name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(value).__name__}')
    if value.numel() != 1:
        raise ValueError(f'{name} must be a scalar total loss (one element), '
                         f'got shape {tuple(value.shape)}')
    return value.reshape(())


def guided_loss(loss_cls: Tensor, loss_reg: Tensor, scale: float = 1.0) -> Tensor:
    """Guided classification loss ``scale * sg(loss_reg / loss_cls) * loss_cls`` (§3).

    Args:
        loss_cls (Tensor): the total classification loss of the batch (one element, with grad).
        loss_reg (Tensor): the total regression loss of the batch (one element); no gradient flows
            through it here, the caller returns it as its own loss term.
        scale (float): ``s``; 1 for RetinaNet and the RPN, 2 for the Fast R-CNN head.

    Returns:
        Tensor: a float32 scalar whose value is ``scale * loss_reg`` and whose gradient with
        respect to the network is ``scale * loss_reg / loss_cls`` times that of ``loss_cls``;
        exactly 0 (value and gradient) when ``loss_reg`` is 0 or ``loss_cls`` is not a positive
        finite number.
    """
    loss_cls = _check_scalar_loss('loss_cls', loss_cls)
    loss_reg = _check_scalar_loss('loss_reg', loss_reg)
    positive_number('scale', scale)
    cls = loss_cls.float()
    cls_value = cls.detach()
    reg_value = loss_reg.detach().float()
    usable = torch.isfinite(cls_value) & (cls_value > 0) & torch.isfinite(reg_value)
    # Substitute 1 where the ratio is undefined so that neither branch of torch.where produces
    # NaN: torch.where passes a zero gradient to the unselected branch, but NaN * 0 is still NaN.
    safe_cls = torch.where(usable, cls, torch.ones_like(cls))
    safe_value = torch.where(usable, cls_value, torch.ones_like(cls_value))
    ratio = torch.where(usable, reg_value / safe_value, torch.zeros_like(cls_value))
    return torch.where(usable, scale * ratio * safe_cls, torch.zeros_like(cls))


def optimal_prior(num_fg: int, num_bg: int, num_classes: int) -> float:
    """The optimal initial score ``pi* = num_fg / (num_classes * (num_fg + num_bg))`` (§2).

    Args:
        num_fg (int): foreground examples (anchors or points assigned to an object), over the
            whole training set.
        num_bg (int): background examples; ignored ones are counted in neither.
        num_classes (int): ``C``: the number of sigmoid outputs per example (80 for COCO
            RetinaNet, 1 for the RPN).

    Returns:
        float: ``pi*`` in (0, 1].
    """
    for name, value in (('num_fg', num_fg), ('num_bg', num_bg), ('num_classes', num_classes)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f'{name} must be an int, got {type(value).__name__} {value!r}')
    if num_bg < 0:
        raise ValueError(f'num_bg must be >= 0, got {num_bg}')
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    if num_fg < 1:
        raise ValueError(f'num_fg must be >= 1 to define an optimal prior, got {num_fg}: with no '
                         'foreground example the minimiser is pi = 0 (bias -inf)')
    return num_fg / (num_classes * (num_fg + num_bg))


def prior_to_bias(prior: float) -> float:
    """The classification bias ``-log((1 - prior) / prior)``, i.e. ``sigmoid(bias) == prior``."""
    prior = probability('prior', prior)
    return -math.log((1 - prior) / prior)

"""Argument checks shared by the losses and their heads.

Only checks that stop a silently wrong result: a hyper-parameter outside its formula's domain
(a zero ramp width divides by zero, a negative scale flips a gradient), tensors whose shapes would
broadcast instead of failing, and logits whose NaN would be ranked anywhere. Checks of tensor
values run on CPU tensors only (:func:`on_host`).
"""
import math
from numbers import Real

import torch
from torch import Tensor


def finite_number(name: str, value) -> float:
    """``value`` as a float; ValueError unless it is a finite real number (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value!r}')
    return float(value)


def positive_number(name: str, value) -> float:
    """``value`` as a float; ValueError unless it is a finite number > 0."""
    if finite_number(name, value) <= 0:
        raise ValueError(f'{name} must be a finite number > 0, got {value!r}')
    return float(value)


def probability(name: str, value) -> float:
    """``value`` as a float; ValueError unless it lies strictly between 0 and 1 (a finite logit)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < 1:
        raise ValueError(f'{name} must be a number strictly between 0 and 1, got {value!r}')
    return float(value)


def one_of(name: str, value, choices) -> None:
    """ValueError unless ``value`` is one of ``choices`` (a mode string: a typo would otherwise
    select a default branch silently)."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')


def on_host(tensor: Tensor) -> bool:
    """True for a CPU tensor. A check that reads tensor values runs only then: on a GPU every such
    read waits for the device, a host synchronisation in every training step."""
    return tensor.device.type == 'cpu'


def check_same_shape(name: str, tensor: Tensor, ref_name: str, ref: Tensor) -> None:
    """ValueError unless ``tensor`` has the shape of ``ref`` (elementwise pairing, no broadcast)."""
    if tensor.shape != ref.shape:
        raise ValueError(f'{name} must have shape {tuple(ref.shape)} (that of {ref_name}), '
                         f'got {tuple(tensor.shape)}')


def check_finite_logits(logits: Tensor, loss_name: str) -> None:
    """ValueError for NaN or inf logits: a ranking loss would place them in an undefined bucket.
    CPU tensors only (:func:`on_host`)."""
    if logits.numel() == 0 or not on_host(logits):
        return
    # One reduction pass (NaN propagates through min/max) instead of isfinite's several.
    low, high = torch.aminmax(logits.detach())
    if not (torch.isfinite(low) and torch.isfinite(high)):
        raise ValueError(f'logits contain NaN or inf; {loss_name} ranks finite logits only')


def check_label_range(labels: Tensor, num_classes: int) -> None:
    """ValueError unless mmdet labels lie in ``[0, num_classes]`` (background = ``num_classes``).
    CPU tensors only (:func:`on_host`)."""
    if labels.numel() == 0 or not on_host(labels):
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > num_classes:
        raise ValueError(f'labels must lie in [0, {num_classes}] (mmdet convention: '
                         f'background = num_classes = {num_classes}), got values in '
                         f'[{low}, {high}]')

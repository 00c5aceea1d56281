"""Numeric precision of a run: float32, or bfloat16 autocast where the hardware computes it.

A mini training step is compute-bound (convolutions near the fp32 sgemm peak of a 2-core CPU), so
the only faster step is a lower-precision one. CPUs with native bfloat16 (AVX512-BF16 or AMX) run
the network's forward and backward about twice as fast under ``torch.autocast('cpu', bfloat16)``
(docs/calibration.md). mmengine's ``AmpOptimWrapper`` refuses the CPU, so
:class:`CPUAutocastOptimWrapper` adds the autocast itself; weights, gradients and the optimizer
state stay float32, as in any autocast training. Evaluation runs in float32
(:func:`mmdet_imbalance.config_builder.use_precision` says why).

mmcv's compiled ``nms`` and ``roi_align`` have no bfloat16 CPU kernels; importing this module
installs the float32 fall-back of :mod:`mmdet_imbalance.models.cpu_autocast`, the one place that
patches mmcv.
"""
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS
from ..models import cpu_autocast  # noqa: F401  (float32 fall-back of mmcv's box ops)

PRECISIONS = ('auto', 'fp32', 'bf16')


def native_bf16_cpu() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16), as torch sees it.

    Without it, oneDNN emulates bfloat16 through float32 and autocast only adds casts.
    """
    caps = getattr(torch.cpu, 'get_capabilities', None)
    if caps is not None:
        found = caps()
        return bool(found.get('avx512_bf16') or found.get('amx_bf16'))
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: Optional[str] = None) -> str:
    """``'fp32'`` or ``'bf16'`` for a requested precision on ``device`` (default: this machine's).

    ``auto`` is bf16 on CUDA and on CPUs with native bfloat16, fp32 elsewhere.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'--precision {precision!r}: choose one of {PRECISIONS}')
    if precision != 'auto':
        return precision
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda':
        return 'bf16' if torch.cuda.is_bf16_supported() else 'fp32'
    return 'bf16' if native_bf16_cpu() else 'fp32'


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU autocast (bfloat16).

    Args:
        channels_last (bool): move the model to the ``channels_last`` memory format at the first
            step. oneDNN's bfloat16 convolutions are faster in that layout (docs/calibration.md).
        Others as ``OptimWrapper``.
    """

    def __init__(self, *args, channels_last: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels_last = channels_last
        self._model_prepared = False

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        if self.channels_last and not self._model_prepared:
            model.to(memory_format=torch.channels_last)
            self._model_prepared = True
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


def run_precision(optim_wrapper) -> str:
    """The precision a built optim wrapper actually trains in: 'fp32', 'bf16' or 'fp16'."""
    if isinstance(optim_wrapper, CPUAutocastOptimWrapper):
        return 'bf16'
    dtype = getattr(optim_wrapper, 'cast_dtype', None)
    if type(optim_wrapper).__name__ == 'AmpOptimWrapper':
        return 'bf16' if dtype == torch.bfloat16 else 'fp16'
    return 'fp32'

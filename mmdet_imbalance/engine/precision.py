"""Numeric precision of a run: float32, or bfloat16 autocast where the hardware computes it.

A mini training step is compute-bound (convolutions near the fp32 sgemm peak of a 2-core CPU), so
the only faster step is a lower-precision one. Where a CPU computes bfloat16 natively and fast
(AVX512-BF16 or AMX, its bf16 matrix product measured well above its fp32 one), the step runs
under ``torch.autocast('cpu', bfloat16)`` (docs/calibration.md). mmengine's ``AmpOptimWrapper``
refuses the CPU, so :class:`CPUAutocastOptimWrapper` adds the autocast itself; weights, gradients
and the optimizer state stay float32, as in any autocast training. Evaluation runs in float32
(:func:`mmdet_imbalance.config_builder.use_precision` says why).

mmcv's compiled ``nms`` and ``roi_align`` have no bfloat16 CPU kernels; building the wrapper
installs the CPU box ops of :mod:`mmdet_imbalance.models.cpu_autocast` (``nms`` in float32,
``roi_align`` as a float32 sparse product), the one place that patches mmcv, so nothing is
patched unless CPU bfloat16 is selected.
"""
import functools
from contextlib import contextmanager
from typing import Dict, Optional

import torch
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS
from ..models.cpu_autocast import use_cpu_box_ops

PRECISIONS = ('auto', 'fp32', 'bf16')
# ``auto`` takes bf16 on a CPU only when its bf16 matrix product is at least this much faster than
# its fp32 one. A mini step gains a fraction of the matrix-product speedup (its narrow convolutions
# gain least, benchmarks/bf16_width.py), and on some CPUs that report AVX512-BF16 the bf16 product
# is slower than the fp32 one (docs/calibration.md, "Precision on other CPUs").
BF16_MIN_GEMM_SPEEDUP = 2.0


def native_bf16_cpu() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16), as torch sees it.

    Without it, oneDNN emulates bfloat16 through float32 and autocast only adds casts.
    """
    caps = getattr(torch.cpu, 'get_capabilities', None)
    if caps is not None:
        found = caps()
        return bool(found.get('avx512_bf16') or found.get('amx_bf16'))
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@functools.lru_cache(maxsize=None)
def cpu_gemm_gflops() -> Dict[str, float]:
    """This CPU's measured matrix-product GFLOP/s in fp32 and bf16 (measured once per process)."""
    from .run_record import gemm_gflops
    return {'fp32': gemm_gflops(torch.float32), 'bf16': gemm_gflops(torch.bfloat16)}


def bf16_pays_off(rates: Optional[Dict[str, float]] = None) -> bool:
    """True when this CPU computes bfloat16 natively and its bf16 matrix product is at least
    :data:`BF16_MIN_GEMM_SPEEDUP` times its fp32 one (``rates``: GFLOP/s by precision, measured
    here when not given)."""
    if not native_bf16_cpu():
        return False
    rates = rates or cpu_gemm_gflops()
    return rates['bf16'] >= BF16_MIN_GEMM_SPEEDUP * rates['fp32']


def resolve_precision(precision: str, device: Optional[str] = None) -> str:
    """``'fp32'`` or ``'bf16'`` for a requested precision on ``device`` (default: this machine's).

    ``auto`` is bf16 on CUDA with bf16 support and on CPUs where bf16 pays off
    (:func:`bf16_pays_off`), fp32 elsewhere.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'--precision {precision!r}: choose one of {PRECISIONS}')
    if precision != 'auto':
        return precision
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda':
        return 'bf16' if torch.cuda.is_bf16_supported() else 'fp32'
    return 'bf16' if bf16_pays_off() else 'fp32'


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU autocast (bfloat16); building it makes
    mmcv's ``nms`` and ``roi_align`` accept bfloat16 CPU inputs (:func:`use_cpu_box_ops`).

    Args:
        channels_last (bool): move the model to the ``channels_last`` memory format at the first
            step. oneDNN's bfloat16 convolutions are faster in that layout (docs/calibration.md).
        Others as ``OptimWrapper``.
    """

    def __init__(self, *args, channels_last: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        use_cpu_box_ops()
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

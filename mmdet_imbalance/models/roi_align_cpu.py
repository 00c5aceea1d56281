"""RoIAlign on CPU as one sparse matrix product, with mmcv's sampling rules.

mmcv 2.1.0's CPU ``roi_align`` kernels are scalar loops over RoIs, channels and samples, on one
thread; the backward adds every sample's four bilinear weights one by one. In a mini Faster R-CNN
step at the stock budgets (512 RoIs per image) they took 61 % of the step: 0.51 of 0.84 s
(docs/calibration.md, "Where a two-stage step goes").

RoIAlign is linear in the features. For one level, every output cell ``(roi, ph, pw)`` is a
weighted sum of feature pixels, the same for every channel, so with the features laid out as rows
``F`` of shape ``(N*H*W, C)``::

    output = S @ F,      grad_F = S.T @ grad_output

where ``S`` is a sparse ``(R*ph*pw, N*H*W)`` matrix holding each sample's four bilinear weights
divided by the bin's sample count. :func:`sampling_matrix` builds ``S`` from the RoIs with mmcv's
rules, evaluated in the same float32 order so that every sample lands on the same pixels:

* aligned mode shifts the RoI by half a pixel and refuses inverted RoIs, unaligned mode makes it
  at least 1x1;
* ``sampling_ratio`` 0 takes ``ceil(roi_size / output_size)`` samples per bin and axis;
* a sample outside ``[-1, size]`` contributes zero but still counts; coordinates below 0 clamp to
  0, and a sample at or past the last pixel reads that pixel alone.

Only average pooling has this form; max pooling keeps mmcv's kernel.
"""
import warnings
from typing import Tuple

import torch


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    """A CSR tensor built from indices known to be valid (no invariant check, no beta warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta')
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _axis_samples(start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, bins: int,
                  size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices and weights of every sample along one axis.

    Returns ``(index, weight)`` of shape ``(R, bins, G, 2)``: for bin ``p`` and sample ``i`` of
    RoI ``r``, the low and high pixel and their linear weights (zero for samples past the RoI's own
    grid, ``G`` being the largest grid, or outside ``[-1, size]``).
    """
    num = start.shape[0]
    g_max = max(int(grid.max()), 1) if num else 1
    p = torch.arange(bins, dtype=torch.float32).view(1, bins, 1)
    i = torch.arange(g_max).view(1, 1, g_max)
    start, bin_size = start.view(-1, 1, 1), bin_size.view(-1, 1, 1)
    g = grid.view(-1, 1, 1)
    # mmcv: start + p * bin + (i + .5) * bin / grid, in this order.
    coord = start + p * bin_size + (i + 0.5) * bin_size / g.clamp(min=1)
    inside = (i < g) & (coord >= -1.0) & (coord <= size)
    coord = coord.clamp(min=0)
    low = coord.long()
    last = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(last, low, low + 1)
    coord = torch.where(last, low.to(coord.dtype), coord)
    frac = coord - low
    index = torch.stack([low, high], dim=-1)
    weight = torch.stack([1 - frac, frac], dim=-1) * inside.unsqueeze(-1)
    return index, weight


def sampling_matrix(rois: torch.Tensor, feature_shape: Tuple[int, int, int],
                    output_size: Tuple[int, int], spatial_scale: float, sampling_ratio: int,
                    aligned: bool) -> torch.Tensor:
    """The sparse CSR matrix ``S`` of RoIAlign (module docstring), float32.

    Args:
        rois (Tensor): ``(R, 5)`` rows ``(batch index, x1, y1, x2, y2)`` in image pixels.
        feature_shape (tuple): ``(N, H, W)`` of the feature map.
        output_size (tuple): ``(ph, pw)`` bins per RoI.
        spatial_scale (float): feature pixels per image pixel.
        sampling_ratio (int): samples per bin and axis; 0 for ``ceil(roi_size / output_size)``.
        aligned (bool): mmcv's ``aligned`` (half-pixel shift).

    Returns:
        Tensor: ``(R * ph * pw, N * H * W)`` sparse CSR, rows in ``(roi, ph, pw)`` order.
    """
    n, h, w = feature_shape
    ph, pw = output_size
    rois = rois.detach().float()
    num = rois.shape[0]
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    elif bool(((roi_w < 0) | (roi_h < 0)).any()):
        # As mmcv's kernel, which asserts it: an inverted box is a bug upstream, not an empty bin.
        bad = rois[(roi_w < 0) | (roi_h < 0)][0].tolist()
        raise ValueError(f'roi_align: RoI {bad} (batch index, x1, y1, x2, y2) has a negative '
                         'size; aligned RoIAlign needs x2 >= x1 and y2 >= y1')
    bin_w, bin_h = roi_w / pw, roi_h / ph
    if sampling_ratio > 0:
        grid_w = torch.full((num,), sampling_ratio, dtype=torch.long)
        grid_h = grid_w
    else:
        grid_w, grid_h = torch.ceil(bin_w).long(), torch.ceil(bin_h).long()
    count = (grid_h * grid_w).clamp(min=1).float()
    y_index, y_weight = _axis_samples(y1, bin_h, grid_h.clamp(min=0), ph, h)
    x_index, x_weight = _axis_samples(x1, bin_w, grid_w.clamp(min=0), pw, w)
    gy, gx = y_index.shape[2], x_index.shape[2]
    # (R, ph, pw, Gy, 2, Gx, 2): every sample's four corners.
    base = rois[:, 0].long().view(num, 1, 1, 1, 1, 1, 1) * (h * w)
    corners = gy * 2 * gx * 2
    col = (base + y_index.view(num, ph, 1, gy, 2, 1, 1) * w
           + x_index.view(num, 1, pw, 1, 1, gx, 2)).reshape(num * ph * pw, corners)
    weight = (y_weight.view(num, ph, 1, gy, 2, 1, 1) * x_weight.view(num, 1, pw, 1, 1, gx, 2)
              / count.view(num, 1, 1, 1, 1, 1, 1)).reshape(num * ph * pw, corners)
    keep = weight != 0
    crow = torch.zeros(num * ph * pw + 1, dtype=torch.long)
    torch.cumsum(keep.sum(dim=1), dim=0, out=crow[1:])
    return _csr(crow, col[keep], weight[keep], (num * ph * pw, n * h * w))


def _transpose(matrix: torch.Tensor) -> torch.Tensor:
    """CSR of ``matrix.T``: entries sorted by column (stable, so rows stay sorted within one)."""
    rows = torch.repeat_interleave(torch.arange(matrix.shape[0]),
                                   matrix.crow_indices().diff())
    cols = matrix.col_indices()
    order = torch.argsort(cols, stable=True)
    crow = torch.zeros(matrix.shape[1] + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(cols, minlength=matrix.shape[1]), dim=0, out=crow[1:])
    return _csr(crow, rows[order], matrix.values()[order], (matrix.shape[1], matrix.shape[0]))


def sparse_forward(ctx, features: torch.Tensor, rois: torch.Tensor, output_size: Tuple[int, int],
                   spatial_scale: float, sampling_ratio: int, aligned: bool) -> torch.Tensor:
    """Forward of an autograd function computing average RoIAlign as ``S @ F``; keeps ``S`` on
    ``ctx`` for :func:`sparse_backward`. Float32 inside, the features' dtype out."""
    n, c, h, w = features.shape
    matrix = sampling_matrix(rois, (n, h, w), output_size, spatial_scale, sampling_ratio, aligned)
    ctx.sparse_matrix = matrix
    ctx.features_shape, ctx.features_dtype = features.shape, features.dtype
    rows = features.float().permute(0, 2, 3, 1).reshape(n * h * w, c)
    # Under CPU autocast the product would be cast to bf16, which the sparse kernel lacks; the
    # op computes in float32 as autocast's own float32-only ops do.
    with torch.autocast('cpu', enabled=False):
        out = torch.sparse.mm(matrix, rows) if rows.numel() else rows.new_zeros(
            (matrix.shape[0], c))
    return out.view(-1, *output_size, c).permute(0, 3, 1, 2).to(features.dtype)


def sparse_backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
    """The features' gradient ``S.T @ grad_output`` of :func:`sparse_forward`."""
    n, c, h, w = ctx.features_shape
    grad = grad_output.float().permute(0, 2, 3, 1).reshape(-1, c)
    with torch.autocast('cpu', enabled=False):
        grad_rows = torch.sparse.mm(_transpose(ctx.sparse_matrix), grad)
    return grad_rows.view(n, h, w, c).permute(0, 3, 1, 2).to(ctx.features_dtype)


class RoIAlignCPU(torch.autograd.Function):
    """Average RoIAlign as ``S @ F`` (module docstring). The features may be of any memory format
    and float dtype; the RoIs receive no gradient, as in mmcv."""

    forward = staticmethod(sparse_forward)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return sparse_backward(ctx, grad_output), None, None, None, None, None


def roi_align_cpu(features: torch.Tensor, rois: torch.Tensor, output_size: Tuple[int, int],
                  spatial_scale: float = 1.0, sampling_ratio: int = 0,
                  aligned: bool = True) -> torch.Tensor:
    """mmcv's ``roi_align(..., pool_mode='avg')`` on CPU tensors, as a sparse product."""
    return RoIAlignCPU.apply(features, rois, tuple(output_size), float(spatial_scale),
                             int(sampling_ratio), bool(aligned))

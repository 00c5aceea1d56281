"""The sparse CPU RoIAlign against mmcv's compiled CPU kernel, called directly (the reference),
forward and backward, on RoIs that exercise every sampling rule: partly and wholly outside the
map, empty and inverted, large (several samples per bin), at the last pixel."""
import itertools

import pytest
import torch
from mmcv.ops import roi_align
from mmcv.ops.roi_align import ext_module

from mmdet_imbalance.models.cpu_autocast import use_cpu_box_ops
from mmdet_imbalance.models.roi_align_cpu import roi_align_cpu, sampling_matrix

AVG = 1


def kernel_roi_align(features, rois, grad_output, output_size, scale, ratio, aligned):
    """mmcv's compiled kernels, forward and backward, bypassing any patch of its Function."""
    out = features.new_zeros((rois.shape[0], features.shape[1], *output_size))
    empty = features.new_zeros(0)
    ext_module.roi_align_forward(features.contiguous(), rois, out, empty, empty,
                                 aligned_height=output_size[0], aligned_width=output_size[1],
                                 spatial_scale=scale, sampling_ratio=ratio, pool_mode=AVG,
                                 aligned=aligned)
    grad = torch.zeros_like(features)
    ext_module.roi_align_backward(grad_output.contiguous(), rois, empty, empty, grad,
                                  aligned_height=output_size[0], aligned_width=output_size[1],
                                  spatial_scale=scale, sampling_ratio=ratio, pool_mode=AVG,
                                  aligned=aligned)
    return out, grad


def awkward_rois(scale):
    """RoIs in image pixels for a 2 x 13 x 17 map at ``scale``; random ones and edge cases."""
    gen = torch.Generator().manual_seed(0)
    h, w = 13 / scale, 17 / scale
    xy = torch.rand(40, 2, generator=gen) * torch.tensor([w, h])
    size = torch.rand(40, 2, generator=gen) * torch.tensor([w, h]) * 0.8
    boxes = torch.cat([xy - size / 2, xy + size / 2], dim=1)
    special = torch.tensor([
        [0, 0, w, h],                        # the whole map: several samples per bin
        [-3 / scale, -2 / scale, 4 / scale, 5 / scale],   # over the top-left corner
        [w - 2 / scale, h - 1 / scale, w + 5 / scale, h + 3 / scale],  # past the last pixel
        [w + 4 / scale, h + 4 / scale, w + 9 / scale, h + 9 / scale],  # wholly outside
        [5, 5, 5, 5],                        # empty
        [0.3, 0.7, 1.1, 1.9],                # under one pixel
    ])
    boxes = torch.cat([boxes, special])
    batch = (torch.arange(boxes.shape[0]) % 2).float().unsqueeze(1)
    return torch.cat([batch, boxes], dim=1)


def test_inverted_roi_is_refused_in_aligned_mode_and_clamped_otherwise():
    features = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 6., 6., 2., 3.]])
    with pytest.raises(RuntimeError, match='non-negative size'):
        kernel_roi_align(features, rois, torch.zeros(1, 2, 2, 2), (2, 2), 1.0, 0, True)
    with pytest.raises(ValueError, match=r'RoI \[0.0, 6.0, 6.0, 2.0, 3.0\].*negative size'):
        roi_align_cpu(features, rois, (2, 2), 1.0, 0, True)
    grad_output = torch.ones(1, 2, 2, 2)
    expected, expected_grad = kernel_roi_align(features, rois, grad_output, (2, 2), 1.0, 0, False)
    x = features.clone().requires_grad_()
    got = roi_align_cpu(x, rois, (2, 2), 1.0, 0, False)
    got.backward(grad_output)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(x.grad, expected_grad)


@pytest.mark.parametrize('aligned,ratio,scale,output_size', [
    (True, 0, 1.0, (7, 7)), (True, 0, 0.25, (7, 7)), (False, 0, 0.5, (7, 7)),
    (True, 2, 0.25, (3, 5)), (False, 3, 1.0, (2, 2))])
def test_matches_mmcv_kernel_forward_and_backward(aligned, ratio, scale, output_size):
    features = torch.randn(2, 5, 13, 17, generator=torch.Generator().manual_seed(1))
    rois = awkward_rois(scale)
    grad_output = torch.randn(rois.shape[0], 5, *output_size,
                              generator=torch.Generator().manual_seed(2))
    expected, expected_grad = kernel_roi_align(features, rois, grad_output, output_size, scale,
                                               ratio, aligned)
    x = features.clone().requires_grad_()
    got = roi_align_cpu(x, rois, output_size, scale, ratio, aligned)
    got.backward(grad_output)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-5, atol=1e-6)
    assert expected.abs().sum() > 0 and expected_grad.abs().sum() > 0


def test_matrix_rows_sum_to_the_in_map_fraction_of_samples():
    # Each bin averages its samples' bilinear weights (which sum to 1), so a row of S sums to the
    # fraction of the bin's samples inside [-1, size]: 1 for a RoI well inside the map, 0 for one
    # wholly outside.
    rois = torch.tensor([[0, 2., 2., 10., 9.], [1, 40., 40., 50., 50.]])
    matrix = sampling_matrix(rois, (2, 13, 17), (7, 7), 1.0, 0, True).to_dense()
    rows = matrix.sum(dim=1).view(2, 49)
    torch.testing.assert_close(rows[0], torch.ones(49))
    torch.testing.assert_close(rows[1], torch.zeros(49))
    assert (matrix[:49, 13 * 17:] == 0).all(), 'RoI of image 0 reads image 1'


def test_no_rois():
    features = torch.randn(1, 4, 8, 8, requires_grad=True)
    out = roi_align_cpu(features, torch.zeros(0, 5), (7, 7), 1.0, 0, True)
    assert out.shape == (0, 4, 7, 7)
    out.sum().backward()
    assert features.grad.abs().sum() == 0


def test_bfloat16_channels_last_features_through_the_patched_mmcv_op():
    use_cpu_box_ops()
    features = torch.randn(2, 6, 13, 17, generator=torch.Generator().manual_seed(3))
    rois = awkward_rois(0.25)
    grad_output = torch.randn(rois.shape[0], 6, 7, 7, generator=torch.Generator().manual_seed(4))
    for dtype, memory_format in itertools.product(
            (torch.float32, torch.bfloat16), (torch.contiguous_format, torch.channels_last)):
        # The reference sees the same (rounded) inputs in float32; the bf16 path computes in
        # float32 too, so only its outputs' rounding to bf16 differs.
        inputs = [t.to(dtype) for t in (features, rois, grad_output)]
        expected, expected_grad = kernel_roi_align(*[t.float() for t in inputs], (7, 7), 0.25, 0,
                                                   True)
        x = inputs[0].contiguous(memory_format=memory_format).detach().requires_grad_()
        got = roi_align(x, inputs[1], (7, 7), 0.25, 0, 'avg', True)
        got.backward(inputs[2])
        assert got.dtype == x.grad.dtype == dtype
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(got.float(), expected, **tol)
        torch.testing.assert_close(x.grad.float(), expected_grad, **tol)


def test_max_pooling_runs_mmcv_kernel_in_float32_under_the_patch():
    use_cpu_box_ops()
    features = torch.randn(1, 3, 9, 9, generator=torch.Generator().manual_seed(5)).bfloat16()
    rois = torch.tensor([[0, 1., 1., 7., 8.], [0, 0., 3., 9., 6.]])
    expected = torch.zeros(2, 3, 2, 2)
    argmax_y, argmax_x = torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)
    ext_module.roi_align_forward(features.float(), rois, expected, argmax_y, argmax_x,
                                 aligned_height=2, aligned_width=2, spatial_scale=1.0,
                                 sampling_ratio=2, pool_mode=0, aligned=True)
    x = features.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = roi_align(x, rois, (2, 2), 1.0, 2, 'max', True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.bfloat16(), rtol=0, atol=0)
    out.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and x.grad.abs().sum() > 0

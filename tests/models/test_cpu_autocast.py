"""mmcv's nms / roi_align accept bfloat16 CPU inputs and agree with their float32 results."""
import torch
from mmcv.ops import nms, roi_align

import mmdet_imbalance  # noqa: F401  (applies the float32 path)


def test_nms_on_bfloat16_matches_float32():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep32 = nms(boxes, scores, 0.5)
    _, keep16 = nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
    assert keep32.tolist() == keep16.tolist() == [0, 2]


def test_roi_align_on_bfloat16_matches_float32_forward_and_backward():
    feats = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(2, 4, 8, 8) / 100
    rois = torch.tensor([[0, 1., 1., 6., 6.], [1, 0., 2., 5., 7.]])
    f32 = feats.clone().requires_grad_()
    bf16 = feats.bfloat16().requires_grad_()
    out32 = roi_align(f32, rois, (2, 2), 1.0, 2, 'avg', True)
    out16 = roi_align(bf16, rois.bfloat16(), (2, 2), 1.0, 2, 'avg', True)
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(out16.float(), out32, rtol=2e-2, atol=2e-2)
    out32.sum().backward()
    out16.float().sum().backward()
    assert bf16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.grad.float(), f32.grad, rtol=2e-2, atol=2e-2)


def test_roi_align_float32_features_with_bfloat16_rois():
    # Features and proposals can reach roi_align in different dtypes; the kernel reads the RoIs
    # with the features' type, so they must be cast, not reinterpreted.
    feats = torch.arange(1 * 2 * 8 * 8, dtype=torch.float32).reshape(1, 2, 8, 8) / 100
    rois = torch.tensor([[0, 1., 1., 6., 6.], [0, 0., 2., 5., 7.]])
    expected = roi_align(feats, rois, (2, 2), 1.0, 2, 'avg', True)
    got = roi_align(feats, rois.bfloat16(), (2, 2), 1.0, 2, 'avg', True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_roi_align_reads_channels_last_features_correctly():
    feats = torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 1., 1., 9., 9.], [0, 4., 2., 15., 11.]])
    expected = roi_align(feats, rois, (2, 2), 1.0, 2, 'avg', True)
    got = roi_align(feats.contiguous(memory_format=torch.channels_last), rois, (2, 2), 1.0, 2,
                    'avg', True)
    torch.testing.assert_close(got, expected)

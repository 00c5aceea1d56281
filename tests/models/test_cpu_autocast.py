"""mmcv's nms / roi_align accept bfloat16 CPU inputs and agree with their float32 results, once CPU
bfloat16 is selected; importing the package leaves mmcv as installed."""
import os
import subprocess
import sys

import pytest
import torch
from mmcv.ops import nms, roi_align

from mmdet_imbalance.models.cpu_autocast import use_cpu_box_ops

NO_SIDE_EFFECTS = """
import os
import torch
from mmcv.ops.nms import NMSop
from mmcv.ops.roi_align import RoIAlignFunction
from mmdet.evaluation.metrics import CocoMetric
coco_init = CocoMetric.__init__
import mmdet_imbalance
assert CocoMetric.__init__ is coco_init
from mmdet_imbalance.engine import CPUAutocastOptimWrapper
mark = '_mmdet_imbalance_fp32_on_cpu'
assert not getattr(NMSop.forward, mark, False)
assert not getattr(RoIAlignFunction.forward, mark, False)
assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
CPUAutocastOptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
assert getattr(NMSop.forward, mark, False) and getattr(RoIAlignFunction.forward, mark, False)
"""


def test_import_patches_nothing_and_the_bf16_wrapper_patches_mmcv():
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    proc = subprocess.run([sys.executable, '-c', NO_SIDE_EFFECTS], capture_output=True,
                          text=True, timeout=300, env=dict(env, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(autouse=True)
def _float32_box_ops():
    use_cpu_box_ops()


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

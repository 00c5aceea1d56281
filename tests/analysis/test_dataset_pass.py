"""The dataset pass: the toy training set (conftest.py) as the shapes and boxes a head sees."""
import numpy as np
import torch
from mmengine.config import Config

from mmdet_imbalance.analysis import geometric_pipeline, get_imbalance_stats, train_dataset_cfg
from mmdet_imbalance.analysis.dataset_pass import AnnotationPass, build_dataset, seeded


def test_annotation_pass_yields_the_training_shapes_and_boxes(toy):
    dataset_cfg = train_dataset_cfg(Config.fromfile(toy.retina_config()))
    pipeline = geometric_pipeline(dataset_cfg)
    assert [t['type'] for t in pipeline] == ['LoadAnnotations', 'Resize', 'RandomFlip']
    images = AnnotationPass(build_dataset(dataset_cfg, pipeline=[]), pipeline,
                            pad_size_divisor=32, num_images=None)
    with seeded(0):
        passed = list(images)
    assert images.num_images == 2 and images.skipped == 0
    # Image 2 is resized to 64 x 64; the box is centred, so a flip leaves it in place.
    for img_shape, padded, gt, ignored in passed:
        assert img_shape == (64, 64) and padded == (64, 64)
        assert torch.allclose(gt.bboxes, torch.tensor([[16., 16., 48., 48.]]))
    assert [g.labels.tolist() for _, _, g, _ in passed] == [[0], [1]]
    assert [len(i) for _, _, _, i in passed] == [1, 0]  # image 1's crowd box is ignored


def test_random_transforms_do_not_change_the_callers_random_state(toy):
    np.random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.rand(), torch.rand(1).item())
    np.random.seed(123)
    torch.manual_seed(123)
    get_imbalance_stats(toy.retina_config(), cache_dir=None)
    assert (np.random.rand(), torch.rand(1).item()) == expected

"""The dataset pass: a config's training set as the boxes and image shapes a head trains on.

No image is decoded. Each training image's annotations go through the config's own train pipeline,
with ``LoadImageFromFile`` replaced by a blank canvas of the annotated ``height x width``
(pixel-only transforms such as ``PhotoMetricDistortion`` and the final ``PackDetInputs`` are
skipped). So ``Resize``, ``RandomResize``, ``RandomCrop``, ``RandomFlip`` and the like act on boxes
and image shapes exactly as in training, with random choices drawn from a fixed seed
(:func:`seeded`). A pipeline that drops every box of an image (``RandomCrop`` without negative
crops) is retried on the same image, up to 10 times.

The data preprocessor's steps that matter are reproduced: the padded size is
``ceil(img / pad_size_divisor) * pad_size_divisor``, and a ``BoxFilterDetDataPreprocessor`` turns
degenerate boxes into ignored boxes. Batch padding is not modelled: anchors on it are invalid in
mmdet anyway; FCOS points on it would add background, which depends on the batch composition.
"""
import copy
import math
import os.path as osp
import random
from contextlib import contextmanager
from typing import List, Optional, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData

#: Transforms that only change pixel values; skipped on the blank canvas.
PIXEL_ONLY_TRANSFORMS = frozenset({
    'PhotoMetricDistortion', 'ColorTransform', 'Brightness', 'Contrast', 'Sharpness', 'Equalize',
    'AutoContrast', 'Posterize', 'Solarize', 'SolarizeAdd', 'Invert', 'Color', 'YOLOXHSVRandomAug',
    'Normalize', 'ImageToTensor', 'PackDetInputs'})
MAX_PIPELINE_RETRIES = 10


def load_cfg(cfg: Union[str, Config]) -> Config:
    import mmdet_imbalance  # noqa: F401  (registers this package's modules)
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise FileNotFoundError(f'config file not found: {cfg}')
        return Config.fromfile(cfg)
    if not isinstance(cfg, (Config, ConfigDict, dict)):
        raise TypeError(f'cfg must be a config path or a Config, got {type(cfg).__name__}')
    return cfg if isinstance(cfg, Config) else Config(dict(cfg))


def train_dataset_cfg(cfg: Config) -> ConfigDict:
    """``cfg.train_dataloader.dataset`` with wrappers (RepeatDataset, ...) removed."""
    loader = cfg.get('train_dataloader')
    if not loader or 'dataset' not in loader:
        raise KeyError('config has no train_dataloader.dataset: the statistics are computed on '
                       'the training set')
    dataset = loader['dataset']
    while 'dataset' in dataset and 'ann_file' not in dataset:
        dataset = dataset['dataset']
    if 'datasets' in dataset:
        raise ValueError('train_dataloader.dataset is a ConcatDataset; compute the statistics of '
                         'each of its datasets with its own config')
    return dataset


def build_dataset(dataset_cfg: ConfigDict, pipeline: Optional[list]):
    """The training set with ``pipeline`` (None: the config's own, as the RoI stage needs)."""
    from mmdet.registry import DATASETS
    dataset_cfg = copy.deepcopy(dataset_cfg)
    if pipeline is not None:
        dataset_cfg['pipeline'] = pipeline
    try:
        dataset = DATASETS.build(dataset_cfg)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'cannot read the training set of the config ({err}). Check '
            f"train_dataloader.dataset (ann_file={dataset_cfg.get('ann_file')!r}, "
            f"data_root={dataset_cfg.get('data_root')!r}), or pass --data-root to "
            'tools/imbalance_stats.py') from err
    dataset.full_init()
    return dataset


@contextmanager
def seeded(seed: int):
    """Seed NumPy, Python and torch's CPU generator, and restore their states afterwards (the
    CUDA generators are not touched: nothing here draws from them)."""
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), \
        torch.get_rng_state()
    np.random.seed(seed)
    random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_rng_state(torch_state)


class _BlankImage:
    """Stands in for ``LoadImageFromFile``: a zero image of the annotated size (nothing is read)."""

    def __call__(self, results: dict) -> dict:
        height, width = int(results['height']), int(results['width'])
        results['img'] = np.zeros((height, width, 3), dtype=np.uint8)
        results['img_shape'] = (height, width)
        results['ori_shape'] = (height, width)
        return results


def geometric_pipeline(dataset_cfg: ConfigDict) -> List[dict]:
    """The train pipeline's transforms that are run on the blank canvas (module docstring)."""
    pipeline = []
    for transform in dataset_cfg.get('pipeline', []):
        name = transform.get('type') if isinstance(transform, dict) else None
        if not isinstance(name, str):
            raise TypeError(f'train pipeline entries must be dicts with a str type, '
                            f'got {transform!r}')
        if name.startswith('LoadImage') or name in PIXEL_ONLY_TRANSFORMS:
            continue
        pipeline.append(copy.deepcopy(transform))
    return pipeline


class AnnotationPass:
    """Runs the geometric pipeline over the dataset's annotations and yields, per image, the
    ``(img_shape, padded_shape, gt_instances, ignored_instances)`` a head would be trained with."""

    def __init__(self, dataset, pipeline: List[dict], pad_size_divisor: int,
                 num_images: Optional[int], min_gt_size: Optional[float] = None):
        from mmcv.transforms import Compose
        from mmdet.registry import TRANSFORMS
        self.dataset = dataset
        self.transforms = Compose([_BlankImage()] + [TRANSFORMS.build(t) for t in pipeline])
        self.pad = max(int(pad_size_divisor or 1), 1)
        self.min_gt_size = min_gt_size
        self.num_images = min(len(dataset), num_images) if num_images else len(dataset)
        self.skipped = 0

    def __iter__(self):
        for idx in range(self.num_images):
            results = None
            for _ in range(MAX_PIPELINE_RETRIES):
                results = self.transforms(copy.deepcopy(self.dataset.get_data_info(idx)))
                if results is not None:
                    break
            if results is None:
                self.skipped += 1
                continue
            yield self._to_instances(results)

    def _to_instances(self, results: dict):
        from mmdet.structures.bbox import get_box_tensor
        height, width = results['img_shape'][:2]
        padded = (int(math.ceil(height / self.pad) * self.pad),
                  int(math.ceil(width / self.pad) * self.pad))
        boxes = results.get('gt_bboxes')
        boxes = torch.zeros(0, 4) if boxes is None else get_box_tensor(boxes).float()
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(
            results.get('gt_bboxes_labels', np.zeros(0)), dtype=torch.long).reshape(-1)
        ignore = torch.as_tensor(
            results.get('gt_ignore_flags', np.zeros(len(labels))), dtype=torch.bool).reshape(-1)
        # PackDetInputs splits the ignored boxes off into ``ignored_instances`` the same way.
        gt = InstanceData(bboxes=boxes[~ignore], labels=labels[~ignore])
        ignored = InstanceData(bboxes=boxes[ignore], labels=labels[ignore])
        if self.min_gt_size is not None:
            # BoxFilterDetDataPreprocessor moves degenerate boxes to the ignored ones in training.
            from mmdet.structures import DetDataSample
            from ..models.data_preprocessor import drop_degenerate_gt
            sample = DetDataSample(gt_instances=gt, ignored_instances=ignored)
            drop_degenerate_gt([sample], self.min_gt_size)
            gt, ignored = sample.gt_instances, sample.ignored_instances
        return (int(height), int(width)), padded, gt, ignored


def with_progress(iterable, total: int):
    from mmengine.utils import ProgressBar
    bar = ProgressBar(total)
    for item in iterable:
        yield item
        bar.update()

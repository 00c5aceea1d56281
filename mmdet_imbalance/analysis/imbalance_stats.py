"""Foreground/background imbalance statistics of a config's training set (algorithms.md §4.2).

One pass over the training set of a config, with the config's own anchor generators, point
generators and assigners, counts the examples each stage of the detector learns from:

* ``bbox_head``: the anchors of an anchor head (RetinaNet, ...) or the points of an FCOS head;
* ``rpn_head``: the RPN anchors;
* ``roi_head``: the RoI candidates of the R-CNN stage (the RPN's training proposals plus the GT
  boxes), only when a checkpoint is given, because proposals need a trained network.

Each example is foreground (``fg``: assigned to an object), background (``bg``), ignored (the
assigner's IoU band or ignore regions) or, for anchors, outside (valid anchors that cross the image
border further than ``allowed_border``, which mmdet's anchor heads drop before assigning). From the
counts, ``pi* = N_fg / (C (N_fg + N_bg))`` and the bias ``-log((1 - pi*) / pi*)`` (§4.2), which
``prior_prob='auto'`` of the Sampling-Free heads uses.

How the pass works, and what it assumes:

* **No image is decoded and no network is run** for the anchor and point stages. Each training
  image's annotations go through the config's own train pipeline, with ``LoadImageFromFile``
  replaced by a blank canvas of the annotated ``height x width`` (pixel-only transforms such as
  ``PhotoMetricDistortion`` and the final ``PackDetInputs`` are skipped). So ``Resize``,
  ``RandomResize``, ``RandomCrop``, ``RandomFlip`` and the like act on boxes and image shapes
  exactly as in training, with random choices drawn from a fixed seed (the global NumPy, Python
  and torch random states are restored afterwards). A pipeline that drops every box of an image
  (``RandomCrop`` without negative crops) is retried on the same image, up to 10 times.
* The data preprocessor's steps that matter are reproduced: the padded size is
  ``ceil(img / pad_size_divisor) * pad_size_divisor``, and a ``BoxFilterDetDataPreprocessor``
  turns degenerate boxes into ignored boxes. Each level's feature map is ``ceil(padded / stride)``
  (what ResNet/FPN produce). Batch padding is not modelled: anchors on it are invalid in mmdet
  anyway; FCOS points on it would add background, which depends on the batch composition.
* Counts are over the whole pass (all images), as the reference's ``AdaptiveInitializer`` does;
  ``allow_low_quality_matches`` and every other assigner setting come from the config. Unlike that
  initializer, the RPN counts respect ``allowed_border`` (crossing anchors are "outside", not
  background), because the loss never sees them; the reported ``outside`` count lets both variants
  be recomputed.

Results are cached as one JSON file per stage in ``work_dirs/imbalance_stats/`` (by default),
named ``<dataset>_<stage>_<key>.json``. The key hashes the dataset (annotation file path, size and
modification time, filter and class settings) and the relevant config parts (the built prior
generator and assigner, ``allowed_border``, the geometric train pipeline, ``pad_size_divisor``,
the class count, the seed and image limit; for ``roi_head`` also the checkpoint file and the
proposal settings), so a changed dataset or config gets fresh statistics while configs that differ
only elsewhere (a baseline and its Sampling-Free row) share them.
"""
import copy
import hashlib
import inspect
import json
import math
import os
import os.path as osp
import random
import tempfile
from contextlib import contextmanager
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData

from ..models.losses.guided_loss import optimal_prior, prior_to_bias

STAGES = ('bbox_head', 'rpn_head', 'roi_head')
DEFAULT_CACHE_DIR = osp.join('work_dirs', 'imbalance_stats')
#: Bump when the counting changes, so old cache files are not reused.
CACHE_VERSION = 1
#: Transforms that only change pixel values; skipped on the blank canvas.
PIXEL_ONLY_TRANSFORMS = frozenset({
    'PhotoMetricDistortion', 'ColorTransform', 'Brightness', 'Contrast', 'Sharpness', 'Equalize',
    'AutoContrast', 'Posterize', 'Solarize', 'SolarizeAdd', 'Invert', 'Color', 'YOLOXHSVRandomAug',
    'Normalize', 'ImageToTensor', 'PackDetInputs'})
MAX_PIPELINE_RETRIES = 10


# -- config and dataset helpers -------------------------------------------------------------------

def _load_cfg(cfg: Union[str, Config]) -> Config:
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


def _describe(obj, depth: int = 0):
    """A JSON-able, address-free description of a config value or built object (for cache keys)."""
    if depth > 6:
        return type(obj).__name__
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_describe(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if hasattr(obj, '__dict__'):
        state = {k: v for k, v in vars(obj).items() if not k.startswith('_') and not callable(v)}
        return {'type': type(obj).__name__, **_describe(state, depth + 1)}
    return type(obj).__name__


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _dataset_name(ann_file: str) -> str:
    """``data/trees/annotations/instances_train.json`` -> ``trees-instances_train``."""
    parts = osp.abspath(ann_file).split(os.sep)
    stem = osp.splitext(parts[-1])[0]
    if len(parts) >= 3 and parts[-2] == 'annotations':
        return f'{parts[-3]}-{stem}'
    return stem


def _build_dataset(dataset_cfg: ConfigDict, pipeline: Optional[list]):
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


def _dataset_info(dataset, dataset_cfg: ConfigDict, num_images: Optional[int]) -> dict:
    ann_file = osp.abspath(dataset.ann_file)
    stat = os.stat(ann_file)
    classes = list(dataset.metainfo.get('classes', ()))
    return dict(
        name=_dataset_name(ann_file), ann_file=ann_file, ann_file_size=stat.st_size,
        ann_file_mtime_ns=stat.st_mtime_ns, type=dataset_cfg.get('type'),
        filter_cfg=_describe(dataset_cfg.get('filter_cfg')), classes=classes,
        num_images=min(len(dataset), num_images) if num_images else len(dataset))


@contextmanager
def _seeded(seed: int):
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


class _AnnotationPass:
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


# -- counting -------------------------------------------------------------------------------------

def _new_counts(num_classes: int) -> dict:
    return dict(images=0, fg=0, bg=0, ignored=0, outside=0, gt_boxes=0, gt_ignored_boxes=0,
                fg_per_class=[0] * num_classes)


def _add_fg_per_class(counts: dict, gt_inds: torch.Tensor, gt_labels: torch.Tensor) -> None:
    pos = gt_inds > 0
    if pos.any():
        per_class = torch.bincount(gt_labels[gt_inds[pos] - 1],
                                   minlength=len(counts['fg_per_class']))
        for c, n in enumerate(per_class.tolist()[:len(counts['fg_per_class'])]):
            counts['fg_per_class'][c] += n


def _assign(assigner, priors: torch.Tensor, num_level_priors: List[int], gt: InstanceData,
            ignored: InstanceData):
    kwargs = dict(gt_instances_ignore=ignored if len(ignored) else None)
    if 'num_level_priors' in inspect.signature(assigner.assign).parameters:
        kwargs['num_level_priors'] = num_level_priors
    return assigner.assign(InstanceData(priors=priors), gt_instances=gt, **kwargs)


def _featmap_sizes(strides, padded) -> List[tuple]:
    sizes = []
    for stride in strides:
        stride_w, stride_h = (stride, stride) if isinstance(stride, (int, float)) else stride
        sizes.append((int(math.ceil(padded[0] / stride_h)), int(math.ceil(padded[1] / stride_w))))
    return sizes


def count_anchors(head, images: Iterable, device: str = 'cpu') -> dict:
    """fg / bg / ignored / outside anchor counts of an ``AnchorHead`` over ``images``.

    Args:
        head: a built mmdet anchor head with ``train_cfg`` (its ``prior_generator``, ``assigner``
            and ``train_cfg['allowed_border']`` are used; its sampler is not: these are the
            assigned counts before any sampling).
        images: ``(img_shape, padded_shape, gt_instances, ignored_instances)`` tuples.
        device (str): where anchors are generated and assigned ('cuda' speeds up COCO).
    """
    from mmdet.models.task_modules.prior_generators import anchor_inside_flags
    counts = _new_counts(head.num_classes)
    generator = head.prior_generator
    allowed_border = head.train_cfg.get('allowed_border', -1)
    # Anchors depend only on the image and padded shapes; consecutive images often share them.
    # Only the last shape is kept: COCO-size anchor sets are megabytes each.
    last_key, last = None, None
    for img_shape, padded, gt, ignored in images:
        if (img_shape, padded) != last_key:
            sizes = _featmap_sizes(generator.strides, padded)
            levels = generator.grid_priors(sizes, device=device)
            flags = generator.valid_flags(sizes, padded, device=device)
            anchors, valid = torch.cat(levels), torch.cat(flags)
            inside = anchor_inside_flags(anchors, valid, img_shape, allowed_border)
            level_ids = torch.cat([torch.full((len(a), ), i, device=device)
                                   for i, a in enumerate(levels)])
            num_level_inside = torch.bincount(level_ids[inside], minlength=len(levels)).tolist()
            last_key = (img_shape, padded)
            last = (anchors[inside], num_level_inside, int(valid.sum() - inside.sum()))
        priors, num_level_inside, outside = last
        counts['images'] += 1
        counts['gt_boxes'] += len(gt)
        counts['gt_ignored_boxes'] += len(ignored)
        counts['outside'] += outside
        if len(priors) == 0:
            continue
        gt, ignored = gt.to(device), ignored.to(device)
        gt_inds = _assign(head.assigner, priors, num_level_inside, gt, ignored).gt_inds
        counts['fg'] += int((gt_inds > 0).sum())
        counts['bg'] += int((gt_inds == 0).sum())
        counts['ignored'] += int((gt_inds < 0).sum())
        _add_fg_per_class(counts, gt_inds, gt.labels)
    return counts


def count_points(head, images: Iterable, device: str = 'cpu') -> dict:
    """fg / bg point counts of an ``FCOSHead`` over ``images`` (FCOS ignores nothing)."""
    counts = _new_counts(head.num_classes)
    for img_shape, padded, gt, ignored in images:
        sizes = _featmap_sizes(head.prior_generator.strides, padded)
        points = head.prior_generator.grid_priors(sizes, device=device)
        labels = torch.cat(head.get_targets(points, [gt.to(device)])[0])
        counts['images'] += 1
        counts['gt_boxes'] += len(gt)
        counts['gt_ignored_boxes'] += len(ignored)
        fg = labels < head.num_classes
        counts['fg'] += int(fg.sum())
        counts['bg'] += int((~fg).sum())
        per_class = torch.bincount(labels[fg], minlength=head.num_classes).tolist()
        for c, n in enumerate(per_class):
            counts['fg_per_class'][c] += n
    return counts


def count_roi_candidates(model, cfg: Config, dataset, num_images: Optional[int]) -> dict:
    """fg / bg / ignored RoI candidates (training proposals of the RPN plus the GT boxes).

    Runs the backbone and RPN of ``model`` (a trained two-stage detector in eval mode) on the
    training images through the full train pipeline, makes proposals with
    ``train_cfg.rpn_proposal`` and assigns them with the R-CNN assigner, before any sampling.
    """
    from mmengine.dataset import pseudo_collate
    rcnn_cfg = cfg.model.train_cfg.rcnn
    add_gt = (rcnn_cfg.get('sampler') or {}).get('add_gt_as_proposals', True)
    counts = _new_counts(model.roi_head.bbox_head.num_classes)
    total = min(len(dataset), num_images) if num_images else len(dataset)
    for idx in range(total):
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), False)
        samples = data['data_samples']
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
            proposals = model.rpn_head.predict_by_feat(
                *model.rpn_head(feats), batch_img_metas=[s.metainfo for s in samples],
                cfg=cfg.model.train_cfg.rpn_proposal, rescale=False)
        for proposal, sample in zip(proposals, samples):
            gt = sample.gt_instances
            ignored = sample.get('ignored_instances', InstanceData(bboxes=torch.zeros(0, 4)))
            gt_inds = _assign(model.roi_head.bbox_assigner, proposal.bboxes,
                              [len(proposal)], gt, ignored).gt_inds
            counts['images'] += 1
            counts['gt_boxes'] += len(gt)
            counts['gt_ignored_boxes'] += len(ignored)
            counts['fg'] += int((gt_inds > 0).sum()) + (len(gt) if add_gt else 0)
            counts['bg'] += int((gt_inds == 0).sum())
            counts['ignored'] += int((gt_inds < 0).sum())
            _add_fg_per_class(counts, gt_inds, gt.labels)
            if add_gt:
                for label in gt.labels.tolist():
                    counts['fg_per_class'][label] += 1
    return counts


# -- stages ---------------------------------------------------------------------------------------

def _head_cfg(cfg: Config, stage: str) -> Optional[ConfigDict]:
    model = cfg.model
    if stage not in model or model[stage] is None:
        return None
    head = copy.deepcopy(model[stage])
    train_cfg, test_cfg = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    if stage == 'rpn_head':
        head.update(train_cfg=train_cfg.get('rpn'), test_cfg=test_cfg.get('rpn'))
        head.setdefault('num_classes', 1)
    else:
        head.update(train_cfg=train_cfg, test_cfg=test_cfg)
    return head


def available_stages(cfg: Config, checkpoint: Optional[str] = None) -> List[str]:
    """The stages of ``cfg``'s detector this module can count (``roi_head`` needs a checkpoint)."""
    found = [s for s in ('bbox_head', 'rpn_head') if cfg.model.get(s) is not None]
    if checkpoint and cfg.model.get('roi_head') is not None:
        found.append('roi_head')
    return found


def _build_head(cfg: Config, stage: str):
    from mmdet.models.dense_heads import AnchorHead, FCOSHead
    from mmdet.registry import MODELS
    head = MODELS.build(_head_cfg(cfg, stage))
    if isinstance(head, AnchorHead):
        if not head.train_cfg:
            raise ValueError(f'model.{stage} has no train_cfg (assigner): cannot count anchors')
        return head, 'anchors'
    if isinstance(head, FCOSHead):
        return head, 'points'
    raise ValueError(f'model.{stage} is a {type(head).__name__}: only anchor heads and FCOS '
                     'heads can be counted without a network')


def _finish(counts: dict, num_classes: int) -> dict:
    fg, bg = counts['fg'], counts['bg']
    images = max(counts['images'], 1)
    prior = optimal_prior(fg, bg, num_classes) if fg > 0 else None
    bias = prior_to_bias(prior) if prior is not None and prior < 1 else None
    return dict(prior=prior, bias=bias, bg_per_fg=(bg / fg) if fg else None,
                fg_per_image=fg / images, bg_per_image=bg / images,
                ignored_per_image=counts['ignored'] / images,
                outside_per_image=counts['outside'] / images)


def _write_json(path: str, data: dict) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.json', dir=osp.dirname(path) or '.')
    with os.fdopen(fd, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)  # atomic: concurrent ranks never read half a file


def _file_id(path: str) -> dict:
    stat = os.stat(path)
    return dict(path=osp.abspath(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def _stage_key_parts(cfg: Config, stage: str, head, kind: str, pipeline: List[dict],
                     pad: int, seed: int, num_images: Optional[int],
                     checkpoint: Optional[str]) -> dict:
    parts = dict(version=CACHE_VERSION, stage=stage, kind=kind, pipeline=_describe(pipeline),
                 pad_size_divisor=pad, seed=seed, num_images=num_images)
    if stage == 'roi_head':
        model = cfg.model
        parts.update(checkpoint=_file_id(checkpoint),
                     rpn_proposal=_describe(model.train_cfg.rpn_proposal),
                     rcnn_assigner=_describe(model.train_cfg.rcnn.assigner),
                     rcnn_sampler=_describe(model.train_cfg.rcnn.get('sampler')),
                     num_classes=model.roi_head.bbox_head.num_classes)
        return parts
    parts.update(num_classes=head.num_classes, prior_generator=_describe(head.prior_generator))
    if kind == 'anchors':
        parts.update(assigner=_describe(head.assigner),
                     allowed_border=head.train_cfg.get('allowed_border', -1))
    else:
        parts.update(regress_ranges=_describe(head.regress_ranges),
                     center_sampling=head.center_sampling,
                     center_sample_radius=head.center_sample_radius)
    return parts


def _stage_label(stage: str, head_type: str, kind: str) -> str:
    if stage == 'roi_head':
        return 'RoI candidates (RPN proposals + GT)'
    return f'{head_type} {kind}'


def get_imbalance_stats(cfg: Union[str, Config],
                        stages: Optional[Sequence[str]] = None,
                        checkpoint: Optional[str] = None,
                        cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                        num_images: Optional[int] = None,
                        seed: int = 0,
                        use_cache: bool = True,
                        progress: bool = False,
                        device: str = 'cpu') -> dict:
    """Foreground/background statistics of ``cfg``'s training set, per stage (module docstring).

    Args:
        cfg (str | Config): a config (path) with ``model`` and ``train_dataloader``.
        stages (Sequence[str], optional): subset of ``('bbox_head', 'rpn_head', 'roi_head')``;
            default: every stage the config has (``roi_head`` only with ``checkpoint``).
        checkpoint (str, optional): weights of a two-stage detector, for the ``roi_head`` stage.
        cache_dir (str, optional): where the JSON files live; None disables caching.
        num_images (int, optional): count only the first ``num_images`` training images.
        seed (int): seed of the random train transforms.
        use_cache (bool): read existing cache files (they are written either way).
        progress (bool): show a progress bar.
        device (str): device for the anchor/point assignment and the ``roi_head`` network.

    Returns:
        dict: ``{'dataset': {...}, 'stages': {stage: {...}}}``; a stage holds ``counts``
        (``images``, ``fg``, ``bg``, ``ignored``, ``outside``, ``gt_boxes``, ``gt_ignored_boxes``,
        ``fg_per_class``), ``num_classes``, ``prior`` (``pi*``, None without foreground),
        ``bias``, ``bg_per_fg``, per-image means, ``label``, ``head``, ``key`` and ``cache_file``.
    """
    cfg = _load_cfg(cfg)
    from mmengine.registry import DefaultScope
    # Wrapped transforms (RandomResize's inner Resize) and datasets are built by name; mmdet's
    # versions must win over mmcv's, as they do in a runner with default_scope='mmdet'.
    # The whole pass, head building included (conv init draws random numbers), runs on its own
    # seed, so statistics computed inside a training run leave its random stream untouched.
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')), _seeded(seed):
        return _get_imbalance_stats(cfg, stages, checkpoint, cache_dir, num_images, seed,
                                    use_cache, progress, device)


def _get_imbalance_stats(cfg: Config, stages, checkpoint, cache_dir, num_images, seed, use_cache,
                         progress, device) -> dict:
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int)
                                   or num_images < 1):
        raise ValueError(f'num_images must be a positive int or None, got {num_images!r}')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    wanted = list(stages) if stages is not None else available_stages(cfg, checkpoint)
    for stage in wanted:
        if stage not in STAGES:
            raise ValueError(f'unknown stage {stage!r}; choose from {STAGES}')
        if cfg.model.get(stage) is None:
            raise ValueError(f'stage {stage!r} is not in this config\'s model '
                             f'(it has {available_stages(cfg, checkpoint) or "none"})')
        if stage == 'roi_head' and not checkpoint:
            raise ValueError("stage 'roi_head' counts RPN proposals and needs --checkpoint")

    dataset_cfg = train_dataset_cfg(cfg)
    dataset = _build_dataset(dataset_cfg, pipeline=[])
    info = _dataset_info(dataset, dataset_cfg, num_images)
    pipeline = geometric_pipeline(dataset_cfg)
    from mmdet.registry import MODELS
    preprocessor = MODELS.build(cfg.model.get('data_preprocessor')
                                or dict(type='DetDataPreprocessor'))
    pad = int(getattr(preprocessor, 'pad_size_divisor', 1) or 1)
    min_gt_size = getattr(preprocessor, 'min_gt_size', None)

    result = dict(dataset=info, stages={})
    for stage in wanted:
        if stage == 'roi_head':
            head, kind, head_type = None, 'candidates', cfg.model.roi_head.bbox_head.get('type')
        else:
            head, kind = _build_head(cfg, stage)
            head_type = type(head).__name__
        parts = _stage_key_parts(cfg, stage, head, kind, pipeline, pad, seed, num_images,
                                 checkpoint)
        parts['min_gt_size'] = min_gt_size
        dataset_key = {k: info[k] for k in ('ann_file', 'ann_file_size', 'ann_file_mtime_ns',
                                            'filter_cfg', 'classes', 'num_images')}
        key = _hash(dict(dataset=dataset_key, config=parts))
        path = osp.join(cache_dir, f'{info["name"]}_{stage}_{key}.json') if cache_dir else None
        if use_cache and path and osp.isfile(path):
            with open(path) as f:
                cached = json.load(f)
            if cached.get('key') == key:
                # Configs that differ only in the head class (a baseline and its Sampling-Free
                # row) share the entry; report it under the head that asked.
                cached.update(cache_file=path, head=head_type,
                              label=_stage_label(stage, head_type, kind))
                result['stages'][stage] = cached
                continue
        if stage == 'roi_head':
            counts = _count_roi_stage(cfg, dataset_cfg, checkpoint, num_images, device)
        else:
            images = _AnnotationPass(dataset, pipeline, pad, num_images, min_gt_size)
            iterator = _with_progress(images, images.num_images) if progress else images
            head.to(device)
            counts = (count_anchors if kind == 'anchors' else count_points)(
                head, iterator, device=device)
            counts['skipped_images'] = images.skipped
        num_classes = parts['num_classes']
        entry = dict(version=CACHE_VERSION, key=key, stage=stage, kind=kind, head=head_type,
                     label=_stage_label(stage, head_type, kind), num_classes=num_classes,
                     dataset=info, config=parts, counts=counts, **_finish(counts, num_classes))
        if path:
            _write_json(path, entry)
            entry['cache_file'] = path
        result['stages'][stage] = entry
    return result


def _with_progress(iterable, total: int):
    from mmengine.utils import ProgressBar
    bar = ProgressBar(total)
    for item in iterable:
        yield item
        bar.update()


def _count_roi_stage(cfg: Config, dataset_cfg: ConfigDict, checkpoint: str,
                     num_images: Optional[int], device: str) -> dict:
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    model_cfg = copy.deepcopy(cfg.model)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.to(device).eval()
    dataset = _build_dataset(dataset_cfg, pipeline=None)
    return count_roi_candidates(model, cfg, dataset, num_images)


# -- reporting ------------------------------------------------------------------------------------

def _fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def format_table(stats: dict) -> str:
    """A Markdown table of :func:`get_imbalance_stats`' result (one row per stage)."""
    info = stats['dataset']
    lines = [f"dataset: {info['name']} ({info['num_images']} training images, "
             f"{len(info['classes'])} classes; {info['ann_file']})", '',
             '| stage | images | fg / img | bg / img | ignored / img | outside / img | bg : fg '
             '| C | pi* | bias |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for entry in stats['stages'].values():
        ratio = entry['bg_per_fg']
        lines.append(
            f"| {entry['label']} | {entry['counts']['images']} | {entry['fg_per_image']:.1f} | "
            f"{entry['bg_per_image']:.1f} | {entry['ignored_per_image']:.1f} | "
            f"{entry['outside_per_image']:.1f} | {'-' if ratio is None else f'{ratio:,.0f} : 1'} | "
            f"{entry['num_classes']} | {_fmt(entry['prior'], '.4g')} | "
            f"{_fmt(entry['bias'], '.3f')} |")
    return '\n'.join(lines)


def summary_line(entry: dict) -> str:
    """One line for logs: stage, counts, pi* and bias."""
    counts = entry['counts']
    return (f"{entry['label']}: fg={counts['fg']} bg={counts['bg']} ignored={counts['ignored']} "
            f"outside={counts['outside']} over {counts['images']} images, "
            f"C={entry['num_classes']}, "
            f"pi*={_fmt(entry['prior'], '.6g')}, bias={_fmt(entry['bias'], '.4f')}")


__all__ = ['STAGES', 'DEFAULT_CACHE_DIR', 'available_stages', 'count_anchors', 'count_points',
           'count_roi_candidates', 'format_table', 'geometric_pipeline', 'get_imbalance_stats',
           'summary_line', 'train_dataset_cfg']

"""The cache: one JSON file per stage, ``<cache_dir>/<dataset>_<stage>_<key>.json``.

The key hashes the dataset (annotation file path, size and modification time, filter and class
settings) and the config parts the counts depend on (the built prior generator and assigner,
``allowed_border``, the geometric train pipeline, ``pad_size_divisor``, ``min_gt_size``, the class
count, the seed and image limit; for ``roi_head`` also the checkpoint file and the proposal
settings). So a changed dataset or config gets fresh statistics, while configs that differ only
elsewhere (a baseline and its Sampling-Free row) share them. Changing what goes into a key
invalidates every existing cache file: bump :data:`CACHE_VERSION` when the counting changes.
"""
import hashlib
import json
import os
import os.path as osp
import tempfile
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import Config, ConfigDict

DEFAULT_CACHE_DIR = osp.join('work_dirs', 'imbalance_stats')
#: Bump when the counting changes, so old cache files are not reused.
CACHE_VERSION = 1
#: The fields of :func:`dataset_info` that identify the dataset in the key.
DATASET_KEY_FIELDS = ('ann_file', 'ann_file_size', 'ann_file_mtime_ns', 'filter_cfg', 'classes',
                      'num_images')


def describe(obj, depth: int = 0):
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
        return [describe(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if hasattr(obj, '__dict__'):
        state = {k: v for k, v in vars(obj).items() if not k.startswith('_') and not callable(v)}
        return {'type': type(obj).__name__, **describe(state, depth + 1)}
    return type(obj).__name__


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def dataset_name(ann_file: str) -> str:
    """``data/trees/annotations/instances_train.json`` -> ``trees-instances_train``."""
    parts = osp.abspath(ann_file).split(os.sep)
    stem = osp.splitext(parts[-1])[0]
    if len(parts) >= 3 and parts[-2] == 'annotations':
        return f'{parts[-3]}-{stem}'
    return stem


def dataset_info(dataset, dataset_cfg: ConfigDict, num_images: Optional[int]) -> dict:
    """The dataset's identity (for the key) and what the table reports about it."""
    ann_file = osp.abspath(dataset.ann_file)
    stat = os.stat(ann_file)
    classes = list(dataset.metainfo.get('classes', ()))
    return dict(
        name=dataset_name(ann_file), ann_file=ann_file, ann_file_size=stat.st_size,
        ann_file_mtime_ns=stat.st_mtime_ns, type=dataset_cfg.get('type'),
        filter_cfg=describe(dataset_cfg.get('filter_cfg')), classes=classes,
        num_images=min(len(dataset), num_images) if num_images else len(dataset))


def _file_id(path: str) -> dict:
    stat = os.stat(path)
    return dict(path=osp.abspath(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def stage_key_parts(cfg: Config, stage: str, head, kind: str, pipeline: List[dict], pad: int,
                    seed: int, num_images: Optional[int], checkpoint: Optional[str],
                    min_gt_size: Optional[float]) -> dict:
    """The config parts ``stage``'s counts depend on (stored in the entry as ``config``)."""
    parts = dict(version=CACHE_VERSION, stage=stage, kind=kind, pipeline=describe(pipeline),
                 pad_size_divisor=pad, seed=seed, num_images=num_images)
    if stage == 'roi_head':
        model = cfg.model
        parts.update(checkpoint=_file_id(checkpoint),
                     rpn_proposal=describe(model.train_cfg.rpn_proposal),
                     rcnn_assigner=describe(model.train_cfg.rcnn.assigner),
                     rcnn_sampler=describe(model.train_cfg.rcnn.get('sampler')),
                     num_classes=model.roi_head.bbox_head.num_classes)
    else:
        parts.update(num_classes=head.num_classes,
                     prior_generator=describe(head.prior_generator))
        if kind == 'anchors':
            parts.update(assigner=describe(head.assigner),
                         allowed_border=head.train_cfg.get('allowed_border', -1))
        else:
            parts.update(regress_ranges=describe(head.regress_ranges),
                         center_sampling=head.center_sampling,
                         center_sample_radius=head.center_sample_radius)
    # Last, so that the stored ``config`` keeps the key order of earlier cache files.
    parts['min_gt_size'] = min_gt_size
    return parts


def stage_key(info: dict, parts: dict) -> str:
    """The key of a stage entry: a hash of the dataset's identity and the config parts."""
    dataset_key = {k: info[k] for k in DATASET_KEY_FIELDS}
    return _hash(dict(dataset=dataset_key, config=parts))


def cache_path(cache_dir: Optional[str], info: dict, stage: str, key: str) -> Optional[str]:
    """The entry's file in ``cache_dir`` (None when caching is disabled)."""
    return osp.join(cache_dir, f'{info["name"]}_{stage}_{key}.json') if cache_dir else None


def read_entry(path: Optional[str], key: str) -> Optional[dict]:
    """The entry cached at ``path``, or None when there is none with this key."""
    if not path or not osp.isfile(path):
        return None
    with open(path) as f:
        cached = json.load(f)
    return cached if cached.get('key') == key else None


def write_entry(path: str, entry: dict) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.json', dir=osp.dirname(path) or '.')
    with os.fdopen(fd, 'w') as f:
        json.dump(entry, f, indent=1)
    os.replace(tmp, path)  # atomic: concurrent ranks never read half a file

"""The embedded benchmark datasets: prepared on first use under ``data/<name>/``, then verified.

``prepare('trees')`` converts deepforest's bundled NEON photos; ``prepare('shapes')`` generates the
synthetic set. Both write COCO json (``annotations/instances_{train,val}.json``) plus ``images/``,
and a ``manifest.json`` that records the generator version, the box counts and the pycocotools
GT-against-itself AP (must be 1.0). Preparation is idempotent, runs under a file lock (several
ranks or processes may ask at once) and builds in a temporary folder that is renamed into place,
so an interrupted run never leaves a half-written dataset behind.

``EmbeddedCocoDataset`` is mmdet's ``CocoDataset`` plus that first-use preparation, so a mini
config trains through ``tools/train.py``, ``mim train`` or a distributed launcher alike with no
separate data step.
"""
import fcntl
import json
import os
import shutil
import tempfile
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from . import coco_format, shapes, trees

# Bump a version when its generator's output changes: data of another version is rebuilt.
EMBEDDED = {
    'trees': dict(build=trees.build, classes=trees.CLASSES, version=1),
    'shapes': dict(build=shapes.build, classes=shapes.CLASSES, version=3),
}
SPLITS = ('train', 'val')


def ann_file(root: str, split: str) -> str:
    return os.path.join(root, 'annotations', f'instances_{split}.json')


def _check_name(name: str) -> dict:
    if name not in EMBEDDED:
        raise KeyError(f"unknown embedded dataset '{name}'; choose one of {sorted(EMBEDDED)}")
    return EMBEDDED[name]


def read_manifest(root: str) -> Optional[dict]:
    path = os.path.join(root, 'manifest.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def is_prepared(name: str, root: str) -> bool:
    manifest = read_manifest(root)
    return (manifest is not None and manifest.get('name') == name
            and manifest.get('version') == _check_name(name)['version']
            and all(os.path.isfile(ann_file(root, s)) for s in SPLITS))


def prepare(name: str, root: Optional[str] = None, force: bool = False) -> dict:
    """Build ``name`` under ``root`` (default ``data/<name>``) unless there; return its manifest."""
    spec = _check_name(name)
    root = root or os.path.join('data', name)
    root = root.rstrip('/')
    if not force and is_prepared(name, root):
        return read_manifest(root)
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, f'.{os.path.basename(root)}.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_prepared(name, root):  # another process finished it meanwhile
            return read_manifest(root)
        tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(root)}-', dir=parent)
        try:
            splits = spec['build'](tmp)
            os.makedirs(os.path.join(tmp, 'annotations'))
            manifest = dict(name=name, version=spec['version'], classes=list(spec['classes']))
            for split, coco in splits.items():
                with open(ann_file(tmp, split), 'w') as f:
                    json.dump(coco, f)
                ap = coco_format.self_ap(ann_file(tmp, split))
                if ap < 0.999:
                    raise RuntimeError(f'{name}/{split}: ground truth scored against itself gives '
                                       f'AP {ap:.3f} instead of 1.0; the generator is broken')
                manifest[split] = dict(images=len(coco['images']),
                                       boxes=len(coco['annotations']), self_ap=ap)
            with open(os.path.join(tmp, 'manifest.json'), 'w') as f:
                json.dump(manifest, f, indent=2)
            if os.path.exists(root):
                shutil.rmtree(root)
            os.rename(tmp, root)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    return read_manifest(root)


@DATASETS.register_module()
class EmbeddedCocoDataset(CocoDataset):
    """``CocoDataset`` over an embedded benchmark, prepared under ``data_root`` on first use.

    Args:
        embedded (str): ``'trees'`` or ``'shapes'``.
        Others as ``CocoDataset``; ``data_root`` is where the data is (or will be) written.
    """

    def __init__(self, *args, embedded: str = 'trees', data_root: str = '', **kwargs):
        prepare(embedded, data_root or os.path.join('data', embedded))
        super().__init__(*args, data_root=data_root, **kwargs)

"""The embedded benchmark datasets: prepared on first use under ``data/<name>/``, then verified.

``prepare('trees')`` converts deepforest's bundled NEON photos; ``prepare('shapes')`` generates the
synthetic set. Both write COCO json (``annotations/instances_{train,val}.json``) plus ``images/``,
and a ``manifest.json`` that records the generator version, the box counts, the pycocotools
GT-against-itself AP (must be 1.0) and a fingerprint of the files. Preparation is idempotent, runs
under a file lock (several ranks or processes may ask at once) and builds in a temporary folder
that is renamed into place, so an interrupted run never leaves a half-written dataset behind.

Every use checks the files against the manifest (the sha256 of each annotation file, the names and
sizes of the images: milliseconds), because mmdet's loader trains on an edited or damaged file
without a word. A mismatch is an error that names the file and the command that rebuilds it; the
data is never rebuilt silently, which would overwrite the user's edits.

``EmbeddedCocoDataset`` is ``CheckedCocoDataset`` (mmdet's ``CocoDataset`` reporting the boxes it
drops) plus that first-use preparation, so a mini config trains through ``tools/train.py``,
``mim train`` or a distributed launcher alike with no separate data step.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from typing import Optional

from mmdet.registry import DATASETS

from . import coco_format, shapes, trees
from .checked_coco import CheckedCocoDataset

# Bump a version when its generator's output changes: data of another version is rebuilt.
EMBEDDED = {
    'trees': dict(build=trees.build, classes=trees.CLASSES, version=1),
    'shapes': dict(build=shapes.build, classes=shapes.CLASSES, version=4),
}
SPLITS = ('train', 'val')
# The manifest key of the files' fingerprint (see ``fingerprint``).
INTEGRITY = 'integrity'


class EmbeddedDataError(RuntimeError):
    """Prepared data whose files do not match its manifest; the message names the file and the
    command that rebuilds it."""


def ann_file(root: str, split: str) -> str:
    return os.path.join(root, 'annotations', f'instances_{split}.json')


def _check_name(name: str) -> dict:
    if name not in EMBEDDED:
        raise KeyError(f"unknown embedded dataset '{name}'; choose one of {sorted(EMBEDDED)}")
    return EMBEDDED[name]


def rebuild_command(name: str, root: str) -> str:
    """The command that rebuilds ``name`` at ``root``."""
    parent, base = os.path.split(os.path.normpath(root))
    if base != name:  # prepare_data.py writes <root>/<name> only
        return f"mmdet_imbalance.datasets.prepare('{name}', '{root}', force=True)"
    return f'python tools/prepare_data.py {name} --force' + (
        '' if parent == 'data' else f" --root {parent or '.'}")


def read_manifest(root: str) -> Optional[dict]:
    path = os.path.join(root, 'manifest.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as err:
            name = os.path.basename(os.path.normpath(root))
            raise EmbeddedDataError(f'{path}: not valid json ({err}). '
                                    f'{rebuild_command(name, root)} rebuilds the dataset.') from err


def _sha256(path: str) -> Optional[str]:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(root: str) -> dict:
    """What the manifest records of the files: the sha256 of each annotation file, and of the
    image folder's sorted file names and sizes (a stat is milliseconds where reading the images
    would take seconds on every use; an edited image almost always changes size)."""
    images = os.path.join(root, 'images')
    entries = sorted((e.name, e.stat().st_size) for e in os.scandir(images)
                     if e.is_file()) if os.path.isdir(images) else []
    listing = ''.join(f'{name}\t{size}\n' for name, size in entries).encode()
    return dict(annotations={os.path.relpath(ann_file(root, s), root): _sha256(ann_file(root, s))
                             for s in SPLITS},
                images=dict(files=len(entries), sha256=hashlib.sha256(listing).hexdigest()))


def verify(name: str, root: str, manifest: dict) -> dict:
    """Check ``root``'s files against ``manifest``'s fingerprint; return the manifest.

    A manifest without its fingerprint is refused: its files cannot be told apart from edited
    ones, and recording their hashes now would make an edit look genuine."""
    if not isinstance(manifest.get(INTEGRITY), dict):
        raise EmbeddedDataError(
            f"{os.path.join(root, 'manifest.json')}: has no '{INTEGRITY}' block (the hashes of "
            'the files it was prepared with; deleted, or written by a version before manifests '
            'kept them), so an edited file cannot be told from a prepared one. '
            f'{rebuild_command(name, root)} rebuilds the dataset.')
    recorded, actual = manifest[INTEGRITY], fingerprint(root)
    changed = [os.path.join(root, rel) for rel, digest in recorded['annotations'].items()
               if actual['annotations'].get(rel) != digest]
    if actual['images'] != recorded['images']:
        changed.append(f"{os.path.join(root, 'images')}/ ({actual['images']['files']} files where "
                       f"{recorded['images']['files']} were prepared, or their sizes differ)")
    if changed:
        raise EmbeddedDataError(
            f"{' and '.join(changed)}: content differs from what "
            f"{os.path.join(root, 'manifest.json')} recorded when the data was prepared (edited or "
            'damaged). '
            f'{rebuild_command(name, root)} rebuilds the dataset, overwriting any edit; it is never'
            ' rebuilt silently.')
    return manifest


@contextlib.contextmanager
def _lock(root: str):
    """An exclusive lock on preparing ``root``, shared by every process and rank."""
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, f'.{os.path.basename(root)}.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def is_prepared(name: str, root: str) -> bool:
    manifest = read_manifest(root)
    return (manifest is not None and manifest.get('name') == name
            and manifest.get('version') == _check_name(name)['version']
            and all(os.path.isfile(ann_file(root, s)) for s in SPLITS))


def prepare(name: str, root: Optional[str] = None, force: bool = False) -> dict:
    """Build ``name`` under ``root`` (default ``data/<name>``) unless there; return its manifest.

    Prepared data is checked against its manifest's fingerprint; a mismatch raises
    ``EmbeddedDataError`` (``force=True`` rebuilds).
    """
    spec = _check_name(name)
    root = root or os.path.join('data', name)
    root = root.rstrip('/')
    if not force and is_prepared(name, root):
        return verify(name, root, read_manifest(root))
    parent = os.path.dirname(os.path.abspath(root))
    with _lock(root):
        if not force and is_prepared(name, root):  # another process finished it meanwhile
            return verify(name, root, read_manifest(root))
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
            manifest[INTEGRITY] = fingerprint(tmp)
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
class EmbeddedCocoDataset(CheckedCocoDataset):
    """``CheckedCocoDataset`` over an embedded benchmark, prepared under ``data_root`` on first use
    and checked against its manifest on every use.

    Args:
        embedded (str): ``'trees'`` or ``'shapes'``.
        Others as ``CocoDataset``; ``data_root`` is where the data is (or will be) written.
    """

    def __init__(self, *args, embedded: str = 'trees', data_root: str = '', **kwargs):
        root = data_root or os.path.join('data', embedded)
        prepare(embedded, root)
        self.repair_hint = f'{rebuild_command(embedded, root.rstrip("/"))} rebuilds it.'
        super().__init__(*args, data_root=data_root, **kwargs)

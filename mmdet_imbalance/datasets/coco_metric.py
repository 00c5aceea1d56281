"""mmdet's ``CocoMetric`` scores the boxes the loader trains on: corrupt boxes leave its ground
truth too.

``CheckedCocoDataset`` drops (and reports) a box that is not a box: non-finite or malformed
coordinates, a width or height <= 0, a box outside its image, a ``category_id`` the file does not
define. ``CocoMetric`` reads the annotation file itself, so it kept scoring those boxes as
ground truth that no prediction can match: perfect predictions of the 242 intact boxes of a
``trees`` val file with 4 corrupted ones scored 0.980, not 1.000.

A COCO user expects a clean file to be scored exactly as pycocotools scores it, so that the
numbers compare with every published COCO result. So nothing else changes: boxes under 1 px and
boxes with ``area`` <= 0 are legal COCO annotations and stay in the ground truth (the official
evaluation keeps them; mmdet's loader does not train on them, as before), ``iscrowd`` and
``ignore`` regions stay, and a file without corrupt boxes is scored bit for bit as before. The
boxes left out are counted in a warning that names the file.

:func:`install` applies this to ``CocoMetric`` itself, once, when the package is imported (as
``cpu_autocast`` does for mmcv's ops): every config and entry point (``mim test``, a user's
config with ``type='CocoMetric'``) gets it, and no config changes, so run settings stay the same.
"""
import functools
import logging
from collections import Counter

from mmengine.logging import print_log

from .checked_coco import NON_FINITE, NON_POSITIVE, OUTSIDE, UNKNOWN_CATEGORY, drop_reason

#: The loader's reasons that make an annotation not a box; only those leave the ground truth.
CORRUPT = (NON_FINITE, NON_POSITIVE, OUTSIDE, UNKNOWN_CATEGORY)


def remove_corrupt_boxes(coco) -> Counter:
    """Remove from a loaded COCO api the annotations :data:`CORRUPT` names, rebuild its index,
    and return the count per reason."""
    removed = Counter()
    kept = []
    for ann in coco.dataset.get('annotations', []):
        image = coco.imgs.get(ann.get('image_id'))
        reason = None
        if image is not None and not ann.get('ignore', False):
            reason = drop_reason(ann, image['width'], image['height'], coco.cats, coco.cats)
        if reason in CORRUPT:
            removed[reason] += 1
        else:
            kept.append(ann)
    if removed:
        coco.dataset['annotations'] = kept
        categories = dict(coco.cats)  # sort_categories may have reordered them after loading
        coco.createIndex()
        coco.cats = categories
    return removed


def install() -> None:
    """Make ``CocoMetric`` leave corrupt boxes out of the ground truth it loads (idempotent)."""
    from mmdet.evaluation.metrics import CocoMetric
    if getattr(CocoMetric.__init__, 'leaves_out_corrupt_boxes', False):
        return
    original = CocoMetric.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self._coco_api is None:
            return
        removed = remove_corrupt_boxes(self._coco_api)
        if removed:
            ann_file = kwargs.get('ann_file', args[0] if args else None)
            reasons = ', '.join(f'{n} {reason}' for reason, n in removed.most_common())
            print_log(f'{ann_file}: the evaluation leaves out {sum(removed.values())} ground-truth '
                      f'boxes that the loader drops as corrupt ({reasons}); they are neither '
                      'trained on nor scored', logger='current', level=logging.WARNING)

    __init__.leaves_out_corrupt_boxes = True
    CocoMetric.__init__ = __init__

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

:func:`leave_out_corrupt_boxes` applies this to a built ``CocoMetric``, and
``ImbalanceTableHook`` applies it to every ``CocoMetric`` of a run's validation and test loops
when the run starts (every row config has the hook, ``mim train`` and ``mim test`` included). No
config changes, so run settings stay the same, and importing the package leaves mmdet's
``CocoMetric`` as installed.
"""
import logging
from collections import Counter
from typing import Optional

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


def leave_out_corrupt_boxes(metric, ann_file: Optional[str] = None) -> Counter:
    """Remove from a built ``CocoMetric``'s ground truth the boxes the loader drops as corrupt,
    with a warning that names ``ann_file`` (the file the metric was built on) and counts them;
    returns the count per reason (empty for a clean file, or a metric without an annotation
    file). Idempotent."""
    coco = getattr(metric, '_coco_api', None)
    if coco is None:
        return Counter()
    removed = remove_corrupt_boxes(coco)
    if removed:
        reasons = ', '.join(f'{n} {reason}' for reason, n in removed.most_common())
        print_log(f'{ann_file or "the annotation file"}: the evaluation leaves out {sum(removed.values())} '
                  'ground-truth boxes that the loader drops as corrupt '
                  f'({reasons}); they are neither trained on nor scored', logger='current',
                  level=logging.WARNING)
    return removed


def leave_out_corrupt_boxes_of(runner) -> None:
    """:func:`leave_out_corrupt_boxes` for every ``CocoMetric`` of the runner's built validation
    and test loops (loops still given as configs are left as they are)."""
    from mmdet.evaluation.metrics import CocoMetric
    from mmengine.runner import BaseLoop
    for loop, key in ((getattr(runner, '_val_loop', None), 'val_evaluator'),
                      (getattr(runner, '_test_loop', None), 'test_evaluator')):
        evaluator = getattr(loop, 'evaluator', None) if isinstance(loop, BaseLoop) else None
        built = runner.cfg.get(key) or {}
        # The evaluator builds one metric per config entry, in order.
        entries = list(built) if isinstance(built, (list, tuple)) else [built]
        for index, metric in enumerate(getattr(evaluator, 'metrics', ())):
            if isinstance(metric, CocoMetric):
                entry = entries[index] if index < len(entries) else {}
                leave_out_corrupt_boxes(metric, entry.get('ann_file'))

"""``CheckedCocoDataset``: mmdet's ``CocoDataset`` that reports dropped boxes and bad files.

mmdet's loader (``CocoDataset.parse_data_info``) drops a box that is degenerate, lies outside its
image or has a category outside the dataset's classes without a word, so an annotation file with
corrupted boxes trains those images as background while the log looks normal. This subclass counts
the dropped boxes per reason and reports them once per annotation file as a warning in mmengine's
log. It also drops boxes with non-finite coordinates: mmdet drops NaN through its overlap test but
keeps a box whose width is +inf, which then trains on an infinite target.

An annotation file that is not COCO json (empty, truncated, without ``categories``) is an error
that names the file, instead of a bare ``JSONDecodeError ... char 0`` or ``KeyError``.
"""
import logging
import math
import os.path as osp
from collections import Counter
from typing import List, Optional, Union

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

# Why a box is dropped, tested in this order: a box counts under the first reason that applies.
NON_FINITE = 'non-finite or malformed coordinates'
NON_POSITIVE = 'non-positive width or height'
UNDER_1PX = 'width or height under 1 px'
OUTSIDE = 'outside the image'
NO_AREA = 'area <= 0'
UNKNOWN_CATEGORY = "category_id not in the file's categories"
OTHER_CLASS = "category not among the dataset's classes"


class AnnotationFileError(ValueError):
    """An annotation file that cannot be read as COCO detection json; the message names it."""


def drop_reason(ann: dict, width: float, height: float, file_cat_ids, cat_ids) -> Optional[str]:
    """Why a (non-ignored) COCO annotation cannot train, or None when it can.

    Covers every test of mmdet's ``CocoDataset.parse_data_info`` (so nothing it drops goes
    uncounted) plus non-finite coordinates.
    """
    try:
        x, y, w, h = (float(v) for v in ann.get('bbox'))
    except (TypeError, ValueError):  # no bbox, None entries, or not four numbers
        return NON_FINITE
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return NON_FINITE
    if w <= 0 or h <= 0:
        return NON_POSITIVE
    if w < 1 or h < 1:
        return UNDER_1PX
    if min(x + w, width) <= max(x, 0) or min(y + h, height) <= max(y, 0):
        return OUTSIDE
    area = ann.get('area')
    if isinstance(area, (int, float)) and area <= 0:
        return NO_AREA
    if ann.get('category_id') not in file_cat_ids:
        return UNKNOWN_CATEGORY
    if ann['category_id'] not in cat_ids:
        return OTHER_CLASS
    return None


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """``CocoDataset`` that reports the boxes it drops and names an unreadable annotation file.

    A drop-in replacement for ``type='CocoDataset'``: the kept boxes, labels and images are
    exactly mmdet's, except that boxes with non-finite coordinates are dropped too.
    """

    # What the messages tell the user to do about a bad file; the embedded datasets say how to
    # rebuild theirs.
    repair_hint = 'Fix or regenerate the annotation file.'
    # (file, counts) already reported in this process: the train, val and test loaders of one
    # file, and every rank's copy, warn once.
    _reported = set()

    def load_data_list(self) -> List[dict]:
        self._dropped = Counter()
        self._dropped_categories = Counter()
        self._num_boxes = 0
        self._num_emptied = 0
        try:
            data_list = super().load_data_list()
        except AnnotationFileError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as err:
            raise AnnotationFileError(
                f'{self.ann_file}: cannot be read as a COCO detection annotation file '
                f'({type(err).__name__}: {err}); it must be a json object with "images", '
                f'"annotations" and "categories". {self.repair_hint}') from err
        self._report_dropped()
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """mmdet's parsing of the boxes this class does not drop (and count) itself."""
        img = raw_data_info['raw_img_info']
        anns = raw_data_info['raw_ann_info']
        kept = []
        for ann in anns:
            reason = None if ann.get('ignore', False) else drop_reason(
                ann, img['width'], img['height'], self.coco.cats, self.cat_ids)
            if reason is None:
                kept.append(ann)
                continue
            self._dropped[reason] += 1
            if reason == UNKNOWN_CATEGORY:
                self._dropped_categories[f"id {ann.get('category_id')!r}"] += 1
            elif reason == OTHER_CLASS:
                self._dropped_categories[repr(self.coco.cats[ann['category_id']].get('name'))] += 1
        self._num_boxes += len(anns)
        if len(kept) < len(anns) and not any(not a.get('ignore', False) for a in kept):
            self._num_emptied += 1
        return super().parse_data_info(dict(raw_data_info, raw_ann_info=kept))

    def _report_dropped(self) -> None:
        key = (osp.abspath(str(self.ann_file)), tuple(sorted(self._dropped.items())))
        if not self._dropped or key in CheckedCocoDataset._reported:
            return
        CheckedCocoDataset._reported.add(key)
        reasons = ', '.join(f'{n} {reason}' for reason, n in self._dropped.most_common())
        message = (f'{self.ann_file}: dropped {sum(self._dropped.values())} of {self._num_boxes} '
                   f'boxes: {reasons}.')
        if self._dropped_categories:
            names = [name for name, _ in self._dropped_categories.most_common(5)]
            more = len(self._dropped_categories) - len(names)
            message += (f' Categories dropped: {", ".join(names)}' + (f' and {more} more'
                        if more else '') + f' (classes: {list(self.metainfo["classes"])}).')
        if self._num_emptied:
            message += (f' {self._num_emptied} images lost every box and train as pure '
                        'background.')
        print_log(f'{message} {self.repair_hint}', logger='current', level=logging.WARNING)

"""Writing COCO-format detection annotations; the GT-against-itself check every dataset passes."""
import contextlib
import io
from typing import List

import numpy as np


def new_split() -> dict:
    return dict(images=[], annotations=[])


def add_image(split: dict, file_name: str, width: int, height: int, boxes: np.ndarray,
              labels: np.ndarray) -> None:
    """Append one image and its (x1, y1, x2, y2) boxes with 0-based labels to a split."""
    image_id = len(split['images']) + 1
    split['images'].append(dict(id=image_id, file_name=file_name, width=int(width),
                                height=int(height)))
    for box, label in zip(np.asarray(boxes).tolist(), np.asarray(labels).tolist()):
        w, h = box[2] - box[0], box[3] - box[1]
        split['annotations'].append(dict(
            id=len(split['annotations']) + 1, image_id=image_id, category_id=int(label) + 1,
            bbox=[round(box[0], 2), round(box[1], 2), round(w, 2), round(h, 2)],
            area=round(w * h, 2), iscrowd=0))


def finish(split: dict, classes: List[str]) -> dict:
    """The COCO dict of a split, with category ids 1..C in the order of ``classes``."""
    return dict(images=split['images'], annotations=split['annotations'],
                categories=[dict(id=i + 1, name=c) for i, c in enumerate(classes)])


def self_ap(ann_file: str) -> float:
    """COCO bbox AP of the ground truth scored against itself with pycocotools (1.0 if sound).

    Catches degenerate boxes, wrong category ids and id collisions, which all lower it.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        dets = [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=a['bbox'],
                     score=1.0) for a in gt.dataset['annotations']]
        if not dets:
            raise ValueError(f'{ann_file}: has no annotations to check')
        evaluator = COCOeval(gt, gt.loadRes(dets), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])

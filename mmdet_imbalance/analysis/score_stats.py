"""How a detector's scores sit against a test score threshold (``tools/score_stats.py``).

A ranking loss (AP, aLRP, RS Loss) orders scores without pinning their scale: its terms depend
only on differences between logits. COCO AP needs only the order, but the test pipeline first
drops every detection under ``test_cfg.score_thr``, so a well-ranked model whose scores all sit
low loses the objects it found. These statistics show that directly, from the detections file a
test writes (``--cfg-options test_evaluator.outfile_prefix=<prefix>``, run with
``model.test_cfg.score_thr=0`` so that nothing is cut before counting):

* each ground-truth object's **best score**: the highest score of a detection of its class with
  IoU >= ``iou_thr`` (0 when none); its median and the share of objects above the threshold;
* the highest detection score of the whole set.

docs/methods/rs-loss.md ("Mini against COCO") uses them.
"""
import json
from collections import defaultdict
from typing import Dict, List

import numpy as np
from pycocotools import mask as mask_utils


def best_object_scores(annotations: List[dict], detections: List[dict],
                       iou_thr: float = 0.5) -> np.ndarray:
    """For each annotation (COCO dicts, ``iscrowd`` ones left out), the highest score of a
    detection of the same image and category with IoU >= ``iou_thr``; 0 where there is none."""
    dets = defaultdict(list)
    for det in detections:
        dets[det['image_id'], det['category_id']].append(det)
    best = []
    for ann in annotations:
        if ann.get('iscrowd', 0):
            continue
        found = dets.get((ann['image_id'], ann['category_id']), [])
        if not found:
            best.append(0.)
            continue
        # pycocotools' IoU of COCO [x, y, w, h] boxes, as its evaluation computes it
        ious = mask_utils.iou([d['bbox'] for d in found], [ann['bbox']], [0])[:, 0]
        scores = np.array([d['score'] for d in found], float)
        hits = scores[ious >= iou_thr]
        best.append(float(hits.max()) if hits.size else 0.)
    return np.array(best, float)


def score_stats(ann_file: str, det_file: str, score_thr: float = 0.05,
                iou_thr: float = 0.5) -> Dict[str, float]:
    """The statistics of the module docstring for one COCO annotation file and one detections
    file (``<prefix>.bbox.json``)."""
    with open(ann_file) as f:
        annotations = json.load(f)['annotations']
    with open(det_file) as f:
        detections = json.load(f)
    if not isinstance(detections, list):
        raise ValueError(f'{det_file} is not a COCO detections list (a .bbox.json file)')
    best = best_object_scores(annotations, detections, iou_thr)
    return dict(objects=int(best.size),
                median_best_score=float(np.median(best)) if best.size else float('nan'),
                share_above_thr=float((best > score_thr).mean()) if best.size else float('nan'),
                share_found=float((best > 0).mean()) if best.size else float('nan'),
                max_score=max((float(d['score']) for d in detections), default=float('nan')))

"""``shapes``: a generated multi-class set with COCO-like foreground-background imbalance.

Filled shapes of three classes (``circle``, ``square``, ``triangle``) on cluttered 256 px canvases.
The background has hard negatives: textured noise, line segments, outlined polygons, and *filled*
distractors (hexagons, diamonds, crosses, rings) of the same colours and sizes as the objects, so
a detector must tell shapes apart rather than find blobs; some lines are drawn over the objects
(partial occlusion). 4-8 objects of 16-56 px per canvas keep a RetinaNet's anchors above 100
negatives per positive and an RPN's above 500 (``tools/imbalance_stats.py``,
docs/imbalance_stats.md), while a from-scratch detector learns the set within the mini schedule
(docs/calibration.md).

The whole canvas is the network input (no resize or crop), so an iteration's cost is fixed by
``size``. The val split is large (500 canvases, about 3,000 boxes) so that the seed-to-seed spread
of a row's AP is below one AP point.

Everything is drawn from ``numpy.random.RandomState(seed)`` with OpenCV, so the same arguments give
byte-identical files on every machine.
"""
import os
from typing import Dict

import cv2
import numpy as np

from . import coco_format

CLASSES = ('circle', 'square', 'triangle')


def _clutter(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Smooth coloured noise plus lines and outlined distractor polygons."""
    low = rng.randint(0, 256, size=(size // 32, size // 32, 3)).astype(np.uint8)
    canvas = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, size=canvas.shape)
    canvas = np.clip(canvas.astype(np.float32) * 0.6 + 50 + noise, 0, 255).astype(np.uint8)
    for _ in range(rng.randint(6, 14)):
        p1, p2 = rng.randint(0, size, 2), rng.randint(0, size, 2)
        color = tuple(int(c) for c in rng.randint(0, 256, 3))
        cv2.line(canvas, tuple(map(int, p1)), tuple(map(int, p2)), color, int(rng.randint(1, 4)))
    for _ in range(rng.randint(2, 5)):
        center, radius = rng.randint(20, size - 20, 2), rng.randint(8, 30)
        sides = rng.choice([6, 12])
        angles = np.linspace(0, 2 * np.pi, sides, endpoint=False) + rng.uniform(0, np.pi)
        scale = np.where(np.arange(sides) % 2 == 0, 1.0, 0.45) if sides == 12 else 1.0
        pts = np.stack([center[0] + radius * scale * np.cos(angles),
                        center[1] + radius * scale * np.sin(angles)], 1).astype(np.int32)
        color = tuple(int(c) for c in rng.randint(0, 256, 3))
        cv2.polylines(canvas, [pts], True, color, 2)
    return canvas


def _draw_object(canvas: np.ndarray, rng: np.random.RandomState, label: int, box) -> None:
    x1, y1, x2, y2 = [int(round(v)) for v in box]
    color = tuple(int(c) for c in rng.randint(40, 256, 3))
    if label == 0:
        cv2.ellipse(canvas, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0,
                    0, 360, color, -1)
    elif label == 1:
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    else:
        pts = np.array([[(x1 + x2) // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=np.int32)
        cv2.fillPoly(canvas, [pts], color)


def _draw_distractor(canvas: np.ndarray, rng: np.random.RandomState, box) -> None:
    """A filled non-object shape the size of an object: hexagon, diamond, cross or ring."""
    x1, y1, x2, y2 = [int(round(v)) for v in box]
    cx, cy, rx, ry = (x1 + x2) // 2, (y1 + y2) // 2, (x2 - x1) // 2, (y2 - y1) // 2
    color = tuple(int(c) for c in rng.randint(40, 256, 3))
    kind = rng.randint(4)
    if kind in (0, 1):  # hexagon (close to a circle), diamond (a square turned by 45 degrees)
        sides = 6 if kind == 0 else 4
        angles = np.linspace(0, 2 * np.pi, sides, endpoint=False) + (0 if kind else np.pi / 6)
        pts = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(canvas, [pts], color)
    elif kind == 2:  # cross
        t = max(2, (x2 - x1) // 4)
        cv2.rectangle(canvas, (x1, cy - t), (x2 - 1, cy + t), color, -1)
        cv2.rectangle(canvas, (cx - t, y1), (cx + t, y2 - 1), color, -1)
    else:  # ring: a circle's outline, thick
        cv2.ellipse(canvas, (cx, cy), (rx, ry), 0, 0, 360, color, max(2, rx // 3))


def _occlude(canvas: np.ndarray, rng: np.random.RandomState, size: int, count: int) -> None:
    """Thin lines drawn after the objects, crossing some of them."""
    for _ in range(count):
        p1, p2 = rng.randint(0, size, 2), rng.randint(0, size, 2)
        color = tuple(int(c) for c in rng.randint(0, 256, 3))
        cv2.line(canvas, tuple(map(int, p1)), tuple(map(int, p2)), color, int(rng.randint(1, 3)))


def _place(rng: np.random.RandomState, size: int, count: int, min_size: int, max_size: int):
    """Up to ``count`` non-overlapping boxes (sparse placement; retries bounded)."""
    boxes = []
    for _ in range(count * 20):
        if len(boxes) == count:
            break
        side = rng.randint(min_size, max_size + 1)
        aspect = rng.uniform(0.75, 1.33)
        w, h = int(side * np.sqrt(aspect)), int(side / np.sqrt(aspect))
        x1, y1 = rng.randint(0, size - w), rng.randint(0, size - h)
        box = np.array([x1, y1, x1 + w, y1 + h], dtype=np.float32)
        if all(box[0] >= b[2] + 4 or box[2] + 4 <= b[0] or box[1] >= b[3] + 4 or box[3] + 4 <= b[1]
               for b in boxes):
            boxes.append(box)
    return np.array(boxes, dtype=np.float32).reshape(-1, 4)


def _blend(canvas: np.ndarray, draw, opacity: float) -> None:
    """Draw onto a copy of ``canvas`` and blend it back at ``opacity``: a shape that lets the
    clutter show through has weaker edges than an opaque one."""
    layer = canvas.copy()
    draw(layer)
    cv2.addWeighted(layer, opacity, canvas, 1.0 - opacity, 0, dst=canvas)


def build(out_dir: str, num_train: int = 1000, num_val: int = 500, size: int = 256,
          objects=(4, 8), object_size=(16, 56), distractors=(3, 7), occluders=(1, 4),
          opacity=(0.55, 1.0), seed: int = 0) -> Dict[str, dict]:
    """Write ``images/`` and return {'train': coco_dict, 'val': coco_dict} (deterministic).

    ``objects``, ``distractors`` and ``occluders`` are inclusive (low, high) counts per canvas;
    ``object_size`` bounds the side of objects and distractors in pixels; every object and
    distractor is blended over the clutter at an opacity drawn from ``opacity`` (version 4: with
    opaque shapes and fewer distractors a Faster R-CNN passed 80 AP, docs/calibration.md).
    """
    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    result = {}
    for split, count, split_seed in (('train', num_train, seed), ('val', num_val, seed + 1)):
        rng = np.random.RandomState(split_seed)
        coco = coco_format.new_split()
        for index in range(count):
            canvas = _clutter(rng, size)
            num_objects = rng.randint(objects[0], objects[1] + 1)
            num_distractors = rng.randint(distractors[0], distractors[1] + 1)
            # Objects and distractors are placed together so that they never overlap.
            boxes = _place(rng, size, num_objects + num_distractors, *object_size)
            fake, boxes = boxes[:num_distractors], boxes[num_distractors:]
            for box in fake:
                _blend(canvas, lambda layer: _draw_distractor(layer, rng, box),
                       rng.uniform(*opacity))
            labels = rng.randint(0, len(CLASSES), size=len(boxes))
            for box, label in zip(boxes, labels):
                _blend(canvas, lambda layer: _draw_object(layer, rng, int(label), box),
                       rng.uniform(*opacity))
            _occlude(canvas, rng, size, rng.randint(occluders[0], occluders[1] + 1))
            file_name = f'{split}_{index:05d}.png'
            cv2.imwrite(os.path.join(out_dir, 'images', file_name), canvas)
            coco_format.add_image(coco, file_name, size, size, boxes, labels)
        result[split] = coco_format.finish(coco, CLASSES)
    return result


#: The pretext classes of :func:`build_pretext`: the three object classes, then the two kinds of
#: negative a detector meets on a shapes canvas.
PRETEXT_CLASSES = CLASSES + ('distractor', 'background')
#: The pretext set's default seed. The detection splits use ``seed`` and ``seed + 1`` (0 and 1), so
#: no pretext crop is ever drawn from the random stream of a detection canvas.
PRETEXT_SEED = 1000


def build_pretext(num: int, size: int = 72, object_size=(16, 56), seed: int = PRETEXT_SEED):
    """``(images, labels)``: ``num`` crops of ``size`` px (uint8, N x size x size x 3, BGR) and their
    class indices into :data:`PRETEXT_CLASSES` (int64, balanced in expectation).

    The shapes family's ImageNet analogue, for pretraining the mini backbone
    (:mod:`mmdet_imbalance.engine.pretrain`): each crop is the detection set's clutter with one
    object, one filled distractor or nothing, at the objects' scales (16-56 px), and the same
    occluding lines. Deterministic: the same arguments give byte-identical arrays.
    """
    # _place draws sides up to max * sqrt(1.33) and needs a free pixel row beside the widest box.
    if int(object_size[1] * np.sqrt(1.33)) >= size:
        raise ValueError(f'object_size {object_size} does not fit a {size} px crop: '
                         f'size must exceed {int(object_size[1] * np.sqrt(1.33))}')
    rng = np.random.RandomState(seed)
    images = np.empty((num, size, size, 3), dtype=np.uint8)
    labels = rng.randint(0, len(PRETEXT_CLASSES), size=num).astype(np.int64)
    for index, label in enumerate(labels):
        canvas = _clutter(rng, size)
        if label < len(PRETEXT_CLASSES) - 1:
            box = _place(rng, size, 1, *object_size)[0]
            if label < len(CLASSES):
                _draw_object(canvas, rng, int(label), box)
            else:
                _draw_distractor(canvas, rng, box)
        _occlude(canvas, rng, size, rng.randint(0, 3))
        images[index] = canvas
    return images, labels

"""``trees``: real NEON aerial RGB tiles with tree-crown boxes, converted from the deepforest wheel.

deepforest 2.1.0 (MIT) ships four annotated orthophotos in ``deepforest/data/`` as PASCAL-VOC XML:
two Yellowstone crops (2299x2472 with 574 trees, 1249x1035 with 279) and two 400x400 sites
(OSBS_029 with 61, SOAP_061 with 37). The package is located with ``importlib.util.find_spec`` and
never imported: importing it pulls in torchvision, transformers and more.

Split. Every image is cut into a train band (top 3/4) and a val band (bottom 1/4), so train and val
share the sites and the season but no pixel. Splitting by source image instead (train on the big
Yellowstone image, validate on the other sites) left a from-scratch CPU model near AP 0.01 (domain
shift plus overfitting); the within-image band split reached AP 0.11 after 270 iterations.

Tiles. Each band is cut into non-overlapping windows of about ``tile`` x ``tile`` on a regular grid
(edge windows may be smaller, or up to a quarter larger). A box is kept in
a tile if at least ``min_visible`` of its area lies inside, clipped to the tile; the labels
Tree/Alive/Dead (914/9/28 boxes) are merged into one class, ``tree``, because 37 Dead/Alive boxes
are too few to learn or evaluate a class from.
"""
import importlib.util
import os
import xml.etree.ElementTree as ET
from typing import Dict, Tuple

import cv2
import numpy as np

from . import coco_format

SOURCES = (
    ('2019_YELL_2_528000_4978000_image_crop2.png', '2019_YELL_2_528000_4978000_image_crop2.xml'),
    ('2019_YELL_2_541000_4977000_image_crop.png', '2019_YELL_2_541000_4977000_image_crop.xml'),
    ('OSBS_029.png', 'OSBS_029.xml'),
    ('SOAP_061.png', 'SOAP_061.xml'),
)
CLASSES = ('tree', )
VAL_FRACTION = 0.25


def deepforest_data_dir() -> str:
    """The ``deepforest/data`` folder of the installed wheel, without importing deepforest."""
    spec = importlib.util.find_spec('deepforest')
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(
            "The 'trees' dataset is converted from files shipped in the deepforest wheel, which is "
            "not installed. Install it without its heavy dependencies: "
            "pip install --no-deps deepforest==2.1.0 (tools/setup_env.sh does this).")
    folder = os.path.join(os.path.dirname(spec.origin), 'data')
    missing = [f for pair in SOURCES for f in pair if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise FileNotFoundError(
            f'deepforest is installed at {folder} but lacks {missing}; the trees dataset needs '
            'deepforest==2.1.0 (pip install --no-deps --force-reinstall deepforest==2.1.0).')
    return folder


def read_voc_boxes(xml_path: str) -> np.ndarray:
    """(N, 4) float32 boxes x1, y1, x2, y2 in pixel edges from a PASCAL-VOC XML file."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise ValueError(f'{xml_path}: not a valid PASCAL-VOC XML file ({err})') from err
    boxes = []
    for obj in root.iter('object'):
        bb = obj.find('bndbox')
        if bb is None:
            raise ValueError(f'{xml_path}: an <object> has no <bndbox>')
        boxes.append([float(bb.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _grid(start: int, stop: int, tile: int):
    """Non-overlapping windows [a, b) of ``tile`` covering [start, stop).

    A remainder shorter than a quarter tile is merged into the last window instead of becoming a
    sliver, so every box is seen exactly once per split (duplicates would double-count in AP).
    """
    edges = list(range(start, stop, tile)) + [stop]
    if len(edges) > 2 and edges[-1] - edges[-2] < tile // 4:
        del edges[-2]
    return list(zip(edges[:-1], edges[1:]))


def clip_boxes_to_window(boxes: np.ndarray, window: Tuple[int, int, int, int],
                         min_visible: float) -> np.ndarray:
    """Boxes shifted into ``window`` (x0, y0, x1, y1) and clipped; drops those mostly outside."""
    x0, y0, x1, y1 = window
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    clipped = np.stack([
        np.clip(boxes[:, 0], x0, x1), np.clip(boxes[:, 1], y0, y1),
        np.clip(boxes[:, 2], x0, x1), np.clip(boxes[:, 3], y0, y1)], axis=1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (area > 0) & (inside >= min_visible * np.maximum(area, 1e-6)) & (inside > 0)
    return clipped[keep] - np.array([x0, y0, x0, y0], dtype=np.float32)


def build(out_dir: str, tile: int = 400, min_visible: float = 0.5) -> Dict[str, dict]:
    """Write ``images/`` and return {'train': coco_dict, 'val': coco_dict} (deterministic)."""
    src = deepforest_data_dir()
    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    splits = {s: coco_format.new_split() for s in ('train', 'val')}
    for image_name, xml_name in SOURCES:
        image = cv2.imread(os.path.join(src, image_name), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'{os.path.join(src, image_name)}: cannot be decoded as an image')
        boxes = read_voc_boxes(os.path.join(src, xml_name))
        height, width = image.shape[:2]
        val_top = int(round(height * (1 - VAL_FRACTION)))
        bands = dict(train=(0, val_top), val=(val_top, height))
        stem = os.path.splitext(image_name)[0]
        for split, (band_y0, band_y1) in bands.items():
            # Boxes are first clipped to their band, so no box straddles the split boundary.
            band_boxes = clip_boxes_to_window(boxes, (0, band_y0, width, band_y1), min_visible)
            band_boxes += np.array([0, band_y0, 0, band_y0], dtype=np.float32)
            for ty, y1 in _grid(band_y0, band_y1, tile):
                for tx, x1 in _grid(0, width, tile):
                    tile_boxes = clip_boxes_to_window(band_boxes, (tx, ty, x1, y1), min_visible)
                    file_name = f'{stem}_{split}_x{tx}_y{ty}.png'
                    cv2.imwrite(os.path.join(out_dir, 'images', file_name), image[ty:y1, tx:x1])
                    coco_format.add_image(splits[split], file_name, x1 - tx, y1 - ty, tile_boxes,
                                          np.zeros(len(tile_boxes), dtype=np.int64))
    return {s: coco_format.finish(d, CLASSES) for s, d in splits.items()}

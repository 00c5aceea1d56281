"""The embedded datasets: conversion helpers, counts, split hygiene, determinism, self-AP 1.0."""
import hashlib
import json
import os
import re
from collections import defaultdict

import numpy as np
import pytest

from mmdet_imbalance.datasets import embedded, prepare, shapes, trees
from mmdet_imbalance.datasets.coco_format import self_ap


@pytest.fixture(scope='module')
def trees_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'trees')
    prepare('trees', root)
    return root


def _load(root, split):
    with open(embedded.ann_file(root, split)) as f:
        return json.load(f)


def test_read_voc_boxes(tmp_path):
    xml = tmp_path / 'a.xml'
    xml.write_text('<annotation><object><name>Tree</name><bndbox><xmin>1</xmin><ymin>2</ymin>'
                   '<xmax>11</xmax><ymax>22</ymax></bndbox></object></annotation>')
    assert trees.read_voc_boxes(str(xml)).tolist() == [[1, 2, 11, 22]]
    bad = tmp_path / 'bad.xml'
    bad.write_text('<annotation><object>')
    with pytest.raises(ValueError, match='bad.xml'):
        trees.read_voc_boxes(str(bad))


def test_clip_boxes_to_window_keeps_mostly_visible_boxes():
    boxes = np.array([[10, 10, 30, 30],    # inside
                      [90, 10, 110, 30],   # half outside on the right: exactly 50 % visible
                      [95, 10, 115, 30],   # 25 % visible: dropped
                      [200, 200, 210, 210]], dtype=np.float32)  # outside
    out = trees.clip_boxes_to_window(boxes, (0, 0, 100, 100), min_visible=0.5)
    assert out.tolist() == [[10, 10, 30, 30], [90, 10, 100, 30]]
    shifted = trees.clip_boxes_to_window(boxes[:1], (5, 5, 100, 100), min_visible=0.5)
    assert shifted.tolist() == [[5, 5, 25, 25]]


def test_trees_counts_and_self_ap(trees_root):
    source = sum(len(trees.read_voc_boxes(os.path.join(trees.deepforest_data_dir(), x)))
                 for _, x in trees.SOURCES)
    assert source == 951  # as shipped in deepforest 2.1.0
    manifest = embedded.read_manifest(trees_root)
    kept = manifest['train']['boxes'] + manifest['val']['boxes']
    # Tiles do not overlap, so a box is kept at most once, unless it is cut exactly in half; only
    # boxes cut by a band or tile edge with under half their area on one side can be lost.
    assert 930 <= kept <= source
    assert manifest['val']['boxes'] / kept == pytest.approx(0.25, abs=0.05)
    for split in ('train', 'val'):
        assert manifest[split]['self_ap'] == pytest.approx(1.0)
        assert self_ap(embedded.ann_file(trees_root, split)) == pytest.approx(1.0)


def test_trees_train_and_val_share_no_pixel(trees_root):
    extent = defaultdict(lambda: defaultdict(list))
    for split in ('train', 'val'):
        for image in _load(trees_root, split)['images']:
            stem, y = re.match(r'(.+)_(?:train|val)_x\d+_y(\d+)\.png', image['file_name']).groups()
            extent[stem][split].append((int(y), int(y) + image['height']))
    assert len(extent) == len(trees.SOURCES)
    for stem, splits in extent.items():
        train_bottom = max(b for _, b in splits['train'])
        val_top = min(t for t, _ in splits['val'])
        assert train_bottom <= val_top, stem
    digests = {s: {hashlib.md5(open(os.path.join(trees_root, 'images', i['file_name']), 'rb')
                               .read()).hexdigest() for i in _load(trees_root, s)['images']}
               for s in ('train', 'val')}
    assert not digests['train'] & digests['val']


def test_boxes_lie_inside_their_images(trees_root):
    for split in ('train', 'val'):
        coco = _load(trees_root, split)
        size = {i['id']: (i['width'], i['height']) for i in coco['images']}
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            width, height = size[a['image_id']]
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= width + 1e-6 and y + h <= height + 1e-6


def test_shapes_is_deterministic_dense_multiclass_and_self_consistent(tmp_path):
    a = shapes.build(str(tmp_path / 'a'), num_train=8, num_val=2, seed=3)
    b = shapes.build(str(tmp_path / 'b'), num_train=8, num_val=2, seed=3)
    assert a == b
    for name in os.listdir(tmp_path / 'a' / 'images'):
        assert (tmp_path / 'a' / 'images' / name).read_bytes() == \
            (tmp_path / 'b' / 'images' / name).read_bytes()
    train = a['train']
    labels = {ann['category_id'] for ann in train['annotations']}
    assert labels == {1, 2, 3}
    per_image = defaultdict(int)
    for ann in train['annotations']:
        per_image[ann['image_id']] += 1
        # Objects of 16-56 px, aspect 0.75-1.33: each side within [16 * 0.86, 56 * 1.16].
        assert 13 <= min(ann['bbox'][2:]) and max(ann['bbox'][2:]) <= 65
    # 4-8 objects per canvas, except where the canvas left no room for all of them.
    assert all(1 <= n <= 8 for n in per_image.values())
    assert sum(per_image.values()) / len(train['images']) >= 4
    for split, coco in a.items():
        path = tmp_path / f'{split}.json'
        path.write_text(json.dumps(coco))
        assert self_ap(str(path)) == pytest.approx(1.0)


def test_prepare_is_idempotent_and_rejects_unknown_names(tmp_path, trees_root):
    before = os.path.getmtime(os.path.join(trees_root, 'manifest.json'))
    prepare('trees', trees_root)
    assert os.path.getmtime(os.path.join(trees_root, 'manifest.json')) == before
    with pytest.raises(KeyError, match="unknown embedded dataset 'coco'"):
        prepare('coco', str(tmp_path / 'x'))


def test_missing_deepforest_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(trees.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(ModuleNotFoundError, match='pip install --no-deps deepforest==2.1.0'):
        trees.deepforest_data_dir()


def test_manifest_fingerprints_the_files_and_every_box_loads(trees_root):
    """Pins: a fresh manifest records the files' fingerprint (checked on every use), and the
    checked loader keeps every generated box (no drop warning on clean data)."""
    from mmdet_imbalance.datasets import EmbeddedCocoDataset
    manifest = embedded.read_manifest(trees_root)
    assert manifest['integrity'] == embedded.fingerprint(trees_root)
    for split in ('train', 'val'):
        dataset = EmbeddedCocoDataset(embedded='trees', data_root=f'{trees_root}/',
                                      ann_file=f'annotations/instances_{split}.json',
                                      data_prefix=dict(img='images/'),
                                      metainfo=dict(classes=trees.CLASSES), pipeline=[])
        assert not dataset._dropped
        assert sum(len(dataset.get_data_info(i)['instances'])
                   for i in range(len(dataset))) == manifest[split]['boxes']

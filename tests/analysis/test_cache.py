"""The statistics cache: files, keys, read-back."""
import json
import os.path as osp

from mmdet_imbalance.analysis import get_imbalance_stats
from mmdet_imbalance.analysis.cache import dataset_name, stage_key


def test_cache_is_read_back_and_keyed_by_the_annotation_file(toy, tmp_path):
    cfg = toy.retina_config()
    cache = str(tmp_path / 'cache')
    first = get_imbalance_stats(cfg, cache_dir=cache)['stages']['bbox_head']
    path = first['cache_file']
    assert osp.dirname(path) == cache and osp.basename(path).startswith('toy-train_bbox_head_')
    # Tamper with the cached counts: a cached read returns them, a recomputation does not.
    with open(path) as f:
        cached = json.load(f)
    cached['counts']['fg'] = 999
    with open(path, 'w') as f:
        json.dump(cached, f)
    assert get_imbalance_stats(cfg, cache_dir=cache)['stages']['bbox_head']['counts']['fg'] == 999
    fresh = get_imbalance_stats(cfg, cache_dir=cache, use_cache=False)['stages']['bbox_head']
    assert fresh['counts']['fg'] == 2 and fresh['key'] == first['key']
    # A changed annotation file (one box fewer: the crowd box) gets a new key and file.
    toy.write_dataset(crowd=False)
    changed = get_imbalance_stats(cfg, cache_dir=cache)['stages']['bbox_head']
    assert changed['key'] != first['key'] and changed['cache_file'] != path
    assert changed['counts']['gt_ignored_boxes'] == 0


def test_key_hashing_is_stable():
    # Pinned: a change of the hashing would silently orphan every existing cache file.
    info = dict(name='toy-train', ann_file='/data/toy/annotations/train.json', ann_file_size=1,
                ann_file_mtime_ns=2, filter_cfg=None, classes=['a'], num_images=3, type='X')
    assert stage_key(info, dict(version=1, stage='bbox_head', seed=0)) == '93ab2c24d20a67b4'


def test_dataset_name_from_the_annotation_file():
    assert dataset_name('data/trees/annotations/instances_train.json') == 'trees-instances_train'
    assert dataset_name('/somewhere/train.json') == 'train'

"""Integrity of the row registry and of ``--rows`` selection."""
import os.path as osp

import pytest

from mmdet_imbalance.table.rows import (BENCHMARKS, GROUPS, ROWS, SPEED_ARROWS,
                                        find_row_by_config, get_row, rows_for, select_rows)


def test_keys_and_configs_are_unique():
    keys = [row.key for row in ROWS]
    assert len(keys) == len(set(keys))
    configs = [path for row in ROWS for path in row.configs.values()]
    assert len(configs) == len(set(configs))
    # The hook finds its row by the config's basename, so basenames must be unique too.
    assert len({osp.basename(c) for c in configs}) == len(configs)


def test_baselines_exist_and_match_the_detector():
    for row in ROWS:
        if row.baseline is None:
            continue
        base = get_row(row.baseline)
        assert base.is_baseline, f'{row.key}: baseline {base.key} has a baseline itself'
        assert base.detector == row.detector, row.key
        # A row can only be compared on a benchmark where its baseline also has a config.
        assert set(row.configs) <= set(base.configs), row.key


def test_fields_are_valid():
    for row in ROWS:
        assert row.group in GROUPS, row.key
        assert row.configs and set(row.configs) <= set(BENCHMARKS), row.key
        assert row.method_cfg_keys, f'{row.key}: no method_cfg_keys to count'
        for bench, path in row.configs.items():
            folder = {'mini': 'configs/mini/', 'coco': 'configs/zoo/' if row.zoo_check
                      else 'configs/table1/'}[bench]
            assert path.startswith(folder) and path.endswith('.py'), (row.key, path)
        if row.zoo_check:
            assert set(row.configs) == {'coco'} and row.zoo_ap is not None, row.key
        if row.published is not None:
            assert row.published.speed in SPEED_ARROWS, row.key
            if row.group == 'beyond the review':
                # Later papers: a ΔAP only where a baseline at the same recipe is published.
                assert row.is_baseline <= (row.published.delta_ap is None), row.key
            else:
                assert (row.published.delta_ap is None) == row.is_baseline, row.key


def test_review_rows_are_all_present():
    # The review's Table 1 (mmdetection rows for baselines): 11 solutions.
    published = {(row.name, row.detector): row.published.ap for row in ROWS
                 if row.published and row.group != 'beyond the review'}
    assert published == {
        ('Biased Sampling', 'Faster R-CNN'): 36.4, ('OHEM', 'Faster R-CNN'): 36.6,
        ('IoU-balanced sampling', 'Faster R-CNN'): 36.8, ('Focal Loss', 'RetinaNet'): 35.6,
        ('GHM-C', 'RetinaNet'): 35.8, ('ISR', 'Faster R-CNN'): 37.9,
        ('AP Loss', 'RetinaNet'): 35.0, ('DR Loss', 'RetinaNet'): 37.2,
        ('ResObj', 'RetinaNet'): 35.4, ('Sampling-Free', 'RetinaNet'): 36.6,
        ('Sampling-Free', 'Faster R-CNN'): 38.4}
    # DR Loss is printed under Faster R-CNN in the review; the correction must be stated.
    assert 'Faster R-CNN' in get_row('dr-loss').note


def test_find_row_by_config():
    assert find_row_by_config('configs/mini/faster-rcnn_mini_ohem.py').key == 'ohem'
    assert find_row_by_config('retinanet_r50_fpn_1x_coco.py').key == 'retinanet'
    assert find_row_by_config('something_else.py') is None
    assert get_row('ohem').benchmark_of('faster-rcnn_r50_fpn_1x_coco_ohem.py') == 'coco'


def test_unknown_row_error_lists_valid_names():
    with pytest.raises(ValueError) as err:
        select_rows('ohem,no-such-row', 'mini')
    message = str(err.value)
    assert "'no-such-row'" in message
    for row in ROWS:
        assert row.key in message
    with pytest.raises(ValueError, match='valid rows'):
        get_row('nope')


def test_zoo_rows_are_coco_only():
    with pytest.raises(ValueError, match='no mini config'):
        select_rows('libra-rcnn', 'mini')
    assert get_row('libra-rcnn') in rows_for('coco')


def test_selection_adds_baselines_first():
    chosen = select_rows('OHEM, ghm-c', 'mini')
    assert [r.key for r in chosen] == ['faster-rcnn', 'retinanet', 'ohem', 'ghm-c']
    # A review name shared by several rows selects all of them (case and punctuation ignored).
    keys = {r.key for r in select_rows('sampling free', 'mini')}
    assert {'sampling-free-retinanet', 'sampling-free-faster-rcnn', 'fcos-sampling-free'} <= keys
    assert {r.key for r in select_rows('baselines', 'mini')} == {'faster-rcnn', 'retinanet',
                                                                 'fcos', 'atss'}
    assert len(select_rows('all', 'coco')) == len(ROWS)


def test_beyond_selects_the_group_with_its_baselines():
    beyond = {r.key for r in ROWS if r.group == 'beyond the review' and not r.zoo_check}
    assert {'atss', 'gfl', 'rs-atss', 'rs-faster-rcnn', 'alrp-loss'} <= beyond
    chosen = select_rows('beyond', 'mini')
    keys = [r.key for r in chosen]
    # The group, plus the baselines of its rows from other groups, baselines first.
    assert set(keys) == beyond | {'faster-rcnn', 'retinanet'}
    first_method = next(i for i, r in enumerate(chosen) if not r.is_baseline)
    assert all(not r.is_baseline for r in chosen[first_method:])
    assert [r.key for r in select_rows('beyond,ohem', 'mini')].count('faster-rcnn') == 1
    assert 'beyond' in str(pytest.raises(ValueError, select_rows, 'nope', 'mini').value)


def test_beyond_rows_published_numbers_and_sources():
    published = {r.key: (r.published.ap, r.published.delta_ap) for r in ROWS
                 if r.published and r.group == 'beyond the review'}
    assert published == {'rs-atss': (39.9, 0.5), 'rs-faster-rcnn': (39.6, 2.2),
                         'alrp-loss': (39.0, None)}
    assert get_row('atss').zoo_ap == 39.4 and get_row('gfl').zoo_ap == 40.2
    for key in published:
        row = get_row(key)
        assert 'repo' in row.published.codebase and 'docs/methods/' in row.note
    assert get_row('gfl').baseline == get_row('rs-atss').baseline == 'atss'

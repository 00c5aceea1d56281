"""config_diff: flattening merged configs to dotted keys and the delta between two configs."""
import copy
import pickle

import pytest
from mmengine.config import Config

from mmdet_imbalance.table.config_diff import MISSING, config_delta, flatten_config


def test_flatten_config_dotted_keys_lists_and_delete():
    cfg = dict(
        a=dict(b=1, c=[1, 2], d=[dict(type='X'), dict(type='Y', k=[])]),
        e=dict(_delete_=True, type='Z'),
        f={},
        g=())
    assert flatten_config(cfg) == {
        'a.b': 1,
        'a.c': (1, 2),
        'a.d.0.type': 'X',
        'a.d.1.type': 'Y',
        'a.d.1.k': (),
        'e.type': 'Z',
        'f': {},
        'g': ()
    }
    assert flatten_config(Config(cfg)) == flatten_config(cfg)


def test_config_delta_on_a_delete_replaced_dict():
    base = Config(
        dict(
            loss=dict(type='FocalLoss', gamma=2.0, alpha=0.25, loss_weight=1.0),
            work_dir='a',
            flag=True,
            lr=0.02))
    row = Config(
        dict(
            loss=dict(type='FocalLoss', gamma=2.0, alpha=0.25, loss_weight=1.0),
            work_dir='b',
            flag=1,
            lr=0.02))
    row.merge_from_dict(dict(loss=dict(_delete_=True, type='GHMC', bins=30, loss_weight=1)))
    assert config_delta(
        row, base, ignore=['work_dir']) == {
            'loss.type': ('FocalLoss', 'GHMC'),
            'loss.gamma': (2.0, MISSING),
            'loss.alpha': (0.25, MISSING),
            'loss.bins': (MISSING, 30),
            'flag': (True, 1)
        }
    assert config_delta(base, base) == {}
    with pytest.raises(TypeError, match='ignore'):
        config_delta(row, base, ignore='work_dir')
    with pytest.raises(TypeError, match='row_cfg'):
        config_delta([1], base)


def test_missing_is_one_readable_value_that_survives_copies():
    assert repr(MISSING) == '<missing>'
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert copy.deepcopy(MISSING) is MISSING

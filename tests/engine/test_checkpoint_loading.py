"""Full unpickling of a checkpoint is scoped to its loading, never set for the process
(mmdet_imbalance/engine/checkpoint_loading.py)."""
import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner

from mmdet_imbalance.engine.checkpoint_loading import (FULL_UNPICKLING, OwnCheckpointRunner,
                                                       own_checkpoint_loading)


@pytest.fixture
def unset(monkeypatch):
    monkeypatch.delenv(FULL_UNPICKLING, raising=False)


@pytest.fixture
def checkpoint(tmp_path, unset):
    """A file holding what mmengine pickles next to the weights (a message-hub history)."""
    path = str(tmp_path / 'iter_1.pth')
    torch.save(dict(state_dict={'w': torch.ones(2)}, message_hub=HistoryBuffer([1.0], [1])), path)
    return path


def test_full_unpickling_only_inside_the_scope(checkpoint):
    with pytest.raises(pickle.UnpicklingError):
        torch.load(checkpoint)
    with own_checkpoint_loading():
        assert torch.equal(torch.load(checkpoint)['state_dict']['w'], torch.ones(2))
    assert FULL_UNPICKLING not in os.environ
    with pytest.raises(pickle.UnpicklingError):
        torch.load(checkpoint)


def test_a_value_the_environment_has_is_kept(monkeypatch):
    monkeypatch.setenv(FULL_UNPICKLING, '0')
    with own_checkpoint_loading():
        assert os.environ[FULL_UNPICKLING] == '0'
    assert os.environ[FULL_UNPICKLING] == '0'


def test_runner_loads_inside_the_scope(unset, monkeypatch):
    seen = []
    monkeypatch.setattr(Runner, 'load_or_resume',
                        lambda self: seen.append(os.environ.get(FULL_UNPICKLING)))
    OwnCheckpointRunner.load_or_resume(OwnCheckpointRunner.__new__(OwnCheckpointRunner))
    assert seen == ['1'] and FULL_UNPICKLING not in os.environ


def test_every_row_config_resumes_through_mmdets_own_script_too(monkeypatch):
    """mmdet's tools/train.py builds ``RUNNERS.build(cfg)`` when a config names ``runner_type``:
    every row config names this runner, which the registry resolves, and the name is not part of
    a run's identity (records made before it was named stay valid)."""
    import glob
    import os.path as osp

    from mmengine.registry import RUNNERS

    from mmdet_imbalance.config_builder import build_runner_config, load_config
    from mmdet_imbalance.engine.run_record import run_settings
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    rows = [p for p in glob.glob(osp.join(repo, 'configs', '*', '*.py'))]
    assert len(rows) > 30
    for path in rows:
        assert load_config(path).get('runner_type') == 'mmdet.OwnCheckpointRunner', path
    cfg = build_runner_config(osp.join(repo, 'configs/mini/retinanet_mini.py'),
                              check_files=False)
    # What mmdet's script does with it, before any default scope exists.
    monkeypatch.setattr(OwnCheckpointRunner, 'from_cfg', classmethod(lambda cls, cfg: cls))
    assert RUNNERS.build(cfg) is OwnCheckpointRunner
    named = run_settings(cfg)
    cfg.pop('runner_type')
    assert run_settings(cfg) == named

"""ImbalanceTableHook against a stand-in runner: what it records, logs and writes, and resuming."""
import json
import logging
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.logging import MessageHub

from mmdet_imbalance.engine.table_hook import ImbalanceTableHook, evaluated_ap


class Visualizer:
    def __init__(self):
        self.scalars = []

    def add_scalars(self, scalars, step=0, **kwargs):
        self.scalars.append((dict(scalars), step))


class Runner:
    """The attributes of mmengine's Runner the hook uses."""

    def __init__(self, work_dir, filename, max_iters=6, name='hook-test'):
        self.cfg = Config(dict(randomness=dict(seed=3),
                               val_evaluator=dict(type='CocoMetric', metric='bbox')),
                          filename=filename, cfg_text='# stand-in')
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f'{name}-{work_dir}')
        self.visualizer = Visualizer()
        self.logger = logging.getLogger('hook-test')
        self.iter, self.epoch, self.max_iters = 0, 0, max_iters
        self._train_loop = object()
        self.world_size = 1


def train(hook, runner, times, val_at=(), ap=0.3):
    for t in times:
        # IterTimerHook has put this iteration's time in the hub; runner.iter is its index.
        runner.message_hub.update_scalar('train/time', t)
        hook.after_train_iter(runner, runner.iter)
        runner.iter += 1
        if runner.iter in val_at:
            hook.after_val_epoch(runner, {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': 0.5})


def read(path):
    with open(path) as f:
        return json.load(f)


def test_records_times_metrics_and_baseline_comparison(tmp_path):
    # A finished baseline run beside this one, as tools/table1.py and mmdet lay them out.
    base_dir = tmp_path / 'faster-rcnn_mini' / 'imbalance'
    base_dir.mkdir(parents=True)
    (base_dir / 'run.json').write_text(json.dumps(dict(
        status='finished', ap=28.0, iter_times=[1.0] * 4 + [0.2] * 6, unsteady_iters=[])))
    runner = Runner(tmp_path / 'faster-rcnn_mini_ohem', 'configs/mini/faster-rcnn_mini_ohem.py')
    hook = ImbalanceTableHook(warmup_iters=2)
    hook.before_run(runner)
    assert hook.row.key == 'ohem' and hook.hyperparams is None  # no model in this stand-in cfg
    hook.before_train(runner)
    train(hook, runner, [2.0, 2.0, 0.3, 0.3, 0.3], val_at=(5, ))
    assert hook.iter_times == [2.0, 2.0, 0.3, 0.3, 0.3]
    # AP, ΔAP and the speed ratio land in the message hub's val scalars (the val log line).
    hub = runner.message_hub
    assert hub.get_scalar('val/imbalance/ap').current() == pytest.approx(30.0)
    assert hub.get_scalar('val/imbalance/delta_ap').current() == pytest.approx(2.0)
    # median(0.3, 0.3, 0.3) / median(0.2 x 6) after 2 warm-up iterations each
    assert hub.get_scalar('val/imbalance/speed_ratio').current() == pytest.approx(1.5)
    # The iteration after the evaluation is not steady-state.
    train(hook, runner, [9.0])
    assert 5 in hook.unsteady_iters
    hook.after_train(runner)
    run = read(osp.join(runner.work_dir, 'imbalance', 'run.json'))
    assert run['status'] == 'finished' and run['row'] == 'ohem' and run['seed'] == 3
    assert run['ap'] == pytest.approx(30.0) and run['iter_times'][-1] == 9.0
    assert run['peak_memory_mb'] > 0 and run['memory_source'] == 'cpu_peak_rss'
    progress = read(osp.join(runner.work_dir, 'imbalance', 'progress.json'))
    assert progress['iter'] == 6 and progress['max_iters'] == 6


def test_resume_restores_the_record(tmp_path):
    runner = Runner(tmp_path / 'retinanet_mini', 'configs/mini/retinanet_mini.py', name='r1')
    hook = ImbalanceTableHook()
    hook.before_run(runner)
    train(hook, runner, [1.0, 0.5, 0.5, 0.5])
    checkpoint = dict(meta=dict(iter=3))
    hook.before_save_checkpoint(runner, checkpoint)
    # A new process resumes from the checkpoint taken after 3 iterations.
    resumed = ImbalanceTableHook()
    runner2 = Runner(tmp_path / 'retinanet_mini', 'configs/mini/retinanet_mini.py', name='r2')
    resumed.before_run(runner2)
    resumed.after_load_checkpoint(runner2, checkpoint)
    assert resumed.iter_times == [1.0, 0.5, 0.5] and resumed.resumed_at == [3]
    runner2.iter = 3
    runner2.message_hub.update_scalar('train/time', 4.0)
    resumed.after_train_iter(runner2, 0)
    assert resumed.iter_times == [1.0, 0.5, 0.5, 4.0] and resumed.unsteady_iters == [3]


def test_unknown_config_still_records(tmp_path):
    runner = Runner(tmp_path / 'mine', 'configs/my_experiment.py', max_iters=2, name='u')
    hook = ImbalanceTableHook()
    hook.before_run(runner)
    hook.before_train(runner)
    train(hook, runner, [0.1, 0.1], val_at=(2, ), ap=0.1)
    hook.after_train(runner)
    run = read(osp.join(runner.work_dir, 'imbalance', 'run.json'))
    assert run['row'] is None and run['baseline'] is None and run['ap'] == pytest.approx(10.0)


def test_no_detection_is_ap_zero():
    cfg = Config(dict(val_evaluator=dict(type='CocoMetric', metric=['bbox'])))
    # CocoMetric returns no bbox keys when nothing was detected: that is AP 0, not "unknown".
    assert evaluated_ap({}, cfg) == 0.
    assert evaluated_ap({'coco/bbox_mAP': 0.25}, cfg) == pytest.approx(25.)
    assert evaluated_ap({}, Config(dict(val_evaluator=dict(type='VOCMetric')))) is None


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='progress_interval'):
        ImbalanceTableHook(progress_interval=0)
    with pytest.raises(ValueError, match='warmup_iters'):
        ImbalanceTableHook(warmup_iters=-1)

"""ImbalanceTableHook against a stand-in runner: what it records, logs and writes, resuming, and
the work-dir guard (settings and lock)."""
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.logging import MessageHub

from mmdet_imbalance.engine.run_record import SETTING_KEYS, read_record
from mmdet_imbalance.engine.table_hook import ImbalanceTableHook, evaluated_ap


class Runner:
    """The attributes of mmengine's Runner the hook uses."""

    def __init__(self, work_dir, filename, max_iters=6, name='hook-test'):
        self.cfg = Config(dict(randomness=dict(seed=3), train_cfg=dict(max_iters=max_iters),
                               optim_wrapper=dict(type='OptimWrapper'),
                               val_evaluator=dict(type='CocoMetric', metric='bbox')),
                          filename=filename, cfg_text='# stand-in')
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f'{name}-{work_dir}')
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


def test_records_times_settings_and_metrics(tmp_path):
    runner = Runner(tmp_path / 'faster-rcnn_mini_ohem', 'configs/mini/faster-rcnn_mini_ohem.py')
    hook = ImbalanceTableHook()
    hook.before_run(runner)
    hook.before_train(runner)
    train(hook, runner, [2.0, 2.0, 0.3, 0.3, 0.3], val_at=(5, ))
    assert hook.record.iter_times == [2.0, 2.0, 0.3, 0.3, 0.3]
    # AP lands in the message hub's val scalars (the val log line); no comparison is made here.
    hub = runner.message_hub
    assert hub.get_scalar('val/imbalance/ap').current() == pytest.approx(30.0)
    assert 'val/imbalance/delta_ap' not in hub.log_scalars
    # The iteration after the evaluation is not steady-state.
    train(hook, runner, [9.0])
    assert 5 in hook.record.unsteady_iters
    hook.after_train(runner)
    hook.after_run(runner)
    run = read_record(runner.work_dir)
    assert run.status == 'finished' and run.seed == 3 and run.precision == 'fp32'
    assert run.config_name == 'faster-rcnn_mini_ohem.py'
    assert run.ap == pytest.approx(30.0) and run.iter_times[-1] == 9.0
    assert run.peak_memory_mb > 0 and run.memory_source == 'cpu_peak_rss'
    assert run.environment['packages']['mmdet'] and run.environment['cpu']
    assert set(run.settings) == set(SETTING_KEYS)
    progress = read(osp.join(runner.work_dir, 'imbalance', 'progress.json'))
    assert progress['iter'] == 6 and progress['max_iters'] == 6


def test_resume_restores_the_record(tmp_path):
    runner = Runner(tmp_path / 'retinanet_mini', 'configs/mini/retinanet_mini.py', name='r1')
    hook = ImbalanceTableHook()
    hook.before_run(runner)
    train(hook, runner, [1.0, 0.5, 0.5, 0.5])
    checkpoint = dict(meta=dict(iter=3))
    hook.before_save_checkpoint(runner, checkpoint)
    hook.after_run(runner)
    # A new process resumes from the checkpoint taken after 3 iterations.
    resumed = ImbalanceTableHook()
    runner2 = Runner(tmp_path / 'retinanet_mini', 'configs/mini/retinanet_mini.py', name='r2')
    resumed.before_run(runner2)
    resumed.after_load_checkpoint(runner2, checkpoint)
    assert resumed.record.iter_times == [1.0, 0.5, 0.5] and resumed.record.resumed_at == [3]
    runner2.iter = 3
    runner2.message_hub.update_scalar('train/time', 4.0)
    resumed.after_train_iter(runner2, 0)
    assert resumed.record.iter_times == [1.0, 0.5, 0.5, 4.0]
    assert resumed.record.unsteady_iters == [3]
    resumed.after_run(runner2)


def test_a_work_dir_of_other_settings_is_refused(tmp_path):
    """Regression: a second run with another seed (or dataset, precision, iterations) in the same
    work dir used to overwrite the first run's record and checkpoints."""
    work_dir = tmp_path / 'retinanet_mini'
    first = Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=1, name='s1')
    hook = ImbalanceTableHook()
    hook.before_run(first)
    hook.before_train(first)
    train(hook, first, [0.1], val_at=(1, ))
    hook.after_train(first)
    hook.after_run(first)
    other = Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=1, name='s2')
    other.cfg.randomness.seed = 4
    with pytest.raises(RuntimeError, match=r'other settings \(.*seed: 3 -> 4'):
        ImbalanceTableHook().before_run(other)
    assert read_record(str(work_dir)).seed == 3  # nothing lost
    other.cfg.overwrite_work_dir = True  # tools/train.py --overwrite
    hook = ImbalanceTableHook()
    hook.before_run(other)
    hook.after_run(other)
    same = Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=1, name='s3')
    hook = ImbalanceTableHook()
    hook.before_run(same)  # same settings: a repeat or a resume, accepted
    hook.after_run(same)


def test_a_work_dir_in_training_is_locked(tmp_path):
    """Regression: two trainers of one work dir (an orphaned run and a rerun) used to write the
    same checkpoints and records at once."""
    work_dir = tmp_path / 'retinanet_mini'
    holder = ImbalanceTableHook()
    holder.before_run(Runner(work_dir, 'configs/mini/retinanet_mini.py', name='l1'))
    code = ('import sys; from mmdet_imbalance.engine.run_record import WorkDirLock; '
            'WorkDirLock(sys.argv[1]).acquire()')
    proc = subprocess.run([sys.executable, '-c', code, str(work_dir)], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and f'pid {os.getpid()}' in proc.stderr
    holder.after_run(None)
    proc = subprocess.run([sys.executable, '-c', code, str(work_dir)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_unknown_config_still_records(tmp_path):
    runner = Runner(tmp_path / 'mine', 'configs/my_experiment.py', max_iters=2, name='u')
    hook = ImbalanceTableHook()
    hook.before_run(runner)
    hook.before_train(runner)
    train(hook, runner, [0.1, 0.1], val_at=(2, ), ap=0.1)
    hook.after_train(runner)
    hook.after_run(runner)
    run = read_record(runner.work_dir)
    assert run.config_name == 'my_experiment.py' and run.ap == pytest.approx(10.0)


def test_no_detection_is_ap_zero():
    cfg = Config(dict(val_evaluator=dict(type='CocoMetric', metric=['bbox'])))
    # CocoMetric returns no bbox keys when nothing was detected: that is AP 0, not "unknown".
    assert evaluated_ap({}, cfg) == 0.
    assert evaluated_ap({'coco/bbox_mAP': 0.25}, cfg) == pytest.approx(25.)
    assert evaluated_ap({}, Config(dict(val_evaluator=dict(type='VOCMetric')))) is None


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='progress_interval'):
        ImbalanceTableHook(progress_interval=0)


def test_recording_the_environment_leaves_the_random_stream_alone():
    """Regression: measuring the machine's GFLOP/s drew from torch's global generator in
    before_run, so a run's random stream depended on the hook's internals."""
    import torch
    from mmdet_imbalance.engine.run_record import environment
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    environment()
    assert torch.equal(torch.rand(3), expected)


INTERRUPTED = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from test_table_hook import ImbalanceTableHook, Runner, train
runner = Runner(sys.argv[2], 'configs/mini/retinanet_mini.py', max_iters=10)
hook = ImbalanceTableHook()
hook.before_run(runner)
hook.before_train(runner)
train(hook, runner, [0.5, 0.4, 0.3])
try:
    os.kill(os.getpid(), getattr(signal, sys.argv[3]))
    train(hook, runner, [0.2] * 5)  # the handler runs before the next iteration
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize('sig,code', [('SIGTERM', 128 + 15), ('SIGINT', 130)])
def test_an_interrupt_marks_the_record_and_releases_the_lock(tmp_path, sig, code):
    """Regression: SIGTERM during training left the record at ``status: running``, ``iter: 0``
    and no iteration times; nothing said the run was interrupted."""
    work_dir = tmp_path / 'retinanet_mini'
    proc = subprocess.run([sys.executable, '-c', INTERRUPTED, osp.dirname(__file__),
                           str(work_dir), sig], capture_output=True, text=True)
    assert proc.returncode == code, proc.stderr
    run = read_record(str(work_dir))
    assert run.status == 'interrupted' and run.iter == 3
    assert run.iter_times == [0.5, 0.4, 0.3]
    assert read(osp.join(work_dir, 'imbalance', 'progress.json'))['iter'] == 3
    lock = ('import sys; from mmdet_imbalance.engine.run_record import WorkDirLock; '
            'WorkDirLock(sys.argv[1]).acquire()')
    proc = subprocess.run([sys.executable, '-c', lock, str(work_dir)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    # --resume continues the same run in the same work dir.
    resumed = ImbalanceTableHook()
    resumed.before_run(Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=10,
                              name=f'r{sig}'))
    resumed.after_run(None)


def test_a_test_run_neither_guards_nor_locks_the_work_dir(tmp_path):
    """Regression: ``tools/test.py`` on the work dir of a bf16 training was refused as 'a
    finished run of other settings (precision: bf16 -> fp32)'. Testing records nothing, so the
    hook leaves the work dir to it."""
    work_dir = tmp_path / 'retinanet_mini'
    trained = Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=1, name='t1')
    trained.cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'  # a bf16 run
    hook = ImbalanceTableHook()
    hook.before_run(trained)
    hook.before_train(trained)
    train(hook, trained, [0.1], val_at=(1, ))
    hook.after_train(trained)
    hook.after_run(trained)
    tester = Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=1, name='t2')
    tester._train_loop = None  # Runner.test() builds no training loop
    testing = ImbalanceTableHook()
    testing.before_run(tester)  # no refusal
    assert testing._lock is None
    training = Runner(work_dir, 'configs/mini/retinanet_mini.py', max_iters=1, name='t3')
    with pytest.raises(RuntimeError, match='precision: bf16 -> fp32'):
        ImbalanceTableHook().before_run(training)

"""``ImbalanceTableHook``: every run records what it did, in the run record the table reads.

Every row config switches it on with ``custom_hooks=[dict(type='ImbalanceTableHook')]``, so any
entry point (``tools/train.py``, ``mim train``, a distributed launcher) leaves a
:class:`~mmdet_imbalance.engine.run_record.RunRecord` in ``<work_dir>/imbalance/run.json``: the
run's identifying settings, machine and package versions, the raw per-iteration training times
(the ``train/time`` scalar that ``IterTimerHook`` puts in the message hub every iteration;
mmengine's own logs only keep a moving average), the peak memory, every evaluation and the status.
It also logs ``imbalance/ap`` (``coco/bbox_mAP`` x 100) with each evaluation. Comparisons between
runs (ΔAP, speed ratios, hyper-parameter counts) are computed offline by
:mod:`mmdet_imbalance.table`.

mmengine resets CUDA's peak counter every time it logs, so the hook reads
``torch.cuda.max_memory_allocated`` every iteration, before ``LoggerHook`` runs. On CPU it reads the
process peak RSS, which is per run because the table tool trains every run in its own process.
In a distributed run only rank 0 takes the lock and writes the files; the record's iteration times
are rank 0's and its peak memory is the largest process's (``iter_times_of``, ``peak_memory_of``).

The hook also guards the work dir: it takes an exclusive lock for the run's lifetime (a second
trainer of the same folder fails at once, naming the holder's pid), and it refuses to continue or
overwrite a record whose settings differ from this run's (another dataset, seed, precision,
iteration count or config content), unless the config sets ``overwrite_work_dir=True``
(``tools/train.py --overwrite``).

Resuming (``--resume``) restores the recorded times from the checkpoint, where the hook stores
them, so a killed run continues its record where the checkpoint left it.

When a run starts (training, validation or test alone), the hook also makes its ``CocoMetric``s
leave out the ground-truth boxes that the loader drops as corrupt
(:mod:`mmdet_imbalance.datasets.coco_metric`), so that AP scores what the model trained on.
"""
import os
import os.path as osp
import resource
import signal
import sys
import threading
import time
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import Hook

from mmdet.registry import HOOKS

from mmdet_imbalance.datasets.coco_metric import leave_out_corrupt_boxes_of
from .run_record import (AP_KEY, RunRecord, WorkDirLock, environment, progress_path,
                         read_record, run_settings, settings_diff, write_json_atomic)

CHECKPOINT_KEY = 'imbalance_table_hook'


def peak_cpu_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on
    macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10


@HOOKS.register_module()
class ImbalanceTableHook(Hook):
    """Record the run (settings, times, memory, evaluations) in ``imbalance/run.json``.

    Args:
        progress_interval (int): rewrite ``progress.json`` every this many iterations (and at
            least every 2 seconds).
    """

    # NORMAL runs after IterTimerHook (also NORMAL, registered earlier as a default hook), so the
    # iteration's ``train/time`` is already in the message hub, and before LoggerHook
    # (BELOW_NORMAL), so the ``val/imbalance/ap`` scalar lands in the same log line as the metrics
    # and the CUDA peak is read before LoggerHook resets it.
    priority = 'NORMAL'

    def __init__(self, progress_interval: int = 5) -> None:
        if not isinstance(progress_interval, int) or progress_interval < 1:
            raise ValueError(f'progress_interval must be a positive int, got {progress_interval!r}')
        self.progress_interval = progress_interval
        self.record = RunRecord()
        self._lock: Optional[WorkDirLock] = None
        self._next_unsteady = False
        self._progress_written = 0.
        self._signal_handlers = {}

    # -- set-up -------------------------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Leave corrupt ground truth out of the run's COCO metrics; lock the work dir, check it
        holds no run of other settings, open the record."""
        leave_out_corrupt_boxes_of(runner)
        record = self.record
        record.config = getattr(runner.cfg, 'filename', None)
        record.settings = run_settings(runner.cfg)
        record.environment = environment()
        record.work_dir = osp.abspath(runner.work_dir)
        record.started = time.time()
        record.world_size = runner.world_size
        # A test or a validation alone (tools/test.py, mim test) records nothing and may evaluate
        # a checkpoint of any finished run, so it neither locks nor guards the work dir.
        if not is_main_process() or not self._in_training(runner):
            return
        self._lock = WorkDirLock(runner.work_dir)
        self._lock.acquire()
        previous = read_record(runner.work_dir)
        if previous is not None and not runner.cfg.get('overwrite_work_dir', False):
            diff = settings_diff(previous.settings, record.settings)
            if diff:
                self._lock.release()
                raise RuntimeError(
                    f'{runner.work_dir} holds a {previous.status} run of other settings ('
                    + '; '.join(diff) + '). Train into another --work-dir, or pass '
                    '--overwrite (overwrite_work_dir=True) to replace it.')

    def after_run(self, runner) -> None:
        self._restore_signals()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the measurements of the interrupted run (``--resume``)."""
        state = checkpoint.get(CHECKPOINT_KEY)
        if not state:
            return
        record = self.record
        resumed_iter = int(checkpoint.get('meta', {}).get('iter', len(state['iter_times'])))
        record.iter_times = list(state['iter_times'])[:resumed_iter]
        record.unsteady_iters = [i for i in state['unsteady_iters'] if i < resumed_iter]
        record.evaluations = [e for e in state['evaluations'] if e['iter'] <= resumed_iter]
        record.resumed_at = list(state.get('resumed_at', [])) + [resumed_iter]
        record.peak_memory_mb = float(state.get('peak_memory_mb', 0.))
        # The first iteration after a resume also pays for skipping the consumed batches.
        self._next_unsteady = True

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        record = self.record
        checkpoint[CHECKPOINT_KEY] = dict(
            iter_times=record.iter_times, unsteady_iters=record.unsteady_iters,
            evaluations=record.evaluations, resumed_at=record.resumed_at,
            peak_memory_mb=record.peak_memory_mb)

    def before_train(self, runner) -> None:
        self._reduce_memory()
        self._write_run(runner, status='running')
        self._write_progress(runner)
        self._catch_interrupts(runner)

    # -- interrupts ---------------------------------------------------------------------------
    def _catch_interrupts(self, runner) -> None:
        """SIGTERM and SIGINT end the run as ``interrupted``: the record keeps the iterations
        done and their times, the lock is released, and ``--resume`` continues from the last
        checkpoint. Without this the process died with its record at ``running``."""
        if not is_main_process() or threading.current_thread() is not threading.main_thread():
            return

        def interrupted(signum, frame):
            self._restore_signals()
            self._write_progress(runner)
            self._write_run(runner, status='interrupted')
            self.after_run(runner)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            # Terminated: exit now, as SIGTERM's default does. Unwinding and finalizing torch
            # and mmengine takes CPU seconds, which a process that is told to stop (the table
            # tool dying, a scheduler) may not get for a long time on a busy machine.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)

        self._signal_handlers = {sig: signal.signal(sig, interrupted)
                                 for sig in (signal.SIGTERM, signal.SIGINT)}

    def _restore_signals(self) -> None:
        for sig, handler in self._signal_handlers.items():
            signal.signal(sig, handler)
        self._signal_handlers = {}

    # -- per iteration ------------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Record this iteration's time and the memory peak; refresh progress.json."""
        record = self.record
        hub = runner.message_hub
        if 'train/time' in hub.log_scalars:
            index = runner.iter  # 0-based index of the iteration that just ran
            # Pad so that iter_times[i] is the time of iteration i even if an earlier record is
            # missing (a resume from a checkpoint written without this hook).
            while len(record.iter_times) < index:
                record.unsteady_iters.append(len(record.iter_times))
                record.iter_times.append(float('nan'))
            record.iter_times[index:] = [float(hub.get_scalar('train/time').current())]
            if self._next_unsteady:
                record.unsteady_iters.append(index)
                self._next_unsteady = False
        self._update_memory()
        # Every ``progress_interval`` iterations, and at least every 2 s so that a slow CPU run
        # still shows progress (a few hundred bytes, written atomically).
        if (runner.iter + 1) % self.progress_interval == 0 \
                or time.time() - self._progress_written >= 2.:
            self._write_progress(runner)

    def _update_memory(self) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            peak, self.record.memory_source = (torch.cuda.max_memory_allocated() / 2**20,
                                               'cuda_max_allocated')
        else:
            peak, self.record.memory_source = peak_cpu_rss_mb(), 'cpu_peak_rss'
        self.record.peak_memory_mb = max(self.record.peak_memory_mb, peak)

    def _reduce_memory(self) -> None:
        """The peak memory of the largest process (``RunRecord.peak_memory_of``). A collective:
        called only where every rank passes (before and after training, after each evaluation)."""
        self._update_memory()
        peak = torch.tensor(self.record.peak_memory_mb, dtype=torch.float64)
        all_reduce(peak, op='max')
        self.record.peak_memory_mb = float(peak)

    # -- evaluation ---------------------------------------------------------------------------
    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        """Record the evaluation and log its AP."""
        metrics = {k: float(v) for k, v in (metrics or {}).items()
                   if isinstance(v, (int, float))}
        self._reduce_memory()
        training = self._in_training(runner)
        iteration = runner.iter if training else 0
        ap = evaluated_ap(metrics, runner.cfg)
        record = self.record
        record.evaluations = [e for e in record.evaluations if e['iter'] != iteration]
        record.evaluations.append(dict(iter=iteration, epoch=runner.epoch if training else 0,
                                       metrics=metrics, ap=ap))
        # The next training iteration's timer spans this whole evaluation.
        self._next_unsteady = True
        if ap is None:
            return
        # ``val/`` scalars of the message hub are what LoggerHook writes into the validation line
        # of the text log and of the json/scalars files (it strips the ``val/`` prefix).
        runner.message_hub.update_scalar('val/imbalance/ap', ap)
        self._write_run(runner, status='running')

    # -- end ----------------------------------------------------------------------------------
    def after_train(self, runner) -> None:
        """Close the record: ``finished`` once the last iteration has run."""
        finished = runner.iter >= runner.max_iters
        self._reduce_memory()
        self._write_progress(runner)
        self._write_run(runner, status='finished' if finished else 'stopped')
        if self.record.ap is not None:
            runner.logger.info(f'ImbalanceTableHook: final AP {self.record.ap:.1f}, peak memory '
                               f'{self.record.peak_memory_mb:.0f} MiB, precision '
                               f'{self.record.precision}')

    # -- files --------------------------------------------------------------------------------
    @staticmethod
    def _in_training(runner) -> bool:
        loop = runner._train_loop
        return loop is not None and not isinstance(loop, dict)

    def _write_progress(self, runner) -> None:
        if not is_main_process() or not self._in_training(runner):
            return
        self._progress_written = time.time()
        write_json_atomic(progress_path(runner.work_dir),
                          dict(iter=runner.iter, max_iters=runner.max_iters, time=time.time(),
                               started=self.record.started))

    def _write_run(self, runner, status: str) -> None:
        if not is_main_process():
            return
        record = self.record
        training = self._in_training(runner)
        last = record.evaluations[-1] if record.evaluations else {}
        record.status = status
        record.iter = runner.iter if training else None
        record.max_iters = runner.max_iters if training else None
        record.updated = time.time()
        record.device = ('cuda' if torch.cuda.is_available() and torch.cuda.is_initialized()
                         else 'cpu')
        record.unsteady_iters = sorted(set(record.unsteady_iters))
        record.final_metrics = last.get('metrics', {})
        record.ap = last.get('ap')
        record.write(runner.work_dir)


def evaluated_ap(metrics: Dict[str, float], cfg) -> Optional[float]:
    """Box AP in points (``coco/bbox_mAP`` x 100) of one evaluation, or None without one.

    mmdet's ``CocoMetric`` returns no ``bbox_*`` key at all when the model made no detection above
    the test score threshold (it logs "The testing results of the whole dataset is empty"), which
    happens early in training. COCO AP with no detection is 0, so a run whose evaluator is a
    ``CocoMetric`` on boxes gets AP 0.0 then, instead of a hole in the table.
    """
    if AP_KEY in metrics:
        return 100. * metrics[AP_KEY]
    evaluators = (cfg.get('val_evaluator') if cfg is not None else None) or []
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    for evaluator in evaluators:
        names = evaluator.get('metric', 'bbox')
        names = [names] if isinstance(names, str) else list(names)
        if evaluator.get('type') == 'CocoMetric' and 'bbox' in names \
                and evaluator.get('prefix', 'coco') == 'coco':
            return 0.
    return None

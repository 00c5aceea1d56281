"""``ImbalanceTableHook``: every Table 1 row reports its own table columns from inside the runner.

Every row config switches it on with ``custom_hooks=[dict(type='ImbalanceTableHook')]``, so a
single ``mim train`` (or ``tools/train.py``) of one row logs, as ``imbalance/...`` keys in the
run's own mmengine text log and scalar files:

* at the start of training, ``imbalance/hyperparams``: the number of hyper-parameters the row's
  method introduces, counted from code by :mod:`mmdet_imbalance.table.hyperparams`;
* after each evaluation, ``imbalance/ap`` (``coco/bbox_mAP`` in AP points, i.e. x100) and, when
  the baseline row's run is found, ``imbalance/delta_ap`` and ``imbalance/speed_ratio``.

The baseline's run is the sibling directory of this run's ``work_dir`` named after the baseline
config's stem (``work_dirs/faster-rcnn_mini/`` next to ``work_dirs/faster-rcnn_mini_ohem/``),
which is both mmdet's default layout and the layout ``tools/table1.py`` uses.

The hook also keeps the raw per-iteration training times (the ``train/time`` scalar that
``IterTimerHook`` puts in the message hub every iteration; mmengine's own logs only keep a
50-iteration moving average) and the peak memory of the run. mmengine resets CUDA's peak counter
every time it logs, so the hook reads ``torch.cuda.max_memory_allocated`` every iteration, before
``LoggerHook`` runs. On CPU it reads the process peak RSS from :mod:`resource`, which is per row
because ``tools/table1.py`` trains every row in its own process.

Files (rank 0 only), read back by :mod:`mmdet_imbalance.table.collect`:

* ``<work_dir>/imbalance/run.json``: row, status (``running`` / ``finished``), iteration times,
  iterations whose time is not steady-state (the first after an evaluation or a resume), peak
  memory, every evaluation, the final metrics, the hyper-parameter count and the baseline
  comparison;
* ``<work_dir>/imbalance/progress.json``: ``iter``, ``max_iters`` and a timestamp, rewritten every
  ``progress_interval`` iterations so the table tool can show progress without parsing logs.

Resuming (``--resume``) restores the recorded times from the checkpoint, where the hook stores
them (``before_save_checkpoint`` / ``after_load_checkpoint``), so a killed run continues its
record where the checkpoint left it.

A config that is no Table 1 row still trains with the hook: it logs AP, times and memory, with no
row information and no baseline comparison.
"""
import json
import os
import os.path as osp
import resource
import sys
import time
from typing import Dict, List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmdet.registry import HOOKS

RUN_FILE = 'run.json'
PROGRESS_FILE = 'progress.json'
RECORD_DIR = 'imbalance'
AP_KEY = 'coco/bbox_mAP'
CHECKPOINT_KEY = 'imbalance_table_hook'
RUN_SCHEMA = 1


def record_dir(work_dir: str) -> str:
    """Folder of a run's table records: ``<work_dir>/imbalance``."""
    return osp.join(work_dir, RECORD_DIR)


def write_json_atomic(path: str, data: dict) -> None:
    """Write JSON through a temporary file and ``os.replace``, so a reader (the table tool polls
    progress.json while the run writes it) never sees a half-written file."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def peak_cpu_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on
    macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10


@HOOKS.register_module()
class ImbalanceTableHook(Hook):
    """Log the row's Table 1 columns (hyper-parameters, AP, ΔAP, speed) and record the raw
    measurements the table tool reads back.

    Args:
        progress_interval (int): rewrite ``progress.json`` every this many iterations (and at
            least every 2 seconds).
        warmup_iters (int, optional): iterations skipped at the start of a run when the hook
            computes the speed ratio it logs; ``None`` uses the table tool's default
            (:data:`mmdet_imbalance.table.collect.WARMUP_ITERS`), so both agree.
        baseline_work_dir (str, optional): the baseline run to compare with; by default the
            sibling directory named after the baseline config's stem.
    """

    # NORMAL runs after IterTimerHook (also NORMAL, registered earlier as a default hook), so the
    # iteration's ``train/time`` is already in the message hub, and before LoggerHook
    # (BELOW_NORMAL), so the ``val/imbalance/*`` scalars land in the same log line as the metrics
    # and the CUDA peak is read before LoggerHook resets it.
    priority = 'NORMAL'

    def __init__(self,
                 progress_interval: int = 5,
                 warmup_iters: Optional[int] = None,
                 baseline_work_dir: Optional[str] = None) -> None:
        if not isinstance(progress_interval, int) or progress_interval < 1:
            raise ValueError(f'progress_interval must be a positive int, got {progress_interval!r}')
        if warmup_iters is not None and (not isinstance(warmup_iters, int) or warmup_iters < 0):
            raise ValueError(f'warmup_iters must be a non-negative int, got {warmup_iters!r}')
        self.progress_interval = progress_interval
        self.warmup_iters = warmup_iters
        self.baseline_work_dir = baseline_work_dir
        self.iter_times: List[float] = []
        self.unsteady_iters: List[int] = []
        self.evaluations: List[dict] = []
        self.resumed_at: List[int] = []
        self.peak_memory_mb = 0.
        self.row = None
        self.hyperparams: Optional[dict] = None
        self.baseline: Optional[dict] = None
        self._next_unsteady = False
        self._started = None
        self._progress_written = 0.

    # -- set-up -------------------------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Find the row of this config and count its hyper-parameters."""
        from mmdet_imbalance.table.rows import find_row_by_config
        filename = getattr(runner.cfg, 'filename', None) or ''
        self.row = find_row_by_config(osp.basename(filename)) if filename else None
        self._started = time.time()
        if self.row is None:
            runner.logger.info(f'ImbalanceTableHook: {osp.basename(filename) or "this config"} is '
                               'no Table 1 row; logging AP, times and memory only')
            return
        from mmdet_imbalance.table.hyperparams import count_hyperparams
        try:
            self.hyperparams = count_hyperparams(self.row, runner.cfg).to_dict()
        except (KeyError, TypeError, ValueError) as err:
            runner.logger.warning(f'ImbalanceTableHook: cannot count the hyper-parameters of row '
                                  f'{self.row.key!r}: {err}')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the measurements of the interrupted run (``--resume``)."""
        state = checkpoint.get(CHECKPOINT_KEY)
        if not state:
            return
        resumed_iter = int(checkpoint.get('meta', {}).get('iter', len(state['iter_times'])))
        self.iter_times = list(state['iter_times'])[:resumed_iter]
        self.unsteady_iters = [i for i in state['unsteady_iters'] if i < resumed_iter]
        self.evaluations = [e for e in state['evaluations'] if e['iter'] <= resumed_iter]
        self.resumed_at = list(state.get('resumed_at', [])) + [resumed_iter]
        self.peak_memory_mb = float(state.get('peak_memory_mb', 0.))
        # The first iteration after a resume also pays for skipping the consumed batches.
        self._next_unsteady = True

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = dict(
            iter_times=self.iter_times, unsteady_iters=self.unsteady_iters,
            evaluations=self.evaluations, resumed_at=self.resumed_at,
            peak_memory_mb=self.peak_memory_mb)

    def before_train(self, runner) -> None:
        """Log the hyper-parameter count and open the run record."""
        if self.hyperparams is not None:
            count = self.hyperparams['count']
            names = ', '.join(p['name'] for p in self.hyperparams['params']) or 'none'
            runner.logger.info(f'ImbalanceTableHook: row {self.row.key!r} ({self.row.name}, '
                               f'{self.row.detector}); hyper-parameters: {count} ({names})')
            runner.visualizer.add_scalars({'imbalance/hyperparams': count}, step=runner.iter)
        self._write_run(runner, status='running')
        self._write_progress(runner)

    # -- per iteration ------------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Record this iteration's time and the memory peak; refresh progress.json."""
        hub = runner.message_hub
        if 'train/time' in hub.log_scalars:
            index = runner.iter  # 0-based index of the iteration that just ran
            # Pad so that iter_times[i] is the time of iteration i even if an earlier record is
            # missing (a resume from a checkpoint written without this hook).
            while len(self.iter_times) < index:
                self.unsteady_iters.append(len(self.iter_times))
                self.iter_times.append(float('nan'))
            self.iter_times[index:] = [float(hub.get_scalar('train/time').current())]
            if self._next_unsteady:
                self.unsteady_iters.append(index)
                self._next_unsteady = False
        self._update_memory()
        # Every ``progress_interval`` iterations, and at least every 2 s so that a slow CPU run
        # still shows progress (a few hundred bytes, written atomically).
        if (runner.iter + 1) % self.progress_interval == 0 \
                or time.time() - self._progress_written >= 2.:
            self._write_progress(runner)

    def _update_memory(self) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = peak_cpu_rss_mb()
        self.peak_memory_mb = max(self.peak_memory_mb, peak)

    # -- evaluation ---------------------------------------------------------------------------
    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        """Log AP and, when the baseline's run is found, ΔAP and the speed ratio."""
        metrics = {k: float(v) for k, v in (metrics or {}).items()
                   if isinstance(v, (int, float))}
        iteration = runner.iter if self._in_training(runner) else 0
        ap = evaluated_ap(metrics, runner.cfg)
        self.evaluations = [e for e in self.evaluations if e['iter'] != iteration]
        self.evaluations.append(dict(iter=iteration, epoch=runner.epoch
                                     if self._in_training(runner) else 0, metrics=metrics, ap=ap))
        # The next training iteration's timer spans this whole evaluation.
        self._next_unsteady = True
        if ap is None:
            return
        scalars = {'imbalance/ap': ap}
        self.baseline = self._compare_with_baseline(runner, scalars['imbalance/ap'])
        if self.baseline is not None:
            if self.baseline.get('delta_ap') is not None:
                scalars['imbalance/delta_ap'] = self.baseline['delta_ap']
            if self.baseline.get('speed_ratio') is not None:
                scalars['imbalance/speed_ratio'] = self.baseline['speed_ratio']
        # ``val/`` scalars of the message hub are what LoggerHook writes into the validation line
        # of the text log and of the json/scalars files (it strips the ``val/`` prefix).
        for key, value in scalars.items():
            runner.message_hub.update_scalar(f'val/{key}', value)
        self._write_run(runner, status='running')

    def _compare_with_baseline(self, runner, ap: float) -> Optional[dict]:
        from mmdet_imbalance.table.collect import steady_state_seconds
        base_dir = self._baseline_dir(runner)
        if base_dir is None:
            return None
        run = read_json(osp.join(record_dir(base_dir), RUN_FILE))
        if run is None:
            return None
        result = dict(key=self.row.baseline, work_dir=base_dir, status=run.get('status'))
        base_ap = run.get('ap')
        if isinstance(base_ap, (int, float)):
            result['ap'] = base_ap
            result['delta_ap'] = ap - base_ap
        kwargs = {} if self.warmup_iters is None else dict(warmup_iters=self.warmup_iters)
        own = steady_state_seconds(self.iter_times, self.unsteady_iters, **kwargs)
        base = steady_state_seconds(run.get('iter_times', []), run.get('unsteady_iters', []),
                                    **kwargs)
        if own is not None and base:
            result['speed_ratio'] = own / base
        return result

    def _baseline_dir(self, runner) -> Optional[str]:
        if self.baseline_work_dir:
            return self.baseline_work_dir
        if self.row is None or self.row.baseline is None:
            return None
        from mmdet_imbalance.table.rows import get_row
        baseline = get_row(self.row.baseline)
        filename = osp.basename(getattr(runner.cfg, 'filename', '') or '')
        benchmark = self.row.benchmark_of(filename)
        config = baseline.configs.get(benchmark) if benchmark else None
        if config is None:
            return None
        stem = osp.splitext(osp.basename(config))[0]
        return osp.join(osp.dirname(osp.abspath(runner.work_dir)), stem)

    # -- end ----------------------------------------------------------------------------------
    def after_train(self, runner) -> None:
        """Close the record: ``finished`` once the last iteration has run."""
        finished = runner.iter >= runner.max_iters
        self._write_progress(runner)
        self._write_run(runner, status='finished' if finished else 'stopped')
        if self.evaluations and self.evaluations[-1].get('ap') is not None:
            ap = self.evaluations[-1]['ap']
            line = f'ImbalanceTableHook: final AP {ap:.1f}'
            if self.baseline and self.baseline.get('delta_ap') is not None:
                line += f', ΔAP {self.baseline["delta_ap"]:+.1f}'
            if self.baseline and self.baseline.get('speed_ratio') is not None:
                line += f', speed ratio {self.baseline["speed_ratio"]:.2f}'
            runner.logger.info(line + f', peak memory {self.peak_memory_mb:.0f} MiB')

    # -- files --------------------------------------------------------------------------------
    @staticmethod
    def _in_training(runner) -> bool:
        loop = runner._train_loop
        return loop is not None and not isinstance(loop, dict)

    def _write_progress(self, runner) -> None:
        if not is_main_process() or not self._in_training(runner):
            return
        self._progress_written = time.time()
        write_json_atomic(osp.join(record_dir(runner.work_dir), PROGRESS_FILE),
                          dict(iter=runner.iter, max_iters=runner.max_iters, time=time.time(),
                               started=self._started))

    def _write_run(self, runner, status: str) -> None:
        if not is_main_process():
            return
        last = self.evaluations[-1] if self.evaluations else {}
        seed = runner.cfg.get('randomness', {}).get('seed') if runner.cfg else None
        record = dict(
            schema=RUN_SCHEMA,
            status=status,
            row=self.row.key if self.row else None,
            row_name=self.row.name if self.row else None,
            config=getattr(runner.cfg, 'filename', None),
            work_dir=osp.abspath(runner.work_dir),
            seed=seed,
            iter=runner.iter if self._in_training(runner) else None,
            max_iters=runner.max_iters if self._in_training(runner) else None,
            started=self._started,
            updated=time.time(),
            device='cuda' if torch.cuda.is_available() and torch.cuda.is_initialized() else 'cpu',
            world_size=runner.world_size,
            hyperparams=self.hyperparams,
            iter_times=self.iter_times,
            unsteady_iters=sorted(set(self.unsteady_iters)),
            resumed_at=self.resumed_at,
            peak_memory_mb=self.peak_memory_mb,
            memory_source=('cuda_max_allocated' if torch.cuda.is_available()
                           and torch.cuda.is_initialized() else 'cpu_peak_rss'),
            evaluations=self.evaluations,
            final_metrics=last.get('metrics', {}),
            ap=last.get('ap'),
            baseline=self.baseline,
        )
        write_json_atomic(osp.join(record_dir(runner.work_dir), RUN_FILE), record)


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


def read_json(path: str) -> Optional[dict]:
    """A JSON file's content, or None when it is missing or half-written."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

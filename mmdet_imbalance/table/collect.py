"""Read finished (or running) row runs back from their work dirs and aggregate them over seeds.

Sources, in order of preference, for one run's work dir:

1. ``<work_dir>/imbalance/run.json`` written by :class:`~mmdet_imbalance.engine.ImbalanceTableHook`:
   raw per-iteration times, peak memory, every evaluation, status;
2. mmengine's own ``<work_dir>/<timestamp>/vis_data/scalars.json`` (JSON lines) as a fallback for
   runs trained without the hook: AP from the last line holding ``coco/bbox_mAP``, and the time
   from the ``time`` field of training lines. Those are 50-iteration moving averages
   (``LogProcessor.window_size``), so the median of the logged values past the warm-up is the
   best estimate available there; memory is mmengine's ``memory`` field (CUDA only, MiB).

Speed is the **median steady-state seconds per training iteration**: the first ``warmup_iters``
iterations are skipped (first-batch allocation, caches, data workers starting), and so are the
iterations whose timer spans an evaluation or a resume (the hook lists them as
``unsteady_iters``). The median, not the mean, so that a stray slow iteration (a checkpoint
write, another process on the machine) does not move it.

Aggregation over seeds (:func:`aggregate`): AP as mean ± sample std; ΔAP paired by seed (row seed
k minus baseline seed k, same benchmark and dataset), then mean ± sample std of those differences
and their 95 % Student-t interval; a ΔAP is marked as noise when that interval contains 0. With
one seed there is no interval, and the mark is "unknown" (None), never "significant". The speed
ratio is paired the same way.
"""
import glob
import json
import math
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mmdet_imbalance.engine.run_record import (AP_KEY, RunRecord, progress_path, read_json,
                                               read_record)

#: Iterations skipped at the start of a run before timing (see the module docstring).
WARMUP_ITERS = 10


def steady_state_seconds(times: Sequence[float],
                         unsteady_iters: Iterable[int] = (),
                         warmup_iters: int = WARMUP_ITERS) -> Optional[float]:
    """Median seconds per iteration of ``times`` (one entry per iteration, index = iteration)
    after skipping the warm-up and the listed unsteady iterations.

    When a run is shorter than twice the warm-up, only its first half is skipped, so a short run
    still yields a number. Returns None when no usable time is left.
    """
    if warmup_iters < 0:
        raise ValueError(f'warmup_iters must be >= 0, got {warmup_iters}')
    skip = min(warmup_iters, len(times) // 2)
    unsteady = set(unsteady_iters)
    usable = [t for i, t in enumerate(times)
              if i >= skip and i not in unsteady and is_finite_number(t) and t > 0]
    return statistics.median(usable) if usable else None


def is_finite_number(x) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_json_lines(path: str) -> List[dict]:
    """The objects of a JSON-lines file (mmengine's scalars.json); unparsable lines skipped (the
    last one may be half-written while the run is alive)."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    rows.append(obj)
    except OSError:
        return []
    return rows


def scalar_files(work_dir: str) -> List[str]:
    """mmengine's ``<timestamp>/vis_data/scalars.json`` files of a work dir, oldest first (a
    resumed run has one per start)."""
    return sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


@dataclass
class RunResult(RunRecord):
    """One run as the table reads it back: its :class:`RunRecord`, plus what reading adds.

    A run trained with :class:`~mmdet_imbalance.engine.ImbalanceTableHook` reads as its
    ``run.json``; one trained without it gets the record fields that mmengine's scalars.json can
    fill, with ``peak_memory_mb`` None where they hold none. The status gains ``'missing'``
    (nothing found). Reading adds ``source`` (the file the
    run was read from) and ``sec_per_iter``, the steady-state speed measured from it (module
    docstring).
    """
    source: Optional[str] = None  # 'run.json' or 'scalars.json'
    sec_per_iter: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.status == 'finished'

    @property
    def train_seconds(self) -> float:
        """Summed training-iteration seconds (run.json only: 0 otherwise). The hook restores its
        iteration times from the checkpoint on resume, so a killed and resumed run counts every
        iteration once."""
        return sum(t for t in self.iter_times if is_finite_number(t))


def collect_run(work_dir: str, warmup_iters: int = WARMUP_ITERS) -> RunResult:
    """Read one run from ``work_dir`` (run.json first, mmengine's scalars.json otherwise)."""
    record = read_record(work_dir)
    if record is not None:
        return from_record(work_dir, record, warmup_iters)
    files = scalar_files(work_dir)
    if files:
        return _from_scalars(work_dir, files, warmup_iters)
    return RunResult(work_dir=work_dir, status='missing', peak_memory_mb=None)


def from_record(work_dir: str, record: RunRecord, warmup_iters: int = WARMUP_ITERS) -> RunResult:
    """The :class:`RunResult` of a run record (a work dir's, or a copy in ``results/``)."""
    fields = record.to_dict()
    fields.update(
        work_dir=work_dir,
        ap=record.ap if is_finite_number(record.ap) else None,
        final_metrics={k: float(v) for k, v in (record.final_metrics or {}).items()
                       if is_finite_number(v)},
        settings=dict(record.settings or {}),
        environment=dict(record.environment or {}))
    return RunResult(**fields, source='run.json', sec_per_iter=steady_state_seconds(
        record.iter_times or [], record.unsteady_iters or [], warmup_iters))


def _from_scalars(work_dir: str, files: List[str], warmup_iters: int) -> RunResult:
    train: Dict[int, dict] = {}
    val: List[dict] = []
    for path in files:
        for line in read_json_lines(path):
            if AP_KEY in line:
                val.append(line)
            elif 'time' in line and 'step' in line and ('loss' in line or 'lr' in line):
                train[int(line['step'])] = line  # a resumed run overwrites the replayed steps
    metrics = {k: float(v) for k, v in val[-1].items()
               if k.startswith('coco/') and is_finite_number(v)} if val else {}
    steps = sorted(train)
    logged = [(s, float(train[s]['time'])) for s in steps if is_finite_number(train[s]['time'])]
    times = [t for s, t in logged if s > warmup_iters] or [t for _, t in logged]
    memory = [float(train[s]['memory']) for s in steps if is_finite_number(train[s].get('memory'))]
    progress = read_json(progress_path(work_dir)) or {}
    return RunResult(
        work_dir=work_dir,
        # Without the hook's record, a run counts as finished once it has evaluated.
        status='finished' if metrics else 'running',
        source='scalars.json',
        ap=100. * metrics[AP_KEY] if AP_KEY in metrics else None,
        final_metrics=metrics,
        sec_per_iter=statistics.median(times) if times else None,
        peak_memory_mb=max(memory) if memory else None,
        memory_source='cuda_max_allocated (per log window)' if memory else None,
        iter=steps[-1] if steps else progress.get('iter'),
        max_iters=progress.get('max_iters'))


def read_progress(work_dir: str) -> Optional[dict]:
    """``{'iter', 'max_iters', 'time', 'started'}`` of a run, or None before it starts."""
    return read_json(progress_path(work_dir))


# -- aggregation ---------------------------------------------------------------------------------
@dataclass
class Stat:
    """Mean and sample standard deviation over seeds (std None with fewer than two values)."""
    mean: Optional[float]
    std: Optional[float]
    n: int

    @property
    def is_finite(self) -> bool:
        return is_finite_number(self.mean)


def mean_std(values: Iterable[Optional[float]]) -> Stat:
    """Mean ± sample std of the finite values (None values, e.g. missing seeds, are dropped)."""
    vals = [float(v) for v in values if is_finite_number(v)]
    if not vals:
        return Stat(None, None, 0)
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return Stat(statistics.fmean(vals), std, len(vals))


#: Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (any statistics table).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_interval(stat: Stat) -> Optional[Tuple[float, float]]:
    """The 95 % Student-t confidence interval of a mean over ``stat.n`` paired seeds, or None
    with fewer than two."""
    if stat.mean is None or stat.std is None or stat.n < 2:
        return None
    quantile = T_975[stat.n - 2] if stat.n - 1 <= len(T_975) else 1.960
    half = quantile * stat.std / math.sqrt(stat.n)
    return stat.mean - half, stat.mean + half


def is_noise(stat: Stat) -> Optional[bool]:
    """True when the 95 % paired t-interval of a difference contains 0; None when it is unknown
    (one seed)."""
    interval = t_interval(stat)
    if interval is None:
        return None
    return interval[0] <= 0. <= interval[1]


def _paired(row_runs: Dict[int, RunResult], base_runs: Dict[int, RunResult], attr: str,
            combine, valid=lambda a, b: True) -> Dict[int, float]:
    """Per-seed ``combine(row, baseline)`` of ``attr`` for the seeds both have finished."""
    out = {}
    for seed, run in row_runs.items():
        base = base_runs.get(seed)
        if base is None or not (run.finished and base.finished):
            continue
        a, b = getattr(run, attr), getattr(base, attr)
        if is_finite_number(a) and is_finite_number(b) and valid(a, b):
            out[seed] = combine(a, b)
    return out


def paired_differences(row_runs: Dict[int, RunResult], base_runs: Dict[int, RunResult],
                       attr: str = 'ap') -> Dict[int, float]:
    """Per-seed ``row - baseline`` of ``attr`` for the seeds both have finished."""
    return _paired(row_runs, base_runs, attr, lambda a, b: a - b)


def paired_ratios(row_runs: Dict[int, RunResult], base_runs: Dict[int, RunResult],
                  attr: str = 'sec_per_iter') -> Dict[int, float]:
    """Per-seed ``row / baseline`` of ``attr`` for the seeds both have finished."""
    return _paired(row_runs, base_runs, attr, lambda a, b: a / b, lambda a, b: b > 0)


def speed_arrow(ratio: Optional[float], tolerance: float = 0.05) -> str:
    """The review's notation for a time ratio (row / baseline seconds per iteration): '↓' slower,
    '↑' faster, '-' within ``tolerance``, '' when unknown."""
    if not is_finite_number(ratio):
        return ''
    if ratio > 1 + tolerance:
        return '↓'
    if ratio < 1 - tolerance:
        return '↑'
    return '-'


@dataclass
class RowResult:
    """One table row after aggregation over seeds."""
    key: str
    status: str  # 'ok', 'partial', 'not run', 'not implemented'
    reason: str = ''
    runs: Dict[int, RunResult] = field(default_factory=dict)
    ap: Stat = field(default_factory=lambda: Stat(None, None, 0))
    delta_ap: Stat = field(default_factory=lambda: Stat(None, None, 0))
    delta_seeds: Tuple[int, ...] = ()  # the seeds whose (row, baseline) pair the ΔAP uses
    delta_noise: Optional[bool] = None
    speed_ratio: Stat = field(default_factory=lambda: Stat(None, None, 0))
    sec_per_iter: Stat = field(default_factory=lambda: Stat(None, None, 0))
    peak_memory_mb: Stat = field(default_factory=lambda: Stat(None, None, 0))
    memory_ratio: Stat = field(default_factory=lambda: Stat(None, None, 0))
    hyperparams: Optional[int] = None
    hyperparam_names: Tuple[str, ...] = ()


def aggregate(key: str, runs: Dict[int, RunResult],
              base_runs: Optional[Dict[int, RunResult]]) -> RowResult:
    """Aggregate one row's runs (seed -> run) against its baseline's runs of the same seeds."""
    finished = {s: r for s, r in runs.items() if r.finished}
    if not runs or all(r.status == 'missing' for r in runs.values()):
        status = 'not run'
    elif len(finished) == len(runs):
        status = 'ok'
    else:
        status = 'partial'
    result = RowResult(key=key, status=status, runs=runs)
    result.ap = mean_std(r.ap for r in finished.values())
    result.sec_per_iter = mean_std(r.sec_per_iter for r in finished.values())
    result.peak_memory_mb = mean_std(r.peak_memory_mb for r in finished.values())
    if base_runs is not None:
        deltas = paired_differences(runs, base_runs, 'ap')
        result.delta_ap, result.delta_seeds = mean_std(deltas.values()), tuple(sorted(deltas))
        result.delta_noise = is_noise(result.delta_ap)
        result.speed_ratio = mean_std(paired_ratios(runs, base_runs).values())
        result.memory_ratio = mean_std(paired_ratios(runs, base_runs, 'peak_memory_mb').values())
    return result

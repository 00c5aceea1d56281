"""How the table tool trains one run: its command, its process, its progress line.

Every run is ``python -m mmdet_imbalance.train`` in its own process: one process, under
``torch.distributed.run`` or under ``srun``. Both benchmarks take ``--launcher`` and ``--gpus``:
the COCO rows on GPUs, and the mini rows on CPU ranks over gloo where CUDA is absent (the train
entry point creates the group, :mod:`mmdet_imbalance.engine.distributed`), which is how a CPU
machine runs a row the way a cluster does. ``--gpus`` is then the number of processes; each takes
the config's batch size, as mmdet's ``batch_size`` is per GPU. The run record says
``world_size``; its iteration times are rank 0's and its peak memory the largest process's, so
the table's speed and memory columns stay per-process figures.
"""
import functools
import math
import os
import os.path as osp
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import List, Tuple

from mmdet_imbalance import config_paths
from mmdet_imbalance.engine.precision import rates_for_children
from mmdet_imbalance.engine.run_record import read_record
from . import collect
from .request import TableRequest, run_overrides
from .rows import Row

TRAIN_MODULE = 'mmdet_imbalance.train'
#: COCO train2017 images with at least one annotation (what mmdet trains on with
#: filter_empty_gt) and the 1x recipe's total batch (8 GPUs x 2): 117266 / 16 rounds up to 7330
#: iterations per epoch, used only for the progress ETA of epoch-based COCO rows.
COCO_TRAIN_IMAGES = 117266
COCO_BATCH_SIZE = 16
POLL_SECONDS = 1.0
NON_TTY_PRINT_SECONDS = 10.0


def launch_command(request: TableRequest, arguments: List[str], seed: int) -> List[str]:
    """The command that runs the train entry point with ``arguments`` under the request's
    launcher and process count; ``arguments`` must already carry ``--launcher``."""
    if request.launcher == 'pytorch':
        # One port per tool process and seed, so that two table tools on one machine do not meet.
        port = 20000 + (os.getpid() + seed) % 10000
        return [request.python, '-m', 'torch.distributed.run',
                f'--nproc_per_node={request.gpus}', f'--master_port={port}', '-m', TRAIN_MODULE,
                *arguments]
    if request.launcher == 'slurm':
        per_node = min(request.gpus, request.gpus_per_node)
        # The mini rows are CPU-scale: their ranks ask for no GPU.
        gres = [f'--gres=gpu:{per_node}'] if request.benchmark == 'coco' else []
        return ['srun', '-p', request.partition, *gres, f'--ntasks={request.gpus}',
                f'--ntasks-per-node={per_node}', '--kill-on-bad-exit=1', request.python, '-u',
                '-m', TRAIN_MODULE, *arguments]
    return [request.python, '-m', TRAIN_MODULE, *arguments]


def train_command(request: TableRequest, row: Row, seed: int, work_dir: str,
                  resume: bool) -> List[str]:
    """The training command of ``row`` / ``seed``: the one place where a table run's seed and
    iteration cap become command-line text."""
    # The same overrides the settings prediction applies (:func:`.request.run_overrides`).
    overrides = run_overrides(seed, request.max_iters, ())
    options = [f'{key}={value}' for key, value in overrides.items()]
    arguments = [config_paths.resolve(row.config(request.benchmark)), '--work-dir', work_dir,
                 '--precision', request.precision, '--launcher', request.launcher]
    if request.benchmark == 'mini':
        arguments += ['--dataset', request.dataset]
    else:
        arguments += ['--data-root', request.data_root]
    if resume:
        arguments += ['--resume']
    arguments += ['--cfg-options', *options, *request.cfg_options]
    return launch_command(request, arguments, seed)


def checkpoint_iter(work_dir: str) -> int:
    """The iteration a resumed run starts from (``iter_<n>.pth`` in ``last_checkpoint``); 0 when
    unknown (epoch checkpoints)."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            match = re.search(r'iter_(\d+)\.pth', f.read())
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def total_iters(request: TableRequest, row: Row) -> int:
    """Iterations of the run of ``row`` (for the ETA)."""
    if request.max_iters:
        return request.max_iters
    return config_iters(config_paths.resolve(row.config(request.benchmark)))


@functools.lru_cache(maxsize=None)
def config_iters(path: str) -> int:
    """Training iterations of the config file ``path``, parsed once per process (the plan's ETA
    and each run's progress line both ask)."""
    from mmengine.config import Config
    train_cfg = Config.fromfile(path).get('train_cfg', {})
    if 'max_iters' in train_cfg:
        return int(train_cfg['max_iters'])
    return int(train_cfg.get('max_epochs', 12)) * math.ceil(COCO_TRAIN_IMAGES / COCO_BATCH_SIZE)


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
    """A live progress line over rows and iterations with an ETA: rewritten in place on a
    terminal, printed every ~10 s otherwise (CI logs)."""

    def __init__(self, total_iters: int, stream=sys.stdout):
        self.total_iters = max(1, total_iters)
        self.done_iters = 0
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.time()
        self.train_seconds = 0.
        self.last_print = 0.
        self.width = 0

    def rate(self, current_iter: int, current_elapsed: float):
        iters = self.done_iters + current_iter
        seconds = self.train_seconds + current_elapsed
        return seconds / iters if iters else None

    def update(self, label: str, current_iter: int, shown_iter: int, shown_max: int,
               current_elapsed: float):
        """``current_iter``: iterations this process has trained of the current run;
        ``shown_iter`` / ``shown_max``: the run's own iteration counter (a resumed run starts
        past 0)."""
        now = time.time()
        if not self.tty and now - self.last_print < NON_TTY_PRINT_SECONDS:
            return
        self.last_print = now
        rate = self.rate(current_iter, current_elapsed)
        remaining = max(0, self.total_iters - self.done_iters - current_iter)
        eta = fmt_duration(rate * remaining) if rate else '?'
        pct = min(100., 100. * (self.done_iters + current_iter) / self.total_iters)
        line = (f'  {label}: iter {shown_iter}/{shown_max or "?"} | all rows {pct:5.1f}% | '
                f'elapsed {fmt_duration(now - self.started)} | ETA {eta}')
        if self.tty:
            self.stream.write('\r' + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + '\n')
        self.stream.flush()

    def clear(self):
        if self.tty and self.width:
            self.stream.write('\r' + ' ' * self.width + '\r')
            self.stream.flush()
            self.width = 0

    def finish_run(self, iters: int, seconds: float):
        self.done_iters += iters
        self.train_seconds += seconds


def _die_with_parent():
    """Linux: the child gets SIGTERM when the tool dies, even by SIGKILL, so no orphaned run
    keeps training a folder that a rerun of the tool would train again."""
    import ctypes
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def train_run(request: TableRequest, row: Row, seed: int, progress: Progress,
              label: str) -> Tuple[int, str, bool]:
    """Train one row/seed in a subprocess, resuming a killed run from its last checkpoint;
    returns (exit code, log path, resumed)."""
    work_dir = request.run_dir(row, seed)
    record = read_record(work_dir)
    resume = ((record is None or record.status != 'finished')
              and osp.isfile(osp.join(work_dir, 'last_checkpoint')))
    start_iter = checkpoint_iter(work_dir) if resume else 0
    max_iters = total_iters(request, row)
    os.makedirs(work_dir, exist_ok=True)
    log_path = osp.join(work_dir, 'train_stdout.log')
    cmd = train_command(request, row, seed, work_dir, resume)
    # The run works in the checkout (its data/ and imbalance_stats caches are the repository's);
    # an installed package without a checkout works in the caller's folder.
    root = config_paths.checkout_root() or os.getcwd()
    env = dict(os.environ, **rates_for_children())
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    started = time.time()
    with open(log_path, 'a') as log:
        log.write(f'\n$ {shlex.join(cmd)}\n')
        log.flush()
        # The run shares the tool's process group, so Ctrl-C in a terminal stops both; the
        # handler below also stops it when the tool itself is told to terminate.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                env=env, preexec_fn=_die_with_parent)
        try:
            while proc.poll() is None:
                time.sleep(POLL_SECONDS)
                state = collect.read_progress(work_dir) or {}
                shown = int(state.get('iter') or start_iter)
                progress.update(label, max(0, shown - start_iter), shown,
                                int(state.get('max_iters') or max_iters),
                                time.time() - started)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            progress.clear()
            raise
    progress.clear()
    state = collect.read_progress(work_dir) or {}
    progress.finish_run(max(0, int(state.get('iter') or 0) - start_iter), time.time() - started)
    return proc.returncode, log_path, resume


def planned_iters(request: TableRequest, row: Row, seed: int) -> int:
    """Iterations the run of ``row`` / ``seed`` still has to train (for the ETA)."""
    return max(1, total_iters(request, row) - checkpoint_iter(request.run_dir(row, seed)))


def row_line(run: collect.RunResult, base: collect.RunResult = None) -> str:
    """One finished run as the tool prints it: AP, ΔAP and time ratio to its baseline, speed,
    memory."""
    parts = [f'AP {run.ap:.1f}' if run.ap is not None else 'AP -']
    if base is not None and run.ap is not None and base.ap is not None:
        parts.append(f'ΔAP {run.ap - base.ap:+.1f}')
    if base is not None and run.sec_per_iter and base.sec_per_iter:
        ratio = run.sec_per_iter / base.sec_per_iter
        parts.append(f'time ratio {ratio:.2f} {collect.speed_arrow(ratio)}')
    if run.sec_per_iter:
        parts.append(f'{run.sec_per_iter:.3f} s/iter')
    if run.peak_memory_mb:
        parts.append(f'peak {run.peak_memory_mb:.0f} MiB')
    return ', '.join(parts)

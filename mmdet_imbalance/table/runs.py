"""Orchestration of a Table 1 run: which runs to train, training them, collecting them.

The table tool (``tools/table1.py``) is a thin CLI over :func:`run_table`. A request trains every
selected row (baselines first) and seed in its own process with ``tools/train.py``, into
``<work-dir>/<benchmark>[-<dataset>]/seed<k>/<config stem>/``, then collects the runs, exports the
finished mini runs into the committed results tree (:mod:`.results`) and writes
``<work-dir>/table1.{md,csv,json,png}`` (:mod:`.report`). Rerunning skips runs that finished with
the same settings, resumes killed runs from their last checkpoint, and refuses work dirs that hold
runs of other settings (``--force`` retrains them). With ``--reuse-results`` a run that the
results tree holds with the requested settings is taken from there instead of trained. See
docs/table1-method.md.
"""
import argparse
import copy
import functools
import math
import os
import os.path as osp
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Dict, Tuple

from mmdet_imbalance.engine.run_record import read_record, run_settings, settings_diff
from mmdet_imbalance import config_paths
from . import collect, header, publish, report, results
from .launch import launch_command
from .rows import ROWS, Row, get_row

COCO_FILES = ('annotations/instances_train2017.json', 'annotations/instances_val2017.json',
              'train2017', 'val2017')
#: COCO train2017 images with at least one annotation (what mmdet trains on with
#: filter_empty_gt) and the 1x recipe's total batch (8 GPUs x 2): 117266 / 16 rounds up to 7330
#: iterations per epoch, used only for the progress ETA of epoch-based COCO rows.
COCO_TRAIN_IMAGES = 117266
COCO_BATCH_SIZE = 16
POLL_SECONDS = 1.0
NON_TTY_PRINT_SECONDS = 10.0


# -- set-up checks -------------------------------------------------------------------------------
def check_coco_root(data_root: str) -> None:
    """Fail before training anything when ``data_root`` is not a COCO 2017 root."""
    missing = [p for p in COCO_FILES if not osp.exists(osp.join(data_root, p))]
    if missing:
        raise SystemExit(
            f'error: --data-root {data_root} holds no COCO 2017 dataset (missing: '
            f'{", ".join(missing)}). Download COCO 2017 and point --data-root at the folder that '
            'holds annotations/, train2017/ and val2017/, or use --benchmark mini.')


def inspect_row(row: Row, benchmark: str):
    """(status, reason, hyperparam count) of a row: 'not implemented' when its config is missing,
    does not load, or names modules no registry knows."""
    from mmdet_imbalance.config_builder import load_config
    from mmdet_imbalance.table.hyperparams import count_hyperparams
    rel = row.config(benchmark)
    try:
        path = config_paths.resolve(rel)
    except FileNotFoundError:
        return 'not implemented', f'no config {rel}', None
    try:
        cfg = load_config(path)
        counted = count_hyperparams(row, cfg)
    except (ImportError, KeyError, TypeError, ValueError, FileNotFoundError) as err:
        # A config that does not parse (SyntaxError) is an error of the request, not a row to
        # come: it propagates.
        return 'not implemented', f'{rel}: {type(err).__name__}: {err}', None
    return 'ok', '', counted


def config_delta_keys(row: Row, benchmark: str):
    """The dotted config keys a row changes against its baseline (empty when config_diff or a
    config is unavailable)."""
    if row.baseline is None:
        return []
    try:
        from mmengine.config import Config
        from mmdet_imbalance.table.config_diff import config_delta
        base = Config.fromfile(config_paths.resolve(get_row(row.baseline).config(benchmark)))
        own = Config.fromfile(config_paths.resolve(row.config(benchmark)))
        return sorted(config_delta(own, base))
    except (ImportError, OSError, KeyError, TypeError, ValueError):
        return []


# -- runs ----------------------------------------------------------------------------------------
def request_dataset(args):
    """The embedded dataset of a mini request; None for COCO."""
    return args.dataset if args.benchmark == 'mini' else None


def bench_dir(args) -> str:
    name = args.benchmark + (f'-{args.dataset}' if args.benchmark == 'mini' else '')
    return osp.join(args.work_dir, name)


def run_dir(args, row: Row, seed: int) -> str:
    stem = osp.splitext(osp.basename(row.config(args.benchmark)))[0]
    return osp.join(bench_dir(args), f'seed{seed}', stem)


def run_options(args, seed: int):
    """The ``--cfg-options`` of the run of ``seed``: the seed, the iteration cap, the user's."""
    options = [f'randomness.seed={seed}']
    if args.max_iters:
        options += [f'train_cfg.max_iters={args.max_iters}',
                    f'train_cfg.val_interval={args.max_iters}']
    return options + list(args.cfg_options)


def requested_settings(args, row: Row, seed: int, precision: str = None) -> dict:
    """The run settings (:func:`run_settings`) that the run of ``row`` / ``seed`` will have, at
    ``precision`` (default: the request's)."""
    return dict(_settings(args.benchmark, request_dataset(args),
                          None if args.benchmark == 'mini' else args.data_root,
                          tuple(run_options(args, seed)),
                          precision or args.precision, row.key))


@functools.lru_cache(maxsize=None)
def _settings(benchmark, dataset, data_root, options, precision, key) -> dict:
    # Building a merged config takes about a second; a table asks for the same run's settings
    # when it plans the runs and again when it collects them.
    from mmengine.config import DictAction
    from mmdet_imbalance.config_builder import build_runner_config
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg_options = parser.parse_args(['--cfg-options', *options]).cfg_options
    cfg = build_runner_config(config_paths.resolve(get_row(key).config(benchmark)),
                              dataset=dataset, data_root=data_root, cfg_options=cfg_options,
                              precision=precision, check_files=False)
    return run_settings(cfg)


def _die_with_parent():
    """Linux: the child gets SIGTERM when the tool dies, even by SIGKILL, so no orphaned run
    keeps training a folder that a rerun of the tool would train again."""
    import ctypes
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def train_command(args, row: Row, seed: int, work_dir: str, resume: bool):
    config = config_paths.resolve(row.config(args.benchmark))
    script = osp.join(config_paths.tools_root(), 'train.py')
    options = run_options(args, seed)
    tail = [config, '--work-dir', work_dir, '--precision', args.precision,
            '--launcher', args.launcher]
    if args.benchmark == 'mini':
        tail += ['--dataset', args.dataset]
    else:
        tail += ['--data-root', args.data_root]
    if resume:
        tail += ['--resume']
    tail += ['--cfg-options', *options]
    return launch_command(args, script, tail, seed)


def has_checkpoint(work_dir: str) -> bool:
    return osp.isfile(osp.join(work_dir, 'last_checkpoint'))


def checkpoint_iter(work_dir: str) -> int:
    """The iteration a resumed run starts from (``iter_<n>.pth`` in ``last_checkpoint``); 0 when
    unknown (epoch checkpoints)."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            match = re.search(r'iter_(\d+)\.pth', f.read())
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


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


def train_run(args, row: Row, seed: int, progress: Progress, label: str, max_iters: int):
    """Train one row/seed in a subprocess; returns (exit code, log path)."""
    work_dir = run_dir(args, row, seed)
    record = read_record(work_dir)
    resume = (record is None or record.status != 'finished') and has_checkpoint(work_dir)
    start_iter = checkpoint_iter(work_dir) if resume else 0
    os.makedirs(work_dir, exist_ok=True)
    log_path = osp.join(work_dir, 'train_stdout.log')
    cmd = train_command(args, row, seed, work_dir, resume)
    # The run works in the checkout (its data/ and imbalance_stats caches are the repository's);
    # an installed package without a checkout works in the caller's folder.
    root = config_paths.checkout_root() or os.getcwd()
    env = dict(os.environ)
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


def planned_iters(args, row: Row, seed: int) -> int:
    """Iterations the run of ``row`` / ``seed`` still has to train (for the ETA)."""
    return max(1, total_iters(args, row) - checkpoint_iter(run_dir(args, row, seed)))


def total_iters(args, row: Row) -> int:
    if args.max_iters:
        return args.max_iters
    from mmengine.config import Config
    cfg = Config.fromfile(config_paths.resolve(row.config(args.benchmark)))
    train_cfg = cfg.get('train_cfg', {})
    if 'max_iters' in train_cfg:
        return int(train_cfg['max_iters'])
    return int(train_cfg.get('max_epochs', 12)) * math.ceil(COCO_TRAIN_IMAGES / COCO_BATCH_SIZE)


def row_line(row: Row, seed: int, run: collect.RunResult, base: collect.RunResult = None) -> str:
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


# -- main ----------------------------------------------------------------------------------------
def run_table(args, command: str) -> Tuple[Dict[str, str], Dict]:
    """Train what the request still needs, collect the runs, write the table files.

    ``args`` holds the request (the attributes of ``tools/table1.py``'s options); returns the
    written files ({'md': path, ...}) and the failed runs ({(row key, seed): reason}).
    """
    from mmdet_imbalance.config_builder import check_work_dir
    wall_start = time.time()
    try:
        check_work_dir(args.work_dir)
    except OSError as err:
        raise SystemExit(f'error: {err}')
    if args.benchmark == 'coco' and not args.collect_only:
        check_coco_root(args.data_root)
    import mmdet_imbalance  # noqa: F401  (registers the modules the configs name)

    rows = args.selected
    tree = results.table_dir(args.results, args.benchmark, request_dataset(args))
    source = (f'every seed in {tree}' if args.from_results
              else f'{args.seeds} seed(s) -> {osp.abspath(bench_dir(args))}')
    print(f'Table 1 ({args.benchmark}{"/" + args.dataset if args.benchmark == "mini" else ""}): '
          f'{len(rows)} row(s), {source}')
    inspected = {}
    for row in rows:
        status, reason, counted = inspect_row(row, args.benchmark)
        inspected[row.key] = (status, reason, counted)
        if status != 'ok':
            print(f'  {row.key:<28} not implemented: {reason}')
    runnable = [r for r in rows if inspected[r.key][0] == 'ok']

    failures = {}
    if not (args.collect_only or args.from_results):
        if args.reuse_results:
            check_tree_precision(args, runnable, inspected)
        todo, conflicts = [], []
        for seed in range(args.seeds):
            for row in runnable:
                wd = run_dir(args, row, seed)
                if args.force and osp.isdir(wd):
                    shutil.rmtree(wd)
                record = read_record(wd)
                if record is not None:
                    diff = settings_diff(record.settings, requested_settings(args, row, seed))
                    if diff:
                        conflicts.append(f'  {wd}: {record.status} run of other settings: '
                                         + '; '.join(diff))
                        continue
                done = collect.collect_run(wd, args.warmup_iters)
                if done.finished and done.source == 'run.json':
                    print(f'  {row.key:<28} seed {seed}: finished earlier with the same '
                          f'settings, skipped ({row_line(row, seed, done)})')
                    continue
                published = tree_run(args, row, seed) if record is None else None
                if published is not None:
                    print(f'  {row.key:<28} seed {seed}: in {args.results} with the same '
                          f'settings, not trained again ({row_line(row, seed, published)})')
                    continue
                todo.append((seed, row))
        if conflicts:
            raise SystemExit('error: these work dirs hold runs of other settings than requested; '
                             'nothing was trained. Use another --work-dir, or --force to retrain '
                             'them:\n' + '\n'.join(conflicts))
        plans = {(seed, row.key): planned_iters(args, row, seed) for seed, row in todo}
        progress = Progress(sum(plans.values()))
        for index, (seed, row) in enumerate(todo, 1):
            label = f'[{index}/{len(todo)}] {row.key} seed {seed}'
            t0 = time.time()
            rc, log_path, resumed = train_run(args, row, seed, progress, label,
                                              total_iters(args, row))
            run = collect.collect_run(run_dir(args, row, seed), args.warmup_iters)
            took = fmt_duration(time.time() - t0)
            if rc != 0 or not run.finished:
                failures[(row.key, seed)] = f'training exited with code {rc}; see {log_path}'
                print(f'{label}: FAILED after {took} (exit {rc}); log: {log_path}')
                continue
            base = (collect.collect_run(run_dir(args, get_row(row.baseline), seed),
                                        args.warmup_iters) if row.baseline else None)
            print(f'{label}: done in {took}{" (resumed)" if resumed else ""}: '
                  f'{row_line(row, seed, run, base)}')

    # Training order puts baselines first; the table keeps the review's order and groups.
    rows = sorted(rows, key=ROWS.index)
    if args.from_results:
        runs, stale = tree_runs(args, rows, inspected)
    else:
        runs, stale = workdir_runs(args, rows, inspected)
        export_results(args, runs)
    for line in stale:
        print(f'  left out, other settings than the current configs give: {line}')
    table = aggregate_results(args, rows, inspected, failures, runs)
    for line in header.seed_warnings(rows, table):
        print(line)
    all_runs = [run for res in table.values() for run in res.runs.values() if run.finished]
    meta = dict(
        benchmark=args.benchmark, dataset=request_dataset(args),
        seeds=sorted({s for res in table.values() for s, r in res.runs.items() if r.finished}),
        rows=[r.key for r in rows], warmup_iters=args.warmup_iters,
        max_iters=args.max_iters,
        command=command,
        # What the runs themselves recorded: versions, precision and machine of every run.
        versions=sorted({header.versions(run.settings) for run in all_runs}),
        precision=sorted({str(run.settings.get('precision')) for run in all_runs}),
        machine=sorted({header.machine(run.environment) for run in all_runs})
        or [header.machine_description()],
        gflops=header.gflops(all_runs),
        date=datetime.now().isoformat(timespec='seconds'),
        wall_time=fmt_duration(time.time() - wall_start),
        # From the runs' own records, so a table re-collected with --collect-only still reports
        # what training the rows cost (start-up and evaluation not included).
        runs_time=fmt_duration(sum(run.train_seconds for run in all_runs if run.train_seconds)),
        config_deltas={r.key: config_delta_keys(r, args.benchmark) for r in runnable})
    paths = report.write_all(args.work_dir, rows, table, meta)
    if args.publish:
        os.makedirs(args.publish, exist_ok=True)
        for ext in ('md', 'png'):
            shutil.copy(paths[ext], osp.join(args.publish, osp.basename(paths[ext])))
    print(f'Total wall time: {fmt_duration(time.time() - wall_start)}')
    return paths, failures


def workdir_runs(args, rows, inspected):
    """{key: {seed: RunResult}} of the runs in the work dirs whose settings are the requested
    ones, and the runs left out for other settings."""
    runs, stale = {}, []
    for row in rows:
        if inspected[row.key][0] != 'ok':
            continue
        runs[row.key] = {}
        for seed in range(args.seeds):
            wd = run_dir(args, row, seed)
            record = read_record(wd)
            diff = settings_diff(record.settings, requested_settings(args, row, seed)) \
                if record is not None else []
            if diff:
                stale.append(f'{wd}: ' + '; '.join(diff))
                continue
            published = tree_run(args, row, seed) if record is None else None
            runs[row.key][seed] = published or collect.collect_run(wd, args.warmup_iters)
    if args.collect_only and not any(run.status != 'missing' for seeds in runs.values()
                                     for run in seeds.values()):
        raise SystemExit(f'error: --collect-only found no run of the selected rows under '
                         f'{bench_dir(args)} (seeds 0..{args.seeds - 1}'
                         + (f'; left out for other settings: {"; ".join(stale)}' if stale else '')
                         + '). Train them first, or point --work-dir at the runs.')
    return runs, stale


def tree_run(args, row: Row, seed: int):
    """With ``--reuse-results``: the finished run of ``row`` / ``seed`` in the results tree when
    its settings are the requested ones (so adding seeds 1-2 to a published seed 0 trains only
    the new seeds), else None. A record of other settings is never reused."""
    if not args.reuse_results or args.benchmark != 'mini' or args.max_iters:
        return None
    folder = results.run_dir(args.results, args.benchmark, args.dataset, seed, row.key)
    run, _ = results.load_run(folder, lambda record: requested_settings(args, row, seed),
                              args.warmup_iters)
    return run if run is not None and run.finished else None


def tree_runs(args, rows, inspected, required: bool = True):
    """{key: {seed: RunResult}} from the results tree, every seed found there (an error when
    there is none and ``required``)."""
    keys = [r.key for r in rows if inspected[r.key][0] == 'ok']

    def expected(key, seed, record):
        return requested_settings(args, get_row(key), seed, precision=record.precision)

    dataset = request_dataset(args)
    try:
        runs, stale = results.load_tree(args.results, args.benchmark, dataset, keys, expected,
                                        args.warmup_iters)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    if required and not any(runs.values()):
        raise SystemExit(f'error: no run record of the selected rows under '
                         f'{results.table_dir(args.results, args.benchmark, dataset)}'
                         + (' (left out for other settings: ' + '; '.join(stale) + ')'
                            if stale else ''))
    return runs, stale


def check_tree_precision(args, rows, inspected) -> None:
    """With ``--reuse-results``: refuse to add seeds of another precision than the tree's runs of
    the same rows, before anything trains (the table could not be built from such a tree)."""
    runs, _ = tree_runs(args, rows, inspected, required=False)
    held = {str(run.settings.get('precision')) for seeds in runs.values() for run in seeds.values()}
    if held and held != {args.precision}:
        raise SystemExit(f'error: the runs of these rows in {args.results} are {"/".join(held)}, '
                         f'this request trains {args.precision}; pass --precision '
                         f'{"/".join(held)} to add seeds to them, or another --results.')


def export_results(args, runs):
    """Export every finished mini run where :mod:`.publish` says, and print where it went."""
    if args.benchmark != 'mini':
        return
    committed = copy.copy(args)
    committed.cfg_options, committed.max_iters = [], None
    for line in publish.export_runs(args.results, 'mini', args.dataset, runs, lambda key, seed,
                                    precision: requested_settings(committed, get_row(key), seed,
                                                                  precision)):
        print(line)


def aggregate_results(args, rows, inspected, failures, runs):
    out = {}
    for row in rows:
        status, reason, counted = inspected[row.key]
        if status != 'ok':
            out[row.key] = collect.RowResult(key=row.key, status=status, reason=reason)
            continue
        res = collect.aggregate(row.key, runs[row.key], runs.get(row.baseline))
        res.hyperparams = counted.count
        res.hyperparam_names = tuple(p.name for p in counted.params)
        failed = [f'seed {s}: {msg}' for (k, s), msg in failures.items() if k == row.key]
        if failed:
            res.reason = '; '.join(failed)
            if res.ap.n == 0:
                res.status = 'failed'
        elif res.status == 'not run':
            res.reason = 'no finished run under ' + bench_dir(args)
        out[row.key] = res
    return out

"""A Table 1 request from start to table files: plan, train, collect, export, write.

The table tool (``tools/table1.py``) builds a :class:`~.request.TableRequest` and calls
:func:`run_table`. It inspects the rows, asks :mod:`.plan` what to train, skip, reuse or refuse,
trains every planned (seed, row) with :mod:`.launch` (``python -m mmdet_imbalance.train`` into
``<work-dir>/<benchmark>[-<dataset>]/seed<k>/<config stem>/``), then collects the runs, exports
the finished mini runs into the committed results tree (:mod:`.publish`) and writes
``<work-dir>/table1.{md,csv,json,png}`` (:mod:`.report`). Rerunning skips runs that finished with
the same settings, resumes killed runs from their last checkpoint, and refuses work dirs that hold
runs of other settings (``--force`` retrains them). See docs/table1-method.md.
"""
import os
import os.path as osp
import shutil
import time
from datetime import datetime
from typing import Dict, List, Tuple

from mmdet_imbalance import config_paths
from mmdet_imbalance.engine.run_record import environment, read_record, settings_diff
from . import collect, header, publish, report, results
from .launch import Progress, fmt_duration, planned_iters, row_line, train_run
from .plan import Inspection, inspect_row, plan_runs, requested_settings, tree_run, tree_runs
from .request import TableRequest
from .rows import ROWS, Row, get_row


def check_coco_root(data_root: str) -> None:
    """Fail before training anything when ``data_root`` is not a COCO 2017 root."""
    from mmdet_imbalance.config_builder import missing_coco_files
    missing = missing_coco_files(data_root)
    if missing:
        raise SystemExit(
            f'error: --data-root {data_root} holds no COCO 2017 dataset (missing: '
            f'{", ".join(missing)}). Download COCO 2017 and point --data-root at the folder that '
            'holds annotations/, train2017/ and val2017/, or use --benchmark mini.')


def config_delta_keys(row: Row, benchmark: str) -> List[str]:
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


def run_table(request: TableRequest) -> Tuple[Dict[str, str], Dict]:
    """Train what the request still needs, collect the runs, write the table files.

    Returns the written files ({'md': path, ...}) and the failed runs
    ({(row key, seed): reason}).
    """
    from mmdet_imbalance.config_builder import check_work_dir
    wall_start = time.time()
    try:
        check_work_dir(request.work_dir)
    except OSError as err:
        raise SystemExit(f'error: {err}')
    if request.benchmark == 'coco' and not request.collect_only:
        check_coco_root(request.data_root)
    import mmdet_imbalance  # noqa: F401  (registers the modules the configs name)

    print_request(request)
    inspected = {row.key: inspect_row(row, request.benchmark) for row in request.rows}
    for row in request.rows:
        if inspected[row.key].status != 'ok':
            print(f'  {row.key:<28} {inspected[row.key].status}: {inspected[row.key].reason}')
    runnable = [r for r in request.rows if inspected[r.key].status == 'ok']
    failures = train_planned(request, runnable) if request.trains else {}
    # Training order puts baselines first; the table keeps the review's order and groups.
    rows = sorted(request.rows, key=ROWS.index)
    if request.from_results:
        runs, stale = tree_runs(request, runnable)
    else:
        runs, stale = workdir_runs(request, runnable)
        export_results(request, runs)
    for line in stale:
        print(f'  left out, other settings than the current configs give: {line}')
    table = aggregate_results(request, rows, inspected, failures, runs)
    for line in header.seed_warnings(rows, table):
        print(line)
    paths = report.write_all(request.work_dir, rows, table,
                             table_meta(request, rows, runnable, table, wall_start))
    if request.publish:
        os.makedirs(request.publish, exist_ok=True)
        for ext in ('md', 'png'):
            shutil.copy(paths[ext], osp.join(request.publish, osp.basename(paths[ext])))
    print(f'Total wall time: {fmt_duration(time.time() - wall_start)}')
    return paths, failures


def print_request(request: TableRequest) -> None:
    tree = results.table_dir(request.results, request.benchmark, request.mini_dataset)
    source = (f'every seed in {tree}' if request.from_results
              else f'{request.seeds} seed(s) -> {osp.abspath(request.bench_dir)}')
    dataset = f'/{request.dataset}' if request.benchmark == 'mini' else ''
    print(f'Table 1 ({request.benchmark}{dataset}): {len(request.rows)} row(s), {source}')


def train_planned(request: TableRequest, runnable: List[Row]) -> Dict:
    """Train what :func:`.plan.plan_runs` plans (refusing the request on a conflict); returns the
    failed runs ({(row key, seed): reason})."""
    plan = plan_runs(request, runnable)
    for seed, row, run in plan.skipped:
        print(f'  {row.key:<28} seed {seed}: finished earlier with the same settings, skipped '
              f'({row_line(run)})')
    for seed, row, run in plan.reused:
        print(f'  {row.key:<28} seed {seed}: in {request.results} with the same settings, not '
              f'trained again ({row_line(run)})')
    if plan.conflicts:
        raise SystemExit('error: these work dirs hold runs of other settings than requested; '
                         'nothing was trained. Use another --work-dir, or --force to retrain '
                         'them:\n' + '\n'.join(f'  {line}' for line in plan.conflicts))
    failures = {}
    progress = Progress(sum(planned_iters(request, row, seed) for seed, row in plan.train))
    for index, (seed, row) in enumerate(plan.train, 1):
        label = f'[{index}/{len(plan.train)}] {row.key} seed {seed}'
        t0 = time.time()
        rc, log_path, resumed = train_run(request, row, seed, progress, label)
        run = collect.collect_run(request.run_dir(row, seed), request.warmup_iters)
        took = fmt_duration(time.time() - t0)
        if rc != 0 or not run.finished:
            failures[(row.key, seed)] = f'training exited with code {rc}; see {log_path}'
            print(f'{label}: FAILED after {took} (exit {rc}); log: {log_path}')
            continue
        base = (collect.collect_run(request.run_dir(get_row(row.baseline), seed),
                                    request.warmup_iters) if row.baseline else None)
        print(f'{label}: done in {took}{" (resumed)" if resumed else ""}: '
              f'{row_line(run, base)}')
    return failures


def table_meta(request: TableRequest, rows, runnable, table, wall_start: float) -> dict:
    """The table's header facts: the request, and what the runs themselves recorded (versions,
    precision and machine of every run)."""
    all_runs = [run for res in table.values() for run in res.runs.values() if run.finished]
    return dict(
        benchmark=request.benchmark, dataset=request.mini_dataset,
        seeds=sorted({s for res in table.values() for s, r in res.runs.items() if r.finished}),
        rows=[r.key for r in rows], warmup_iters=request.warmup_iters,
        max_iters=request.max_iters,
        command=request.command,
        versions=sorted({header.versions(run.settings) for run in all_runs}),
        precision=sorted({str(run.settings.get('precision')) for run in all_runs}),
        machine=sorted({header.machine(run.environment) for run in all_runs})
        or [header.machine(environment())],
        gflops=header.gflops(all_runs),
        date=datetime.now().isoformat(timespec='seconds'),
        wall_time=fmt_duration(time.time() - wall_start),
        # From the runs' own records, so a table re-collected with --collect-only still reports
        # what training the rows cost (start-up and evaluation not included).
        runs_time=fmt_duration(sum(run.train_seconds for run in all_runs if run.train_seconds)),
        config_deltas={r.key: config_delta_keys(r, request.benchmark) for r in runnable})


def workdir_runs(request: TableRequest, rows: List[Row]):
    """{key: {seed: RunResult}} of the runs of ``rows`` in the work dirs whose settings are the
    requested ones (or, with ``--reuse-results``, in the results tree), and the runs left out for
    other settings."""
    runs, stale = {}, []
    for row in rows:
        runs[row.key] = {}
        for seed in range(request.seeds):
            work_dir = request.run_dir(row, seed)
            record = read_record(work_dir)
            diff = settings_diff(record.settings, requested_settings(request, row, seed)) \
                if record is not None else []
            if diff:
                stale.append(f'{work_dir}: ' + '; '.join(diff))
                continue
            published = tree_run(request, row, seed) if record is None else None
            runs[row.key][seed] = published or collect.collect_run(work_dir,
                                                                   request.warmup_iters)
    if request.collect_only and not any(run.status != 'missing' for seeds in runs.values()
                                        for run in seeds.values()):
        raise SystemExit(f'error: --collect-only found no run of the selected rows under '
                         f'{request.bench_dir} (seeds 0..{request.seeds - 1}'
                         + (f'; left out for other settings: {"; ".join(stale)}' if stale else '')
                         + '). Train them first, or point --work-dir at the runs.')
    return runs, stale


def export_results(request: TableRequest, runs) -> None:
    """Export every finished mini run where :mod:`.publish` says, and print where it went."""
    if request.benchmark != 'mini':
        return
    committed = request.committed()
    for line in publish.export_runs(
            request.results, 'mini', request.dataset, runs,
            lambda key, seed, precision: requested_settings(committed, get_row(key), seed,
                                                            precision)):
        print(line)


def aggregate_results(request: TableRequest, rows, inspected: Dict[str, Inspection], failures,
                      runs):
    out = {}
    for row in rows:
        inspection = inspected[row.key]
        if inspection.status != 'ok':
            out[row.key] = collect.RowResult(key=row.key, status=inspection.status,
                                             reason=inspection.reason)
            continue
        res = collect.aggregate(row.key, runs[row.key], runs.get(row.baseline))
        res.hyperparams = inspection.counted.count
        res.hyperparam_names = tuple(p.name for p in inspection.counted.params)
        failed = [f'seed {s}: {msg}' for (k, s), msg in failures.items() if k == row.key]
        if failed:
            res.reason = '; '.join(failed)
            if res.ap.n == 0:
                res.status = 'failed'
        elif res.status == 'not run':
            res.reason = 'no finished run under ' + request.bench_dir
        out[row.key] = res
    return out

"""What a Table 1 request trains, skips, reuses or refuses, decided before anything trains.

:func:`plan_runs` reads the work dirs and the results tree and returns a :class:`Plan`, plain
data that :func:`.runs.run_table` acts on and that tests check without training. A run's
settings identity is predicted from the row's config and the request
(:func:`requested_settings`), the same way ``tools/train.py`` builds it, so a work dir or a
committed record of other settings is never taken for the requested run.
"""
import dataclasses
import functools
import shutil
from typing import List, Optional, Tuple

from mmdet_imbalance import config_paths
from mmdet_imbalance.engine.run_record import read_record, run_settings, settings_diff
from . import collect, results
from .request import TableRequest, run_overrides
from .rows import Row, get_row

NOT_IMPLEMENTED = 'not implemented'


@dataclasses.dataclass(frozen=True)
class Inspection:
    """Whether a row can run: ``status`` 'ok' or 'not implemented' (with the ``reason``), and its
    counted hyper-parameters (:func:`.hyperparams.count_hyperparams`)."""
    status: str
    reason: str = ''
    counted: object = None


def inspect_row(row: Row, benchmark: str) -> Inspection:
    """'not implemented' when the row's config is missing, does not load, or names modules no
    registry knows."""
    from mmdet_imbalance.config_builder import load_config
    from mmdet_imbalance.table.hyperparams import count_hyperparams
    rel = row.config(benchmark)
    try:
        path = config_paths.resolve(rel)
    except FileNotFoundError:
        return Inspection(NOT_IMPLEMENTED, f'no config {rel}')
    try:
        cfg = load_config(path)
        counted = count_hyperparams(row, cfg)
    except (ImportError, KeyError, TypeError, ValueError, FileNotFoundError) as err:
        # A config that does not parse (SyntaxError) is an error of the request, not a row to
        # come: it propagates.
        return Inspection(NOT_IMPLEMENTED, f'{rel}: {type(err).__name__}: {err}')
    return Inspection('ok', '', counted)


def requested_settings(request: TableRequest, row: Row, seed: int,
                       precision: Optional[str] = None) -> dict:
    """The run settings (:func:`run_settings`) that the run of ``row`` / ``seed`` will have, at
    ``precision`` (default: the request's)."""
    return dict(_settings(request.benchmark, request.mini_dataset,
                          None if request.benchmark == 'mini' else request.data_root,
                          seed, request.max_iters, request.cfg_options,
                          precision or request.precision, row.key))


@functools.lru_cache(maxsize=None)
def _settings(benchmark, dataset, data_root, seed, max_iters, cfg_options, precision,
              key) -> dict:
    # Building a merged config takes about a second; a table asks for the same run's settings
    # when it plans the runs and again when it collects them.
    from mmdet_imbalance.config_builder import build_runner_config
    cfg = build_runner_config(config_paths.resolve(get_row(key).config(benchmark)),
                              dataset=dataset, data_root=data_root,
                              cfg_options=run_overrides(seed, max_iters, cfg_options),
                              precision=precision, check_files=False)
    return run_settings(cfg)


def tree_run(request: TableRequest, row: Row, seed: int):
    """With ``--reuse-results``: the finished run of ``row`` / ``seed`` in the results tree when
    its settings are the requested ones (so adding seeds 1-2 to a published seed 0 trains only
    the new seeds), else None. A record of other settings is never reused."""
    if not request.reuse_results or request.benchmark != 'mini' or request.max_iters:
        return None
    folder = results.run_dir(request.results, request.benchmark, request.dataset, seed, row.key)
    run, _ = results.load_run(folder, lambda record: requested_settings(request, row, seed),
                              request.warmup_iters)
    return run if run is not None and run.finished else None


def tree_runs(request: TableRequest, rows, required: bool = True):
    """{key: {seed: RunResult}} from the results tree, every seed found there, and the records
    left out for other settings (an error when there is no run and ``required``)."""
    def expected(key, seed, record):
        return requested_settings(request, get_row(key), seed, precision=record.precision)

    dataset = request.mini_dataset
    try:
        runs, stale = results.load_tree(request.results, request.benchmark, dataset,
                                        [r.key for r in rows], expected, request.warmup_iters)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    if required and not any(runs.values()):
        raise SystemExit(f'error: no run record of the selected rows under '
                         f'{results.table_dir(request.results, request.benchmark, dataset)}'
                         + (' (left out for other settings: ' + '; '.join(stale) + ')'
                            if stale else ''))
    return runs, stale


def check_tree_precision(request: TableRequest, rows) -> None:
    """With ``--reuse-results``: refuse to add seeds of another precision than the tree's runs of
    the same rows, before anything trains (the table could not be built from such a tree)."""
    runs, _ = tree_runs(request, rows, required=False)
    held = {str(run.settings.get('precision')) for seeds in runs.values() for run in seeds.values()}
    if held and held != {request.precision}:
        raise SystemExit(f'error: the runs of these rows in {request.results} are '
                         f'{"/".join(held)}, this request trains {request.precision}; pass '
                         f'--precision {"/".join(held)} to add seeds to them, or another '
                         '--results.')


@dataclasses.dataclass
class Plan:
    """What a request does with each (seed, row) it may train.

    ``train``: to train, in order; ``skipped``: finished in the work dir with the same settings;
    ``reused``: taken from the results tree; ``conflicts``: work dirs holding runs of other
    settings (the request is refused when there is any).
    """
    train: List[Tuple[int, Row]] = dataclasses.field(default_factory=list)
    skipped: List[Tuple[int, Row, collect.RunResult]] = dataclasses.field(default_factory=list)
    reused: List[Tuple[int, Row, collect.RunResult]] = dataclasses.field(default_factory=list)
    conflicts: List[str] = dataclasses.field(default_factory=list)


def plan_runs(request: TableRequest, runnable: List[Row]) -> Plan:
    """The plan of a training request over the ``runnable`` rows, seeds in the outer loop (every
    row of seed 0 before seed 1). ``--force`` removes the work dirs it retrains."""
    if request.reuse_results:
        check_tree_precision(request, runnable)
    plan = Plan()
    for seed in range(request.seeds):
        for row in runnable:
            work_dir = request.run_dir(row, seed)
            if request.force:
                shutil.rmtree(work_dir, ignore_errors=True)
            record = read_record(work_dir)
            if record is not None:
                diff = settings_diff(record.settings, requested_settings(request, row, seed))
                if diff:
                    plan.conflicts.append(f'{work_dir}: {record.status} run of other '
                                          'settings: ' + '; '.join(diff))
                    continue
            done = collect.collect_run(work_dir, request.warmup_iters)
            if done.finished and done.source == 'run.json':
                plan.skipped.append((seed, row, done))
                continue
            published = tree_run(request, row, seed) if record is None else None
            if published is not None:
                plan.reused.append((seed, row, published))
                continue
            plan.train.append((seed, row))
    return plan


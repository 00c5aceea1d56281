"""The published table as the pictures read it: the verified runs of a results tree, aggregated
over seeds, and the rows a picture shows by default.

The same reader as ``--from-results`` (:func:`.results.load_tree`, which verifies every folder),
with the settings each row's current config gives (:func:`expected_settings`). The model index
(:mod:`.metafile`) reads the tree through :func:`load_results`.
"""
import glob
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from . import collect, results
from .collect import RowResult, RunResult
from .rows import ROWS, Row, get_row, select_rows

Runs = Dict[str, Dict[int, RunResult]]


def tree_datasets(results_root: str, benchmark: str) -> List[Optional[str]]:
    """The datasets the results tree holds runs of for ``benchmark`` (None: COCO)."""
    if benchmark == 'coco':
        return [None] if osp.isdir(osp.join(results_root, 'coco')) else []
    found = []
    for path in sorted(glob.glob(osp.join(results_root, f'{benchmark}-*'))):
        if osp.isdir(path):
            found.append(osp.basename(path)[len(benchmark) + 1:])
    return found


def expected_settings(benchmark: str, dataset: Optional[str], key: str, seed: int,
                      record) -> dict:
    """The settings the row's current config gives for ``seed``, at the record's precision: what
    the table tool trains and checks a record against (:func:`.plan.requested_settings`)."""
    import tempfile

    from .plan import requested_settings
    from .request import TableRequest
    request = TableRequest(rows=(), work_dir=tempfile.gettempdir(), results='',
                           benchmark=benchmark, dataset=dataset,
                           precision=record.precision or 'fp32',
                           data_root=osp.abspath('data/coco'))
    return requested_settings(request, get_row(key), seed)


def load_results(results_root: str, benchmark: str, keys: List[str],
                 warmup_iters: int = collect.WARMUP_ITERS):
    """{dataset: {key: {seed: RunResult}}} of the usable records, and the stale ones."""
    out, stale = {}, []
    for dataset in tree_datasets(results_root, benchmark):

        def expected(key, seed, record, dataset=dataset):
            return expected_settings(benchmark, dataset, key, seed, record)

        runs, left_out = results.load_tree(results_root, benchmark, dataset, keys, expected,
                                           warmup_iters)
        out[dataset] = runs
        stale += left_out
    return out, stale


def load_table(root: str, dataset: Optional[str], keys: Optional[Sequence[str]] = None,
               benchmark: str = 'mini') -> Tuple[Runs, Dict[str, RowResult], List[str]]:
    """({key: {seed: run}}, {key: aggregated row}, stale records) of the tree's usable runs."""
    keys = list(keys or [row.key for row in ROWS if row.config(benchmark)])

    def expected(key, seed, record):
        return expected_settings(benchmark, dataset, key, seed, record)

    runs, stale = results.load_tree(root, benchmark, dataset, keys, expected,
                                    collect.WARMUP_ITERS)
    table = {key: collect.aggregate(key, runs[key], runs.get(get_row(key).baseline))
             for key in keys}
    return runs, table, stale


def outside_the_noise(table: Dict[str, RowResult]) -> List[str]:
    """The method rows whose ΔAP's paired 95 % interval excludes 0 (two seeds or more)."""
    return [key for key, res in table.items() if res.delta_noise is False]


def choose_rows(spec: str, root: str, dataset: Optional[str],
                benchmark: str = 'mini') -> Tuple[List[Row], Runs, Dict[str, RowResult]]:
    """The rows a picture shows, in the table's order, with the runs and the table they come from.

    ``spec`` is ``published`` (every baseline with a run, and every row whose ΔAP is outside the
    noise) or what ``tools/table1.py --rows`` takes (a row's baseline comes with it)."""
    if spec == 'published':
        runs, table, _ = load_table(root, dataset, benchmark=benchmark)
        keys = {key for key, res in table.items()
                if get_row(key).is_baseline and res.ap.n} | set(outside_the_noise(table))
    else:
        rows = select_rows(spec, benchmark)
        runs, table, _ = load_table(root, dataset, [row.key for row in rows], benchmark)
        keys = {row.key for row in rows}
    keys |= {get_row(key).baseline for key in keys if get_row(key).baseline}
    return [row for row in ROWS if row.key in keys], runs, table

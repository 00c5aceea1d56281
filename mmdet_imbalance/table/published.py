"""The published table as the pictures read it: the verified runs of a results tree, aggregated
over seeds, and the rows a picture shows by default.

The same reader as ``--from-results`` (:func:`.results.load_tree`, which verifies every folder),
with the settings each row's current config gives (:func:`.metafile.expected_settings`).
"""
from typing import Dict, List, Optional, Sequence, Tuple

from . import collect, results
from .collect import RowResult, RunResult
from .rows import ROWS, Row, get_row, select_rows

Runs = Dict[str, Dict[int, RunResult]]


def load_table(root: str, dataset: Optional[str], keys: Optional[Sequence[str]] = None,
               benchmark: str = 'mini') -> Tuple[Runs, Dict[str, RowResult], List[str]]:
    """({key: {seed: run}}, {key: aggregated row}, stale records) of the tree's usable runs."""
    from .metafile import expected_settings
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

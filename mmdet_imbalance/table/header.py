"""What a table's header says about its runs: versions, machines, speeds, and the seeds of each
row with the pairs its ΔAP uses.

Seed accounting is per row: a row's AP is the mean over the seeds it has, its ΔAP over the seeds
that both it and its baseline have. When a baseline lacks a seed that one of its rows has, that
row's ΔAP uses fewer pairs than it has seeds; :func:`seed_warnings` names the missing seed, and
the header, ``table1.json`` and ``table1.csv`` give the pairs of every row.
"""
from typing import Dict, Iterable, List, Sequence

from .collect import RowResult
from .rows import Row


def versions(settings: dict) -> str:
    """What a run is of: the dataset and recipe versions and its iteration count (a smoke run's
    numbers must not pass for the recipe's)."""
    return (f"dataset {settings.get('dataset')} v{settings.get('dataset_version')}, "
            f"recipe v{settings.get('recipe_version')}, {settings.get('max_iters')} iterations")


def machine(env: dict) -> str:
    if not env:
        return 'unknown machine'
    device = env.get('gpu') or f"CPU ({env.get('cpu_count')} cores, torch threads " \
                               f"{env.get('torch_threads')})"
    packages = env.get('packages') or {}
    return (f"{device}, {env.get('cpu')}, native bf16 {env.get('native_bf16')}, python "
            f"{env.get('python')}, torch {packages.get('torch')}, mmdet {packages.get('mmdet')}")


def gflops(runs) -> str:
    """The range of the matrix-product GFLOP/s the runs measured at their start."""
    out = []
    for dtype in ('fp32', 'bf16'):
        values = [run.environment['gemm_gflops'][dtype] for run in runs
                  if (run.environment.get('gemm_gflops') or {}).get(dtype)]
        if values:
            out.append(f'{dtype} {min(values):.0f}-{max(values):.0f}')
    return ', '.join(out) or '-'


# -- seeds ---------------------------------------------------------------------------------------
def fmt_seeds(seeds: Iterable[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``'0-2, 4'``."""
    seeds = sorted(seeds)
    spans: List[List[int]] = []
    for seed in seeds:
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ', '.join(str(a) if a == b else f'{a}-{b}' for a, b in spans) or '-'


def row_seeds(result: RowResult) -> List[int]:
    """The seeds of a row's finished runs."""
    return sorted(seed for seed, run in result.runs.items() if run.finished)


def baseline_missing(row: Row, results: Dict[str, RowResult]) -> List[int]:
    """The seeds a row has that its baseline has not finished (none for a baseline)."""
    base = results.get(row.baseline) if row.baseline else None
    if base is None:
        return []
    return sorted(set(row_seeds(results[row.key])) - set(row_seeds(base)))


def seed_warnings(rows: Sequence[Row], results: Dict[str, RowResult]) -> List[str]:
    """One line per row whose ΔAP uses fewer pairs than it has seeds, naming the baseline's
    missing seeds."""
    out = []
    for row in rows:
        missing = baseline_missing(row, results)
        if missing:
            res = results[row.key]
            out.append(f'warning: baseline {row.baseline} has no finished seed '
                       f'{fmt_seeds(missing)}, which {row.key} has: the ΔAP of {row.key} uses '
                       f'{len(res.delta_seeds)} pair(s) (seeds {fmt_seeds(res.delta_seeds)}) of '
                       f'its {len(row_seeds(res))} seed(s)')
    return out


def seeds_line(rows: Sequence[Row], results: Dict[str, RowResult]) -> str:
    """The header's account of seeds: the rows grouped by the seeds they have, then every row
    whose ΔAP uses fewer pairs than it has seeds."""
    groups: Dict[str, List[str]] = {}
    for row in rows:
        seeds = row_seeds(results[row.key])
        if seeds:
            groups.setdefault(fmt_seeds(seeds), []).append(row.key)
    text = '; '.join(f'{seeds} ({", ".join(keys)})' for seeds, keys in groups.items()) or '-'
    short = [f'{row.key} {len(results[row.key].delta_seeds)} of '
             f'{len(row_seeds(results[row.key]))} (baseline lacks seed '
             f'{fmt_seeds(baseline_missing(row, results))})'
             for row in rows if baseline_missing(row, results)]
    return (f'Seeds per row: {text}; ΔAP pairs: '
            + ('; '.join(short) if short else "every row's seeds") + '  ')

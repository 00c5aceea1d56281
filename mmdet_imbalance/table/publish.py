"""Where a finished run of a table request is exported: the published tree, a tree of its own
kind, or nowhere.

The published tree, ``results/<benchmark>-<dataset>/``, is what the README table, the model
index and ``mim search`` read, so a run reaches it only when it is a run of the published table:

1. A run whose settings are not those its row's config gives for its seed (at the run's own
   precision) is exported **nowhere**: a ``--max-iters`` smoke run, a run with
   ``--cfg-options``, anything else that changes the merged config. It stays in its work dir.
2. A run of another **kind** than the published tree's current runs (same dataset, recipe and
   backbone versions) is exported to ``results/<kind>/<benchmark>-<dataset>/``, a tree of its
   own where its seeds accumulate and that no table or index reads unless it is named with
   ``--results``. The kind is the precision, the device and the number of ranks (each takes the
   config's batch): ``fp32-cpu``, ``bf16-cpu``, ``bf16-nvidia-h100-80gb-hbm3-8ranks``. A
   newcomer's ``make demo`` on a CPU where ``--precision auto`` picks bf16 lands in
   ``results/bf16-cpu/`` and leaves the published fp32 runs alone.
3. Otherwise it replaces the same row and seed in the published tree; that is how seeds are
   added and how a new recipe version refills the tree.

CPU models of one device kind differ in speed (docs/calibration.md); the table's speed column
is a ratio paired by seed on one machine, and its header lists every machine, so CPU models are
not told apart here.
"""
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Tuple

from mmdet_imbalance.engine.run_record import RUN_FILE, read_record, settings_diff
from . import results
from .collect import RunResult

#: The settings that make a record of the published tree one of its current runs.
CURRENT_KEYS = ('dataset', 'dataset_version', 'recipe_version', 'backbone_sha256')


def kind(settings: dict, environment: dict, world_size: int = 1) -> str:
    """``<precision>-<device>`` of a run, e.g. ``fp32-cpu``; ``-<n>ranks`` for a distributed run,
    whose batch is n times the config's."""
    device = (environment or {}).get('gpu') or 'cpu'
    slug = re.sub(r'[^a-z0-9]+', '-', str(device).lower()).strip('-')
    ranks = f'-{world_size}ranks' if (world_size or 1) > 1 else ''
    return f"{settings.get('precision')}-{slug}{ranks}"


def tree_kinds(tree: str, settings: dict) -> Dict[str, str]:
    """{kind: one folder} of the runs in ``tree`` that are current for a run of ``settings``."""
    import glob
    found: Dict[str, str] = {}
    for path in sorted(glob.glob(osp.join(tree, 'seed*', '*', RUN_FILE))):
        record = read_record(path)
        if record is None or any(record.settings.get(k) != settings.get(k)
                                 for k in CURRENT_KEYS):
            continue
        found.setdefault(kind(record.settings, record.environment, record.world_size),
                         osp.dirname(path))
    return found


def destination(root: str, benchmark: str, dataset: Optional[str], seed: int, key: str,
                run: RunResult, committed: dict) -> Tuple[Optional[str], str]:
    """(the folder to export ``run`` to or None, and the line that says so and why)."""
    name = f'{key} seed {seed}'
    diff = settings_diff(run.settings, committed)
    if diff:
        return None, (f'  not exported: {name} ({run.work_dir}) has other settings than the '
                      f'row\'s config ({"; ".join(diff)}); it stays in its work dir only')
    tree = results.table_dir(root, benchmark, dataset)
    record = read_record(run.work_dir)
    own = kind(run.settings, run.environment, record.world_size if record else 1)
    held = tree_kinds(tree, run.settings)
    if held and own not in held:
        others = ', '.join(f'{k} (e.g. {folder})' for k, folder in sorted(held.items()))
        dest = results.run_dir(osp.join(root, own), benchmark, dataset, seed, key)
        return dest, (f'  exported to {dest}, a tree of its own: this run is {own}, the '
                      f'published tree {tree} holds {others}. Move or delete those runs to '
                      f'publish {own} runs instead.')
    dest = results.run_dir(root, benchmark, dataset, seed, key)
    return dest, f'  exported: {name} -> {dest}'


def export_runs(root: str, benchmark: str, dataset: Optional[str],
                runs: Dict[str, Dict[int, RunResult]],
                committed: Callable[[str, int, Optional[str]], dict]) -> List[str]:
    """Export every finished run of ``runs`` ({key: {seed: run}}) where :func:`destination`
    says; ``committed(key, seed, precision)`` gives the settings of the row's config for that
    seed. Returns one line per run, saying where it went and why."""
    lines = []
    tree = osp.abspath(results.table_dir(root, benchmark, dataset))
    for key, seeds in runs.items():
        for seed, run in sorted(seeds.items()):
            # A run taken from the tree (--reuse-results) is already there.
            if not (run.finished and run.source == 'run.json') or \
                    osp.abspath(run.work_dir).startswith(tree + osp.sep):
                continue
            dest, line = destination(root, benchmark, dataset, seed, key, run,
                                     committed(key, seed, run.settings.get('precision')))
            if dest is not None:
                try:
                    results.export_run(run.work_dir, dest)
                except ValueError as err:
                    line = f'  not exported: {err}'
            lines.append(line)
    return lines

"""The committed results tree: small text records of every finished run of a published table.

Layout, one folder per run::

    results/<benchmark>-<dataset>/seed<k>/<row key>/
        run.json     the run record (settings, machine, package versions, AP, per-iteration times)
        config.py    the merged config the run trained with (mmengine's dump in its work dir)
        eval.log     the evaluation lines of its log

The table can be rebuilt from this tree alone (``tools/table1.py --from-results``), and seeds
accumulate: exporting seed 1 later adds ``seed1/`` next to ``seed0/``. A record counts for a row
only when its settings are those the row's current config gives for that seed (same config
content, dataset and recipe versions, precision, iterations); any other record is listed as
stale and left out, so the table never mixes runs of different settings.
"""
import glob
import os
import os.path as osp
import re
import shutil
from typing import Callable, Dict, List, Optional, Tuple

from mmdet_imbalance.engine.run_record import (RUN_FILE, RunRecord, read_record, settings_diff,
                                               write_json_atomic)
from .collect import RunResult, from_record

EVAL_PATTERN = re.compile(r'bbox_mAP|Average (Precision|Recall)|Evaluating bbox')


def table_dir(root: str, benchmark: str, dataset: Optional[str]) -> str:
    return osp.join(root, f'{benchmark}-{dataset}' if dataset else benchmark)


def run_dir(root: str, benchmark: str, dataset: Optional[str], seed: int, key: str) -> str:
    return osp.join(table_dir(root, benchmark, dataset), f'seed{seed}', key)


def _merged_config(work_dir: str, record: RunRecord) -> Optional[str]:
    """mmengine's dump of the merged config in the work dir (``<config stem>.py``)."""
    stem = osp.splitext(record.config_name)[0]
    path = osp.join(work_dir, f'{stem}.py')
    return path if stem and osp.isfile(path) else None


def _eval_lines(work_dir: str) -> List[str]:
    """The evaluation lines of the newest mmengine text log of the work dir."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    if not logs:
        return []
    with open(logs[-1], errors='replace') as f:
        return [line.rstrip('\n') for line in f if EVAL_PATTERN.search(line)]


def export_run(work_dir: str, dest: str) -> RunRecord:
    """Copy a finished run's record, merged config and evaluation lines into ``dest``."""
    record = read_record(work_dir)
    if record is None or record.status != 'finished':
        raise ValueError(f'{work_dir}: no finished run record to export')
    os.makedirs(dest, exist_ok=True)
    data = record.to_dict()
    data['iter_times'] = [round(t, 4) if isinstance(t, float) else t for t in record.iter_times]
    data['work_dir'] = None  # a path on the machine that trained it, meaningless elsewhere
    write_json_atomic(osp.join(dest, RUN_FILE), data)
    config = _merged_config(work_dir, record)
    if config:
        shutil.copyfile(config, osp.join(dest, 'config.py'))
    with open(osp.join(dest, 'eval.log'), 'w') as f:
        f.write('\n'.join(_eval_lines(work_dir)) + '\n')
    return record


def load_tree(root: str, benchmark: str, dataset: Optional[str], keys: List[str],
              expected: Callable[[str, int, RunRecord], dict],
              warmup_iters: int) -> Tuple[Dict[str, Dict[int, RunResult]], List[str]]:
    """The finished runs of ``keys`` in the tree, as {key: {seed: RunResult}}, and the stale ones.

    ``expected(key, seed, record)`` gives the settings the row's current config has for that
    seed (at the record's precision); a record with other settings is stale: reported, not used.
    """
    base = table_dir(root, benchmark, dataset)
    runs: Dict[str, Dict[int, RunResult]] = {key: {} for key in keys}
    stale: List[str] = []
    for seed_dir in sorted(glob.glob(osp.join(base, 'seed*'))):
        match = re.fullmatch(r'seed(\d+)', osp.basename(seed_dir))
        if not match:
            continue
        seed = int(match.group(1))
        for key in keys:
            folder = osp.join(seed_dir, key)
            run, diff = load_run(folder, lambda record: expected(key, seed, record), warmup_iters)
            if diff:
                stale.append(f'{folder}: ' + '; '.join(diff))
            elif run is not None:
                runs[key][seed] = run
    check_one_precision(runs, base)
    return runs, stale


def check_one_precision(runs: Dict[str, Dict[int, RunResult]], where: str) -> None:
    """Refuse runs of more than one precision in one table: a row's mean would mix them, and a
    ΔAP would pair a bf16 run with an fp32 baseline (bf16 costs about 1 AP on its own,
    docs/calibration.md). Machines resolve ``--precision auto`` differently, so seeds added on
    another machine can arrive in another precision."""
    found: Dict[str, List[str]] = {}
    for key, seeds in runs.items():
        for seed, run in sorted(seeds.items()):
            found.setdefault(str(run.settings.get('precision')), []).append(
                osp.join(f'seed{seed}', key))
    if len(found) > 1:
        listed = '; '.join(f'{precision}: {len(folders)} run(s), e.g. {folders[0]}'
                           for precision, folders in sorted(found.items()))
        raise ValueError(f'{where} holds runs of more than one precision ({listed}); a table '
                         f'compares runs of one precision. Move one precision\'s runs to another '
                         f'results tree (--results), or retrain them at the other precision.')


def load_run(folder: str, expected: Callable[[RunRecord], dict],
             warmup_iters: int) -> Tuple[Optional[RunResult], List[str]]:
    """The run recorded in ``folder`` of the tree and ``[]`` when its settings are
    ``expected(record)``; ``(None, differences)`` when they are not, ``(None, [])`` when the
    folder holds no record."""
    record = read_record(osp.join(folder, RUN_FILE))
    if record is None:
        return None, []
    diff = settings_diff(record.settings, expected(record))
    if diff:
        return None, diff
    return from_record(folder, record, warmup_iters), []

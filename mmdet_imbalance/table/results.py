"""The committed results tree: small text records of every finished run of a published table.

Layout, one folder per run::

    results/<benchmark>-<dataset>/seed<k>/<row key>/
        run.json     the run record (settings, machine, package versions, AP, per-iteration times)
        config.py    the merged config the run trained with (mmengine's dump in its work dir)
        eval.log     the evaluation lines of its log
        scalars.json its training curve: mmengine's logged scalars every 10 iterations

The table can be rebuilt from this tree alone (``tools/table1.py --from-results``), and seeds
accumulate: exporting seed 1 later adds ``seed1/`` next to ``seed0/``. A record counts for a row
only when its settings are those the row's current config gives for that seed (same config
content, dataset and recipe versions, precision, iterations); any other record is listed as
stale and left out, so the table never mixes runs of different settings. Every folder read is
verified first (:mod:`.verify`): a damaged or self-contradicting record stops the build.
Which tree a finished run is exported to, if any, is decided by :mod:`.publish`.
"""
import glob
import os
import os.path as osp
import re
import shutil
from typing import Callable, Dict, List, Optional, Tuple

from mmdet_imbalance.engine.run_record import (RUN_FILE, RunRecord, read_record, settings_diff,
                                               write_json_atomic)
from . import curves
from .collect import RunResult, from_record
from .verify import EVAL_LOG, RecordError, verify_folder

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
    """The evaluation lines of the newest mmengine text log of the work dir that has any (a run
    started and refused in the same work dir later leaves a newer log without them)."""
    for log in sorted(glob.glob(osp.join(work_dir, '*', '*.log')), reverse=True):
        with open(log, errors='replace') as f:
            lines = [line.rstrip('\n') for line in f if EVAL_PATTERN.search(line)]
        if lines:
            return lines
    return []


def export_run(work_dir: str, dest: str) -> RunRecord:
    """Copy a finished run's record, merged config, evaluation lines and curve into ``dest``.

    The folder is assembled next to ``dest`` and verified (:mod:`.verify`) before it replaces
    ``dest``, so the tree never holds a half-written or self-contradicting record."""
    record = read_record(work_dir)
    if record is None or record.status != 'finished':
        raise ValueError(f'{work_dir}: no finished run record to export')
    config = _merged_config(work_dir, record)
    if config and record.updated and osp.getmtime(config) > record.updated + 1:
        raise ValueError(f'{config}: rewritten after the run ended (by a later run started in '
                         'the same work dir), so it is not the config this run trained with; '
                         'not exported')
    tmp = f'{dest}.tmp{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        data = record.to_dict()
        data['iter_times'] = [round(t, 4) if isinstance(t, float) else t
                              for t in record.iter_times]
        data['work_dir'] = None  # a path on the machine that trained it, meaningless elsewhere
        curves.attach(work_dir, tmp, data, record)
        write_json_atomic(osp.join(tmp, RUN_FILE), data)
        if config:
            shutil.copyfile(config, osp.join(tmp, 'config.py'))
        with open(osp.join(tmp, EVAL_LOG), 'w') as f:
            f.write('\n'.join(_eval_lines(work_dir)) + '\n')
        try:
            verify_folder(tmp)
        except RecordError as err:
            raise ValueError(f'{work_dir}: not exported, its run fails a check: {err}') from None
        if osp.isdir(dest):
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
    for key in keys:
        for folder in sorted(glob.glob(osp.join(base, 'seed*', key))):
            # The seed is the record's own; its folder must be the one run_dir gives for it.
            run, diff = load_run(folder, lambda record: expected(key, record.seed, record),
                                 warmup_iters)
            if run is not None and folder != run_dir(root, benchmark, dataset, run.seed, key):
                diff, run = [f'seed {run.seed} recorded in the folder of another seed'], None
            if diff:
                stale.append(f'{folder}: ' + '; '.join(diff))
            elif run is not None:
                runs[key][run.seed] = run
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
    ``expected(record)``; ``(None, differences)`` when they are not, ``(None, [])`` when there is
    no such folder. A folder whose record fails verification raises :class:`RecordError`."""
    if not osp.isdir(folder) or not os.listdir(folder):
        return None, []
    record = verify_folder(folder)
    diff = settings_diff(record.settings, expected(record))
    if diff:
        return None, diff
    return from_record(folder, record, warmup_iters), []


def reexport_curves(root: str, work_root: str, benchmark: str,
                    dataset: Optional[str]) -> List[str]:
    """Give every run folder of a table's tree the curve of the run that made it, read from the
    table tool's work dirs (``<work_root>/<benchmark>-<dataset>/seed<k>/<config stem>/``): for
    runs exported before the export kept curves. A work dir counts only when its record is the
    exported run (same settings, start time and AP); returns one line per folder."""
    import json

    from .rows import ROWS
    stems = {row.key: osp.splitext(osp.basename(row.config(benchmark)))[0]
             for row in ROWS if row.config(benchmark)}
    base = table_dir(root, benchmark, dataset)
    lines = []
    for folder in sorted(glob.glob(osp.join(base, 'seed*', '*'))):
        seed_dir, key = osp.split(folder)
        if key not in stems or not osp.isdir(folder):
            continue
        published = verify_folder(folder)
        work_dir = osp.join(work_root, osp.basename(base), osp.basename(seed_dir), stems[key])
        record = read_record(work_dir)
        if record is None:
            lines.append(f'{folder}: no run record in {work_dir}; curve not exported')
            continue
        if (record.settings, record.started, record.ap) != \
                (published.settings, published.started, published.ap):
            lines.append(f'{folder}: {work_dir} holds another run than the one exported there '
                         '(settings, start or AP differ); curve not exported')
            continue
        with open(osp.join(folder, RUN_FILE)) as f:
            data = json.load(f)
        if curves.attach(work_dir, folder, data, record) is None:
            lines.append(f'{folder}: {work_dir} has no scalars.json of the run; no curve')
            continue
        write_json_atomic(osp.join(folder, RUN_FILE), data)
        verify_folder(folder)
        lines.append(f'{folder}: curve of {data["curve"]["lines"]} lines from {work_dir}')
    return lines

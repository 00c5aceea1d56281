"""Training curves in the results tree: what mmengine logged during a run, every 10 iterations.

mmengine's ``LocalVisBackend`` writes every logged scalar of a run (each loss term, ``lr``,
``grad_norm`` when the optimizer clips, ``time``, ``data_time``, ``memory``) to
``<work_dir>/<timestamp>/vis_data/scalars.json``, one JSON object per logging step, and the
validation metrics as one more line. The export keeps those lines, merged over the timestamps
of a resumed run and rounded to 5 significant digits, as ``scalars.json`` in the run's results
folder: about 300 lines for a 3000-iteration mini run. The file keeps mmengine's format, so
``tools/plot_curves.py`` and mmdet's ``tools/analysis_tools/analyze_logs.py plot_curve`` read it.

The run's ``run.json`` in the tree names the file with its sha256 and line count (``curve``), so
the verification of the tree (:mod:`.verify`) fails on a curve that was edited, lost or taken
from another run.
"""
import hashlib
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmdet_imbalance.engine.run_record import RunRecord
from .collect import is_finite_number, read_json_lines, scalar_files

CURVE_FILE = 'scalars.json'
#: Iterations between two kept points (the mini runtime logs every 10 iterations).
INTERVAL = 10
DIGITS = 5


def is_val_line(line: dict) -> bool:
    """mmengine's validation lines carry the evaluator's prefixed keys (``coco/bbox_mAP``)."""
    return any('/' in key for key in line)


def _compact(line: dict) -> dict:
    return {k: float(f'{v:.{DIGITS}g}') if isinstance(v, float) else v for k, v in line.items()}


def extract(work_dir: str, record: RunRecord) -> List[dict]:
    """The curve of the run recorded in ``work_dir``: its training lines every ``INTERVAL``
    iterations and its validation lines, up to the record's last iteration, oldest first.

    A resumed run has one scalars file per start; a later file replaces the steps it logged
    again, and steps past the record's end (from a run that was overwritten by a shorter one)
    are dropped."""
    last = record.iter or 0
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    for path in scalar_files(work_dir):
        for line in read_json_lines(path):
            step = line.get('step')
            if not isinstance(step, int) or isinstance(step, bool) or not 0 < step <= last:
                continue
            if is_val_line(line):
                val[step] = line
            elif step % INTERVAL == 0 and ('loss' in line or 'lr' in line):
                train[step] = line
    lines = [(step, 0, train[step]) for step in train] + [(step, 1, val[step]) for step in val]
    return [_compact(line) for _, _, line in sorted(lines, key=lambda t: t[:2])]


def render(lines: List[dict]) -> str:
    return ''.join(json.dumps(line, separators=(', ', ': ')) + '\n' for line in lines)


def write(folder: str, lines: List[dict]) -> dict:
    """Write ``lines`` to ``<folder>/scalars.json``; returns what ``run.json`` records of it."""
    text = render(lines)
    with open(osp.join(folder, CURVE_FILE), 'w') as f:
        f.write(text)
    return dict(file=CURVE_FILE, lines=len(lines), sha256=hashlib.sha256(text.encode()).hexdigest())


def read(folder: str) -> List[dict]:
    """The curve lines of a results folder ([] when it has none)."""
    path = osp.join(folder, CURVE_FILE)
    return read_json_lines(path) if osp.isfile(path) else []


def problems(folder: str, data: dict, record: RunRecord) -> List[str]:
    """What is wrong with the curve of a results folder whose ``run.json`` holds ``data``; a
    record without a ``curve`` entry (exported before curves were kept) has nothing to check."""
    info = data.get('curve')
    if info is None:
        return []
    path = osp.join(folder, CURVE_FILE)
    if not isinstance(info, dict) or info.get('file') != CURVE_FILE:
        return [f"run.json's curve entry {info!r} does not name {CURVE_FILE}"]
    if not osp.isfile(path):
        return [f'{path}: missing, but run.json records a curve of {info.get("lines")} lines']
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != info.get('sha256'):
        return [f'{path}: its sha256 differs from the one run.json records (edited, or copied '
                'from another run); re-export it (tools/export_curves.py)']
    lines = read_json_lines(path)
    out = []
    if len(lines) != info.get('lines'):
        out.append(f'{path}: {len(lines)} readable lines where run.json records '
                   f'{info.get("lines")}')
    steps = [line.get('step') for line in lines if not is_val_line(line)]
    if any(not isinstance(s, int) for s in steps) or steps != sorted(set(steps)):
        out.append(f'{path}: training steps are not strictly increasing integers')
    elif steps and steps[-1] > (record.iter or 0):
        out.append(f'{path}: step {steps[-1]} is past the run\'s last iteration {record.iter}')
    final = (record.final_metrics or {}).get('coco/bbox_mAP')
    end = [line for line in lines if is_val_line(line) and line.get('step') == record.iter]
    if end and final is not None and not (
            is_finite_number(end[-1].get('coco/bbox_mAP'))
            and abs(end[-1]['coco/bbox_mAP'] - final) <= 10**-DIGITS):
        out.append(f"{path}: coco/bbox_mAP {end[-1].get('coco/bbox_mAP')} at the last iteration "
                   f'differs from the record\'s {final}')
    return out


def series(lines: List[dict], key: str) -> Tuple[List[int], List[float]]:
    """(steps, values) of one training scalar of a curve (finite values only)."""
    points = [(line['step'], float(line[key])) for line in lines
              if not is_val_line(line) and is_finite_number(line.get(key))
              and isinstance(line.get('step'), int)]
    return [s for s, _ in points], [v for _, v in points]


def keys_of(lines: List[dict]) -> List[str]:
    """The training scalars a curve holds, in first-seen order."""
    seen: Dict[str, None] = {}
    for line in lines:
        if not is_val_line(line):
            for key in line:
                if key not in ('step', 'iter', 'epoch'):
                    seen.setdefault(key)
    return list(seen)


def attach(work_dir: str, folder: str, data: dict, record: RunRecord) -> Optional[dict]:
    """Write the curve of the run in ``work_dir`` into the results ``folder`` and name it in
    ``data`` (the folder's run.json content, written by the caller); None when the work dir has
    no scalars file of that run."""
    lines = extract(work_dir, record)
    if not any(not is_val_line(line) for line in lines):
        data.pop('curve', None)
        return None
    data['curve'] = write(folder, lines)
    return data['curve']

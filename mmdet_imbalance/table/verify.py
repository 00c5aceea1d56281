"""Verification of a run folder of the results tree: a record is evidence only when it is whole
and agrees with itself.

Every reader of the tree (the table's ``--from-results`` and ``--reuse-results``, the model
index) loads a folder through :func:`verify_folder`, and a folder that fails a check stops the
build with a :class:`RecordError` that names the file and the check; it is never left out in
silence. The checks:

* ``run.json`` parses, is a JSON object of the current record schema, and its run finished;
* its ``ap`` is its own last evaluation's ``ap``, that evaluation's metrics are its
  ``final_metrics``, and ``ap`` is 100 x ``final_metrics['coco/bbox_mAP']`` (0 when the metric
  has no box key: no detection, see ``ImbalanceTableHook``), within :data:`AP_TOLERANCE`;
* the last evaluation is at the run's last iteration;
* ``eval.log`` exists and its last ``coco/bbox_mAP``, ``imbalance/ap`` and
  ``bbox_mAP_copypaste`` values are the record's, to the digits the log prints;
* the curve (``scalars.json``), when ``run.json`` names one, is the one named (:mod:`.curves`).
"""
import json
import math
import os.path as osp
import re
from typing import List

from mmdet_imbalance.engine.run_record import AP_KEY, RUN_FILE, SCHEMA, RunRecord
from . import curves

EVAL_LOG = 'eval.log'
#: The largest accepted gap between a record's ``ap`` and 100 x its own metric: half a unit of
#: the finest digit the table files print (two decimals), so no accepted gap can show in them.
AP_TOLERANCE = 0.005


class RecordError(ValueError):
    """A run folder of the results tree that fails a check; the message names the file and it."""


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise RecordError(f'{path}: cannot be read ({err.strerror or err})') from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise RecordError(f'{path}: not valid JSON ({err}); the record is damaged. Restore it '
                          '(git checkout) or export the run again') from None
    if not isinstance(data, dict):
        raise RecordError(f'{path}: holds a JSON {type(data).__name__}, not a run record')
    if data.get('schema') != SCHEMA:
        raise RecordError(f'{path}: schema {data.get("schema")!r}, where the run-record schema is '
                          f'{SCHEMA}; restore the record or export the run again')
    return data


def record_problems(record: RunRecord) -> List[str]:
    """What contradicts itself in a finished record's AP, its evaluations and its metrics."""
    if record.status != 'finished':
        return [f'status {record.status!r}: the results tree holds finished runs only']
    if not record.evaluations or not isinstance(record.evaluations[-1], dict):
        return ['no evaluation recorded']
    last = record.evaluations[-1]
    out = []
    if last.get('metrics') != record.final_metrics:
        out.append("final_metrics differ from the last evaluation's metrics")
    if not (_number(record.ap) and _number(last.get('ap')) and record.ap == last['ap']):
        out.append(f"ap {record.ap!r} differs from the last evaluation's ap {last.get('ap')!r}")
    metric = (record.final_metrics or {}).get(AP_KEY)
    expected = 0. if metric is None else 100. * metric if _number(metric) else None
    if expected is None or not _number(record.ap) or abs(record.ap - expected) > AP_TOLERANCE:
        out.append(f"ap {record.ap!r} is not 100 x its own final_metrics['{AP_KEY}'] "
                   f'({metric!r})')
    if last.get('iter') != record.iter:
        out.append(f"the last evaluation (iter {last.get('iter')}) is not at the run's last "
                   f'iteration ({record.iter})')
    return out


def _last(pattern: str, text: str):
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


def log_problems(path: str, record: RunRecord) -> List[str]:
    """What in the run's evaluation lines disagrees with its record."""
    if not osp.isfile(path):
        return [f'{path}: missing (the evaluation lines of the run\'s log)']
    with open(path, errors='replace') as f:
        text = f.read()
    metric = (record.final_metrics or {}).get(AP_KEY)
    out = []
    logged = _last(r'coco/bbox_mAP: (-?\d+\.\d+)', text)
    if metric is not None and logged is None:
        out.append(f'{path}: holds no coco/bbox_mAP line, the record has {metric}')
    elif metric is not None and abs(logged - metric) > 5e-5:
        out.append(f'{path}: last coco/bbox_mAP {logged} differs from the record\'s {metric}')
    copied = _last(r'bbox_mAP_copypaste: (-?\d+\.\d+)', text)
    if metric is not None and copied is not None and abs(copied - metric) > 5e-4:
        out.append(f'{path}: last bbox_mAP_copypaste {copied} differs from the record\'s {metric}')
    ap = _last(r'imbalance/ap: (-?\d+\.\d+)', text)
    if ap is not None and _number(record.ap) and abs(ap - record.ap) > 5e-5:
        out.append(f'{path}: last imbalance/ap {ap} differs from the record\'s ap {record.ap}')
    return out


def verify_folder(folder: str) -> RunRecord:
    """The run record of a results-tree folder, after every check; :class:`RecordError` names
    the first file that fails and every check it fails."""
    path = osp.join(folder, RUN_FILE)
    data = _read(path)
    try:
        record = RunRecord.from_dict(data)
        found = record_problems(record)
    except (TypeError, AttributeError, KeyError) as err:
        raise RecordError(f'{path}: malformed record ({type(err).__name__}: {err})') from None
    if found:
        raise RecordError(f'{path}: ' + '; '.join(found))
    found = (log_problems(osp.join(folder, EVAL_LOG), record)
             + curves.problems(folder, data, record))
    if found:
        raise RecordError('; '.join(found))
    return record

"""Write the Table 1 files: ``table1.md``, ``table1.csv``, ``table1.json`` and ``table1.png``.

Every number in them comes from :mod:`.collect` (our runs) or :mod:`.rows` (the review's printed
values and the mmdet zoo AP); nothing is typed here. A row whose config or modules do not exist
says "not implemented", a row not trained yet says "not run"; neither shows a number.

Columns: AP and ΔAP (mean ± std over seeds; ΔAP paired by seed against the row's baseline and
marked "noise" when its paired 95 % t-interval contains 0), the hyper-parameter count derived from
code next to the review's, the speed ratio (median steady-state seconds per training iteration
over the baseline's; > 1 is slower, shown with the review's arrow), peak memory, and the review's
AP / ΔAP / speed and the mmdet zoo AP side by side.

The plot (:mod:`.plot`) puts every row at (training time ratio, AP) with its seed spread, next to
every row's ΔAP with its interval.
"""
import csv
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from . import header
from .collect import RowResult, Stat, speed_arrow, t_interval
from .plot import write_plot
from .rows import Row

TABLE_NAME = 'table1'
CSV_FIELDS = (
    'key', 'solution', 'group', 'detector', 'baseline', 'status', 'seeds', 'seed_list',
    'delta_ap_pairs', 'delta_ap_seeds', 'baseline_missing_seeds', 'ap_mean', 'ap_std',
    'delta_ap_mean', 'delta_ap_std', 'delta_ap_ci95_low', 'delta_ap_ci95_high', 'delta_ap_noise',
    'speed_ratio_mean', 'speed_ratio_std', 'speed_arrow', 'sec_per_iter', 'peak_memory_mb',
    'memory_ratio', 'hyperparams', 'published_ap', 'published_delta_ap', 'published_params',
    'published_speed', 'published_codebase', 'zoo_ap', 'params_deviation', 'note')


def _num(x: Optional[float], digits: int = 4) -> Optional[float]:
    """A finite float rounded for the files, or None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return round(float(x), digits)
    return None


def record(row: Row, result: RowResult, results: Optional[Dict[str, RowResult]] = None) -> dict:
    """One row of the table as plain data (what the CSV and JSON hold); ``results`` (every
    row's) gives the seeds its baseline lacks."""
    implemented = result.status != 'not implemented'
    pub = row.published
    interval = t_interval(result.delta_ap)
    return dict(
        key=row.key, solution=row.display_name, group=row.group, detector=row.detector,
        baseline=row.baseline, status=result.status, reason=result.reason,
        seeds=result.ap.n, seed_list=header.row_seeds(result),
        delta_ap_pairs=None if row.is_baseline else len(result.delta_seeds),
        delta_ap_seeds=list(result.delta_seeds),
        baseline_missing_seeds=header.baseline_missing(row, results) if results else [],
        ap_mean=_num(result.ap.mean, 2), ap_std=_num(result.ap.std, 2),
        delta_ap_mean=_num(result.delta_ap.mean, 2), delta_ap_std=_num(result.delta_ap.std, 2),
        delta_ap_ci95_low=_num(interval[0], 2) if interval else None,
        delta_ap_ci95_high=_num(interval[1], 2) if interval else None,
        delta_ap_noise=result.delta_noise,
        speed_ratio_mean=_num(result.speed_ratio.mean, 3),
        speed_ratio_std=_num(result.speed_ratio.std, 3),
        speed_arrow=speed_arrow(result.speed_ratio.mean) if not row.is_baseline else '-',
        sec_per_iter=_num(result.sec_per_iter.mean, 4),
        peak_memory_mb=_num(result.peak_memory_mb.mean, 1),
        memory_ratio=_num(result.memory_ratio.mean, 3),
        hyperparams=result.hyperparams if implemented else None,
        hyperparam_names=list(result.hyperparam_names),
        published_ap=pub.ap if pub else None,
        published_delta_ap=pub.delta_ap if pub else None,
        published_params=pub.params if pub else None,
        published_speed=pub.speed if pub else None,
        published_codebase=pub.codebase if pub else None,
        zoo_ap=row.zoo_ap, zoo_check=row.zoo_check,
        params_deviation=row.params_deviation, note=row.note,
        runs={str(seed): dict(status=run.status, ap=_num(run.ap, 2),
                              sec_per_iter=_num(run.sec_per_iter, 4),
                              peak_memory_mb=_num(run.peak_memory_mb, 1), source=run.source,
                              work_dir=run.work_dir)
              for seed, run in sorted(result.runs.items())})


# -- formatting ----------------------------------------------------------------------------------
def fmt_stat(stat: Stat, digits: int = 1, signed: bool = False) -> str:
    if stat.mean is None:
        return ''
    spec = f'+.{digits}f' if signed else f'.{digits}f'
    text = format(stat.mean, spec)
    if stat.std is not None:
        text += f' ± {stat.std:.{digits}f}'
    return text


def fmt_value(x, digits: int = 1, signed: bool = False) -> str:
    if x is None:
        return '-'
    if isinstance(x, str):
        return x
    return format(x, f'+.{digits}f' if signed else f'.{digits}f')


def markdown_rows(rows: Sequence[Row], results: Dict[str, RowResult]) -> List[List[str]]:
    """Cells of the markdown table, one list per row."""
    lines = []
    for row in rows:
        res = results[row.key]
        pub = row.published
        if res.status in ('not implemented', 'not run', 'failed'):
            ours = [res.status] + [''] * 4
        else:
            if row.is_baseline:
                delta = '-'
                speed = '1.00 -' if res.sec_per_iter.mean is not None else ''
            else:
                delta = fmt_stat(res.delta_ap, 1, signed=True)
                if res.delta_noise:
                    delta += ' (noise)'
                speed = fmt_stat(res.speed_ratio, 2)
                if speed:
                    speed += f' {speed_arrow(res.speed_ratio.mean)}'
            ap = fmt_stat(res.ap, 1)
            if res.status == 'partial':
                ap = (ap + ' ' if ap else '') + '(partial)'
            memory = fmt_stat(res.peak_memory_mb, 0)
            ours = [ap, delta, speed, memory,
                    '' if res.sec_per_iter.mean is None else f'{res.sec_per_iter.mean:.3f}']
        params = '' if res.hyperparams is None else str(res.hyperparams)
        if params and pub is not None and pub.params != res.hyperparams:
            params += ' †'
        lines.append([
            row.group, row.display_name, row.detector, *ours, params,
            fmt_value(pub.ap) if pub else '', fmt_value(pub.delta_ap, signed=True) if pub else '',
            fmt_value(pub.params, 0) if pub else '', pub.speed if pub else '',
            fmt_value(row.zoo_ap) if row.zoo_ap is not None else ''])
    return lines


MD_HEADER = ('group', 'solution', 'detector', 'AP', 'ΔAP', 'speed (time ratio)',
             'peak mem (MiB)', 's/iter', 'params', 'review AP', 'review ΔAP', 'review params',
             'review speed', 'mmdet zoo AP')


def _listed(value) -> str:
    if isinstance(value, (list, tuple)):
        return '; '.join(str(v) for v in value) if value else '-'
    return '-' if value in (None, '') else str(value)


def render_markdown(rows: Sequence[Row], results: Dict[str, RowResult], meta: dict) -> str:
    cells = markdown_rows(rows, results)
    out = [f'# Table 1, regenerated ({meta.get("benchmark", "")}'
           f'{"-" + meta["dataset"] if meta.get("dataset") else ""})', '']
    out.append(f'Command: `{meta.get("command", "")}`  ')
    out.append(header.seeds_line(rows, results))
    out.append(f'Precision: {_listed(meta.get("precision"))}; {_listed(meta.get("versions"))}  ')
    out.append(f'Machine: {_listed(meta.get("machine"))}; matrix-product GFLOP/s measured at the '
               f'start of each run: {meta.get("gflops", "-")}  ')
    out.append(f'Built {meta.get("date", "")} in {meta.get("wall_time", "")}'
               + (f'; the rows\' training iterations took {meta["runs_time"]} (summed from '
                  'their run records)' if meta.get('runs_time') else '') + '.')
    out.append('')
    out.append('| ' + ' | '.join(MD_HEADER) + ' |')
    out.append('|' + '---|' * len(MD_HEADER))
    for line in cells:
        out.append('| ' + ' | '.join(c.replace('|', '/') for c in line) + ' |')
    out.append('')
    out.append('AP and ΔAP: `coco/bbox_mAP` x 100 from each run, mean ± sample std over seeds; ΔAP '
               'is paired by seed against the baseline trained in the same table run (a row '
               'with fewer seeds than its baseline is compared on its own seeds only, so its ΔAP '
               'need not equal the difference of the two AP cells), "(noise)" '
               'when its paired 95 % Student-t interval over seeds contains 0 (the interval is '
               'in table1.json and .csv). Speed: median steady-state seconds per '
               f'training iteration (first {meta.get("warmup_iters", "")} iterations skipped) '
               'divided by the baseline\'s; > 1 is slower (↓), < 1 faster (↑), within 5 % "-". '
               'Peak memory: CUDA max allocated on GPU, process peak RSS on CPU. Params: '
               'hyper-parameters counted from code (docs/table1-method.md); † marks a documented '
               'difference from the review\'s count. Review columns: the review\'s Table 1 '
               '(COCO, R50-FPN); mmdet zoo AP: the mmdet 3.3 zoo checkpoint of the same '
               'COCO recipe.')
    notes = [(row, results[row.key]) for row in rows]
    deviations = [(row, res) for row, res in notes
                  if row.params_deviation and res.hyperparams is not None]
    if deviations:
        out += ['', '† Hyper-parameter counts that differ from the review:', '']
        for row, res in deviations:
            out.append(f'- **{row.display_name}**: ours {res.hyperparams}, review '
                       f'{row.published.params if row.published else "-"}. '
                       f'{row.params_deviation}')
    warned = header.seed_warnings(rows, results)
    if warned:
        out += ['', 'ΔAP pairs short of a row\'s seeds:', ''] + [f'- {line}' for line in warned]
    reasons = [(row, res) for row, res in notes if res.reason]
    if reasons:
        out += ['', 'Rows without numbers:', '']
        for row, res in reasons:
            out.append(f'- **{row.display_name}** ({row.key}): {res.status}: {res.reason}')
    deltas = meta.get('config_deltas') or {}
    changed = [(row, deltas[row.key]) for row in rows if deltas.get(row.key)]
    if changed:
        out += ['', 'What each row changes against its baseline (merged-config keys):', '']
        for row, keys in changed:
            out.append(f'- **{row.display_name}**: ' + ', '.join(f'`{k}`' for k in keys))
    remarks = [row for row, _ in notes if row.note]
    if remarks:
        out += ['', 'Notes:', '']
        for row in remarks:
            out.append(f'- **{row.display_name}**: {row.note}')
    return '\n'.join(out) + '\n'


# -- writers -------------------------------------------------------------------------------------
def write_csv(path: str, records: Sequence[dict]) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction='ignore')
        writer.writeheader()
        for rec in records:
            writer.writerow({k: '' if rec.get(k) is None else ' '.join(map(str, rec[k]))
                             if isinstance(rec.get(k), list) else rec.get(k) for k in CSV_FIELDS})


def write_json(path: str, records: Sequence[dict], meta: dict) -> None:
    with open(path, 'w') as f:
        json.dump(dict(meta=meta, rows=list(records)), f, indent=1, ensure_ascii=False,
                  allow_nan=False)


def write_all(out_dir: str, rows: Sequence[Row], results: Dict[str, RowResult],
              meta: dict) -> Dict[str, str]:
    """Write md, csv, json and png into ``out_dir``; returns {'md': path, ...}."""
    os.makedirs(out_dir, exist_ok=True)
    records = [record(row, results[row.key], results) for row in rows]
    paths = {ext: osp.join(out_dir, f'{TABLE_NAME}.{ext}') for ext in ('md', 'csv', 'json', 'png')}
    with open(paths['md'], 'w') as f:
        f.write(render_markdown(rows, results, meta))
    write_csv(paths['csv'], records)
    write_json(paths['json'], records, meta)
    write_plot(paths['png'], rows, results, meta)
    return paths

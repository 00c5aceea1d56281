"""The writers: md, csv, json and png from aggregated results, finite numbers only, and rows without
results rendered as such."""
import csv
import json
import math

from mmdet_imbalance.table.collect import RowResult, RunResult, aggregate
from mmdet_imbalance.table.report import write_all
from mmdet_imbalance.table.rows import get_row

META = dict(benchmark='mini', dataset='trees', seeds=2, command='python tools/table1.py',
            machine='test', date='2024-01-01', wall_time='0m01s', warmup_iters=10,
            config_deltas={'ohem': ['model.train_cfg.rcnn.sampler.type']})


def runs(aps, sec):
    return {seed: RunResult(work_dir=f'w{seed}', status='finished', source='run.json', ap=ap,
                            sec_per_iter=sec, peak_memory_mb=500. + seed)
            for seed, ap in enumerate(aps)}


def results():
    base = runs([30.0, 31.0], 0.10)
    ohem = runs([30.5, 30.9], 0.13)  # ΔAP +0.5, -0.1: 95 % interval 0.2 +- 3.8 -> noise
    out = {'faster-rcnn': aggregate('faster-rcnn', base, None),
           'ohem': aggregate('ohem', ohem, base),
           'isr': RowResult(key='isr', status='not implemented',
                            reason='no config configs/mini/faster-rcnn_mini_isr.py'),
           'iou-balanced': aggregate('iou-balanced', {0: RunResult(work_dir='w', status='missing'),
                                                      1: RunResult(work_dir='w', status='missing')}, base)}
    out['faster-rcnn'].hyperparams = 2
    out['ohem'].hyperparams = 2
    return out


ROWS = [get_row(k) for k in ('faster-rcnn', 'ohem', 'iou-balanced', 'isr')]


def numbers_in(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from numbers_in(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from numbers_in(v)


def test_writers_produce_all_files_with_finite_numbers(tmp_path):
    paths = write_all(str(tmp_path), ROWS, results(), META)
    assert set(paths) == {'md', 'csv', 'json', 'png'}
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    data = json.load(open(paths['json']))
    assert data['meta']['benchmark'] == 'mini'
    values = list(numbers_in(data))
    assert values and all(math.isfinite(v) for v in values)
    by_key = {r['key']: r for r in data['rows']}
    assert by_key['ohem']['delta_ap_mean'] == 0.2
    assert by_key['ohem']['delta_ap_noise'] is True
    assert by_key['ohem']['speed_ratio_mean'] == 1.3 and by_key['ohem']['speed_arrow'] == '↓'
    with open(paths['csv'], newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['key'] for r in rows] == ['faster-rcnn', 'ohem', 'iou-balanced', 'isr']
    for r in rows:
        for field in ('ap_mean', 'ap_std', 'delta_ap_mean', 'speed_ratio_mean',
                      'peak_memory_mb', 'published_ap', 'zoo_ap'):
            if r[field] != '':
                assert math.isfinite(float(r[field])), (r['key'], field)
    assert float(rows[0]['ap_mean']) == 30.5 and float(rows[0]['zoo_ap']) == 37.4


def test_rows_without_results_show_no_number(tmp_path):
    paths = write_all(str(tmp_path), ROWS, results(), META)
    md = open(paths['md']).read()
    lines = {line.split(' | ')[1]: line for line in md.splitlines()
             if line.startswith('| ') and ' | ' in line}
    isr = lines['ISR']
    assert 'not implemented' in isr
    # Only the review's published columns carry numbers on that row, never ours.
    assert isr.split(' | ')[3:8] == ['not implemented', '', '', '', '']
    assert 'not run' in lines['IoU-balanced sampling']
    assert '+0.2 ± 0.4 (noise)' in lines['OHEM']
    assert '1.30 ± 0.00 ↓' in lines['OHEM']
    assert 'no config configs/mini/faster-rcnn_mini_isr.py' in md
    assert '`model.train_cfg.rcnn.sampler.type`' in md
    data = json.load(open(paths['json']))
    isr_rec = next(r for r in data['rows'] if r['key'] == 'isr')
    assert isr_rec['status'] == 'not implemented'
    assert isr_rec['ap_mean'] is None and isr_rec['hyperparams'] is None


def test_points_that_coincide_share_one_label():
    from mmdet_imbalance.table.plot import _coinciding
    points = [(1.0, 30.0, 'A'), (1.01, 30.3, 'B'), (1.5, 30.0, 'C'), (1.0, 35.0, 'D')]
    assert _coinciding(points) == {(1.0, 30.0): ['A', 'B'], (1.5, 30.0): ['C'],
                                   (1.0, 35.0): ['D']}


def crowded():
    """Eight rows whose points are close but not coinciding: fixed label offsets overlap."""
    keys = ('retinanet', 'ghm-c', 'ap-loss', 'dr-loss', 'resobj', 'sampling-free-retinanet',
            'faster-rcnn', 'ohem')
    base = {'retinanet': runs([50.0, 51.0, 52.0], 0.10),
            'faster-rcnn': runs([55.5, 56.5, 57.5], 0.10)}
    out = {}
    for i, key in enumerate(keys):
        row = get_row(key)
        own = base.get(key) or runs([50.3 + 0.15 * i + d for d in (0., 0.8, 1.9)],
                                    0.10 * (1.03 + 0.025 * i))
        out[key] = aggregate(key, own, None if row.is_baseline else base[row.baseline])
    return [get_row(k) for k in keys], out


def test_labels_of_nearby_points_do_not_overlap():
    """Regression: labels were drawn at one fixed offset from their points, so the names of
    nearby rows were printed over each other."""
    from mmdet_imbalance.table.plot import _overlap, build_figure
    rows, res = crowded()
    fig, labels = build_figure(rows, res, META)
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert len(labels) == 8
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    # The check can fail: a label moved to another's place overlaps it.
    labels[1].xy, labels[1].xyann = labels[0].xy, labels[0].xyann
    labels[1].set_horizontalalignment(labels[0].get_horizontalalignment())
    assert _overlap(labels[0].get_window_extent(renderer), labels[1].get_window_extent(renderer))


def test_labels_of_a_cluster_near_the_top_stay_inside_the_axes():
    """Regression: with one row far below the others (RS Loss at 29 AP beside a cluster at
    68-79), the labels of the cluster were stacked upwards out of the axes and cut off."""
    from mmdet_imbalance.table.plot import build_figure
    rows, res = crowded()
    res['ghm-c'] = aggregate('ghm-c', runs([10.0, 10.5, 11.0], 0.1), res['retinanet'].runs)
    fig, labels = build_figure(rows, res, META)
    renderer = fig.canvas.get_renderer()
    frame = fig.axes[0].get_window_extent(renderer)
    for label in labels:
        box = label.get_window_extent(renderer)
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, label.get_text()
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, label.get_text()


def test_every_row_has_its_ap_spread_and_its_delta_interval():
    from matplotlib.container import ErrorbarContainer

    from mmdet_imbalance.table.plot import build_figure
    rows, res = crowded()
    fig, _ = build_figure(rows, res, META)
    ap_ax, delta_ax = fig.axes
    bars = [c for c in ap_ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 8 and all(c.has_yerr for c in bars)  # 3 seeds: AP std everywhere
    names = [t.get_text() for t in delta_ax.get_yticklabels()]
    assert names == [f'{get_row(k).display_name} (3 seeds)' for k in reversed(
        ('ghm-c', 'ap-loss', 'dr-loss', 'resobj', 'sampling-free-retinanet', 'ohem'))]
    deltas = [c for c in delta_ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(deltas) == 6 and all(c.has_xerr for c in deltas)

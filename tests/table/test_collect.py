"""Collectors on synthetic mmengine-style work dirs: median time, warm-up skipping, mean/std, noise
marking and ΔAP pairing."""
import json
import math
import os

import pytest

from mmdet_imbalance.engine.run_record import RunRecord
from mmdet_imbalance.table.collect import (RunResult, Stat, aggregate, collect_run, is_noise,
                                           mean_std, paired_differences, paired_ratios,
                                           speed_arrow, steady_state_seconds, t_interval)


def write_run_json(work_dir, **fields):
    RunRecord(**dict(dict(status='finished'), **fields)).write(work_dir)


def write_scalars(work_dir, timestamp, lines):
    """An mmengine ``<ts>/vis_data/scalars.json``: one JSON object per line."""
    folder = os.path.join(work_dir, timestamp, 'vis_data')
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'scalars.json'), 'w') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')


def train_line(step, time, memory=None):
    line = dict(lr=0.01, data_time=0.01, loss=1.0, loss_cls=0.5, loss_bbox=0.5, time=time,
                iter=step, step=step)
    if memory is not None:
        line['memory'] = memory
    return line


# -- median steady-state time --------------------------------------------------------------------
def test_median_skips_warmup():
    # Three slow warm-up iterations, then 0.1 s; the median of the rest is 0.1 exactly.
    times = [3.0, 2.0, 1.0, 0.1, 0.1, 0.1, 0.5]
    assert steady_state_seconds(times, warmup_iters=3) == pytest.approx(0.1)
    # Unskipped, the warm-up moves the median: sorted [0.1, 0.1, 0.1, 0.5, 1, 2, 3] -> 0.5.
    assert steady_state_seconds(times, warmup_iters=0) == pytest.approx(0.5)


def test_short_run_skips_only_half():
    # 4 iterations, warm-up 10: only the first 2 are skipped, median of [0.2, 0.4] = 0.3.
    assert steady_state_seconds([9.0, 9.0, 0.2, 0.4], warmup_iters=10) == pytest.approx(0.3)


def test_unsteady_iterations_and_nan_are_dropped():
    times = [1.0, 1.0, 0.2, 5.0, 0.2, float('nan'), 0.4]
    # Skip 2 warm-up; drop iteration 3 (spans an evaluation) and the NaN: median of
    # [0.2, 0.2, 0.4] = 0.2.
    assert steady_state_seconds(times, unsteady_iters=[3], warmup_iters=2) == pytest.approx(0.2)


def test_no_usable_time_gives_none():
    assert steady_state_seconds([]) is None
    assert steady_state_seconds([1.0, 2.0], unsteady_iters=[1], warmup_iters=1) is None
    with pytest.raises(ValueError, match='warmup_iters'):
        steady_state_seconds([1.0], warmup_iters=-1)


# -- one run -------------------------------------------------------------------------------------
def test_collect_run_from_run_json(tmp_path):
    wd = str(tmp_path / 'ohem')
    times = [2.0] * 4 + [0.3, 0.5, 9.0, 9.0, 0.4, 0.6]
    write_run_json(wd, iter_times=times, unsteady_iters=[6, 7], peak_memory_mb=812.5,
                   final_metrics={'coco/bbox_mAP': 0.367, 'coco/bbox_mAP_50': 0.6}, ap=36.7,
                   iter=10, max_iters=10, settings=dict(precision='bf16', seed=1))
    run = collect_run(wd, warmup_iters=4)
    assert run.source == 'run.json' and run.finished
    assert run.ap == pytest.approx(36.7)
    # 4 warm-up iterations and iterations 6, 7 (after an evaluation) dropped: median of
    # [0.3, 0.5, 0.4, 0.6] = 0.45 (it would be 0.55 with them).
    assert run.sec_per_iter == pytest.approx(0.45)
    assert run.peak_memory_mb == 812.5 and run.settings == dict(precision='bf16', seed=1)
    # Training cost counts every iteration, warm-up and unsteady ones too: 8 + 1.8 + 18 = 27.8.
    assert run.train_seconds == pytest.approx(27.8)


def test_a_run_reads_back_as_the_record_it_wrote(tmp_path):
    """One record type for writing and reading: every field the hook writes comes back
    unchanged, and reading adds only the source and the measured speed."""
    wd = str(tmp_path / 'gfl')
    written = RunRecord(status='finished', config='gfl_mini.py', settings=dict(seed=2),
                        environment=dict(cpu='x'), work_dir='/elsewhere/gfl', iter=3,
                        max_iters=3, started=1.0, updated=2.0, world_size=2,
                        iter_times=[0.5, 0.25, 0.75], unsteady_iters=[1], resumed_at=[2],
                        peak_memory_mb=10.5, memory_source='cpu_peak_rss',
                        evaluations=[dict(iter=3, ap=40.0)],
                        final_metrics={'coco/bbox_mAP': 0.4}, ap=40.0)
    written.write(wd)
    read = collect_run(wd, warmup_iters=0)
    added = {'source', 'sec_per_iter'}
    assert set(read.to_dict()) - set(written.to_dict()) == added
    assert {k: v for k, v in read.to_dict().items() if k not in added} == \
        dict(written.to_dict(), work_dir=wd)
    # iteration 1 is unsteady: the median of 0.5 and 0.75
    assert read.seed == 2 and read.sec_per_iter == pytest.approx(0.625)


def test_collect_run_falls_back_to_mmengine_scalars(tmp_path):
    wd = str(tmp_path / 'retinanet')
    lines = [train_line(s, t, memory=m) for s, t, m in
             [(10, 5.0, 100), (20, 0.8, 120), (30, 0.6, 90), (40, 0.7, 110)]]
    lines.append({'coco/bbox_mAP': 0.365, 'coco/bbox_mAP_50': 0.55, 'data_time': 0.1,
                  'time': 0.2, 'step': 1})
    write_scalars(wd, '20240101_000000', lines)
    run = collect_run(wd, warmup_iters=10)
    assert run.source == 'scalars.json' and run.finished
    assert run.ap == pytest.approx(36.5)
    # step 10 is inside the warm-up; the validation line's 'time' is not a training time.
    assert run.sec_per_iter == pytest.approx(0.7)
    assert run.peak_memory_mb == 120


def test_scalars_of_a_resumed_run_are_merged(tmp_path):
    wd = str(tmp_path / 'ghm')
    write_scalars(wd, '20240101_000000', [train_line(20, 0.5), train_line(30, 0.5)])
    # Resumed from a checkpoint at 20: step 30 replayed (slower now), then 40 and 50, then eval.
    write_scalars(wd, '20240102_000000', [train_line(30, 0.9), train_line(40, 0.9),
                                          train_line(50, 0.9),
                                          {'coco/bbox_mAP': 0.2, 'step': 1}])
    run = collect_run(wd, warmup_iters=10)
    # steps 20..50 -> [0.5, 0.9, 0.9, 0.9], median 0.9; the replayed step 30 counted once.
    assert run.sec_per_iter == pytest.approx(0.9)
    assert run.ap == pytest.approx(20.0)


def test_missing_and_unfinished_runs(tmp_path):
    assert collect_run(str(tmp_path / 'nothing')).status == 'missing'
    wd = str(tmp_path / 'running')
    write_scalars(wd, '20240101_000000', [train_line(10, 0.5)])
    assert collect_run(wd).status == 'running'
    # A half-written last line (run still alive) is ignored, not an error.
    with open(os.path.join(wd, '20240101_000000', 'vis_data', 'scalars.json'), 'a') as f:
        f.write('{"coco/bbox_m')
    assert collect_run(wd).ap is None


# -- seeds ---------------------------------------------------------------------------------------
def test_mean_std_is_sample_std():
    stat = mean_std([30.0, 32.0, 34.0])
    # mean 32; sample variance ((-2)^2 + 0 + 2^2) / (3 - 1) = 4 -> std 2
    assert stat.mean == pytest.approx(32.0) and stat.std == pytest.approx(2.0) and stat.n == 3
    single = mean_std([31.0, None, float('nan')])
    assert single.mean == 31.0 and single.std is None and single.n == 1
    assert mean_std([]).mean is None


def test_t_interval_against_the_t_table():
    # 3 seeds, mean 1, std 1: half-width t(0.975, df=2) * 1 / sqrt(3) = 4.303 / 1.7321 = 2.4843.
    low, high = t_interval(Stat(1.0, 1.0, 3))
    assert (low, high) == (pytest.approx(1 - 2.4843, abs=1e-4), pytest.approx(1 + 2.4843, abs=1e-4))
    # 5 seeds, df=4: t = 2.776; half-width 2.776 * 2 / sqrt(5) = 2.4830.
    assert t_interval(Stat(0.0, 2.0, 5))[1] == pytest.approx(2.4830, abs=1e-4)
    # Beyond the table (df > 30) the normal quantile 1.96.
    assert t_interval(Stat(0.0, 1.0, 101))[1] == pytest.approx(1.96 / math.sqrt(101))
    assert t_interval(Stat(1.0, None, 1)) is None


def test_noise_marking():
    assert is_noise(Stat(0.2, 0.5, 3)) is True
    assert is_noise(Stat(-0.2, 0.5, 3)) is True
    assert is_noise(Stat(1.0, 0.3, 3)) is False  # interval 1 +- 0.745
    # |mean| above one std but the 95 % interval (1 +- 1.242) contains 0: still noise. The former
    # one-std rule (a 77 % interval at 3 seeds) called this significant.
    assert is_noise(Stat(1.0, 0.5, 3)) is True
    assert is_noise(Stat(1.0, None, 1)) is None  # one seed: spread unknown, never "significant"


def runs_of(aps, finished=True):
    return {seed: RunResult(work_dir=f's{seed}', status='finished' if finished else 'running',
                            ap=ap, sec_per_iter=None if ap is None else 0.1 * (seed + 1))
            for seed, ap in aps.items()}


def test_delta_ap_is_paired_by_seed():
    row = runs_of({0: 31.0, 1: 33.0, 2: 35.0})
    base = runs_of({0: 30.0, 1: 30.0})
    # seed 2 has no baseline run: it is not paired with another seed's baseline.
    assert paired_differences(row, base) == {0: pytest.approx(1.0), 1: pytest.approx(3.0)}
    base[1] = RunResult(work_dir='x', status='running', ap=10.0)
    assert paired_differences(row, base) == {0: pytest.approx(1.0)}


def test_aggregate_marks_noise_and_ratio():
    row = runs_of({0: 30.4, 1: 29.8, 2: 30.3})
    base = runs_of({0: 30.0, 1: 30.0, 2: 30.0})
    for seed in row:
        row[seed].sec_per_iter = 0.2
        base[seed].sec_per_iter = 0.1
    res = aggregate('x', row, base)
    deltas = [0.4, -0.2, 0.3]
    mean = sum(deltas) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in deltas) / 2)
    assert res.status == 'ok'
    assert res.delta_ap.mean == pytest.approx(mean) and res.delta_ap.std == pytest.approx(std)
    assert res.delta_noise is True
    assert res.speed_ratio.mean == pytest.approx(2.0)
    assert paired_ratios(row, base) == {s: pytest.approx(2.0) for s in row}


def test_aggregate_status():
    assert aggregate('x', {0: RunResult(work_dir='a', status='missing')}, None).status == 'not run'
    partial = aggregate('x', {0: RunResult(work_dir='a', status='finished', ap=1.0),
                              1: RunResult(work_dir='b', status='running')}, None)
    assert partial.status == 'partial' and partial.ap.n == 1


def test_speed_arrow():
    assert speed_arrow(1.3) == '↓'
    assert speed_arrow(0.7) == '↑'
    assert speed_arrow(1.02) == '-'
    assert speed_arrow(None) == ''

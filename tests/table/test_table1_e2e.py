"""End to end: two rows (GHM-C and its RetinaNet baseline) x 4 iterations through tools/table1.py
on the embedded trees data.

The first table run is killed (SIGKILL to the tool alone) after the method row's first checkpoint:
its training child must die with it (no orphan that a rerun would train beside). The rerun, from
another folder with a relative --work-dir, skips the finished baseline and resumes the method row.
Then the table files and the PNG exist, every number in them is finite, the hook logged the AP into
mmengine's own scalars, a re-collected table keeps the runs' own time, and a request with other
settings (another iteration cap) is refused instead of reusing the runs."""
import csv
import glob
import json
import math
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'table1.py')
# Evaluate on 2 validation images so that the two runs take seconds, not minutes.
# A checkpoint every 2 iterations gives the kill below a state to resume from.
# fp32 named: `auto` measures the machine in each process, and near its bf16 threshold two
# invocations of the tool could choose differently.
SMALL = ['--precision', 'fp32', '--max-iters', '4', '--cfg-options', 'val_dataloader.dataset.indices=2',
         'default_hooks.checkpoint.interval=2']


def tool_env():
    return dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))


def run_tool(args, timeout=240, cwd=REPO_ROOT, expect=0):
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=cwd, env=tool_env(), timeout=timeout)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def trainers_of(work_dir):
    """Pids of live processes whose command line names ``work_dir``."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read().decode(errors='replace')
        except OSError:
            continue
        if 'train.py' in cmd and work_dir in cmd:
            found.append(int(pid))
    return found


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


@pytest.mark.slow
def test_two_rows_end_to_end(tmp_path):
    work = str(tmp_path / 'table1')
    method_dir = osp.join(work, 'mini-trees', 'seed0', 'retinanet_mini_ghm-c')
    proc = subprocess.Popen([sys.executable, TOOL, '--rows', 'ghm-c', '--work-dir', work,
                             '--dataset', 'trees', *SMALL],
                            cwd=REPO_ROOT, env=tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill once mmengine has registered the checkpoint (it writes last_checkpoint after the
    # .pth is complete); a kill while iter_2.pth is still being written leaves nothing to resume.
    marker = osp.join(method_dir, 'last_checkpoint')
    deadline = time.time() + 400
    while not (osp.exists(marker) and open(marker).read().strip().endswith('iter_2.pth')):
        assert proc.poll() is None and time.time() < deadline, 'table run ended before the kill'
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Regression: the training child used to outlive the killed tool as an orphan.
    deadline = time.time() + 30
    while trainers_of(method_dir) and time.time() < deadline:
        time.sleep(0.2)
    assert not trainers_of(method_dir)
    assert not osp.exists(osp.join(method_dir, 'iter_4.pth'))

    # Regression: relative paths used to be read against the caller's folder by the tool but
    # against the repository by its training child.
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    out = run_tool(['--rows', 'ghm-c', '--work-dir', osp.relpath(work, elsewhere), '--dataset',
                    'trees', *SMALL], cwd=str(elsewhere))
    assert not os.listdir(elsewhere)  # no data/ or work_dirs/ created where it was called
    assert 'Total wall time' in out and 'FAILED' not in out
    assert out.count('finished earlier with the same settings, skipped') == 1, out
    assert 'ghm-c seed 0: done' in out and '(resumed)' in out, out
    # Smoke runs never reach the committed results tree, and the tool says so.
    assert out.count('not exported: ') == 2 and re.search(r'max_iters: 4 -> \d+', out), out

    files = {ext: osp.join(work, f'table1.{ext}') for ext in ('md', 'csv', 'json', 'png')}
    for path in files.values():
        assert osp.getsize(path) > 0, path
    with open(files['png'], 'rb') as f:
        assert f.read(4) == b'\x89PNG'

    data = json.load(open(files['json']))
    values = list(numbers_in(data))
    assert values and all(math.isfinite(v) for v in values)
    rows = {r['key']: r for r in data['rows']}
    assert list(rows) == ['retinanet', 'ghm-c']
    for key in rows:
        assert rows[key]['status'] == 'ok'
        assert rows[key]['ap_mean'] is not None and rows[key]['sec_per_iter'] > 0
        assert rows[key]['peak_memory_mb'] > 0
    assert rows['ghm-c']['delta_ap_mean'] is not None and rows['ghm-c']['speed_ratio_mean'] > 0
    assert rows['ghm-c']['hyperparams'] == 2
    assert 'precision' in data['meta'] and data['meta']['seeds'] == [0]
    with open(files['csv'], newline='') as f:
        for rec in csv.DictReader(f):
            for field, value in rec.items():
                try:
                    number = float(value)
                except ValueError:
                    continue
                assert math.isfinite(number), (rec['key'], field)
    md = open(files['md']).read()
    assert '| GHM-C |' in md and not re.search(r'\b(nan|inf)\b', md, re.IGNORECASE)

    # The hook wrote its record and logged into mmengine's own scalar file.
    run_dir = method_dir
    record = json.load(open(osp.join(run_dir, 'imbalance', 'run.json')))
    assert record['status'] == 'finished' and len(record['iter_times']) == 4
    assert record['resumed_at'] == [2] and record['settings']['max_iters'] == 4
    scalar_files = glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))
    scalars = [json.loads(line) for path in scalar_files for line in open(path)]
    assert any('imbalance/ap' in s for s in scalars)

    # A table re-collected from the runs still reports what the runs cost: the summed iteration
    # times of both run.json files, the killed-and-resumed one included.
    run_tool(['--rows', 'ghm-c', '--work-dir', work, '--dataset', 'trees', '--collect-only'] +
             SMALL)
    md = open(files['md']).read()
    took = re.search(r"the rows' training iterations took (\d+)m(\d+)s", md)
    assert took, md[:600]
    iter_seconds = 0.
    for stem in ('retinanet_mini', 'retinanet_mini_ghm-c'):
        rec = json.load(open(osp.join(work, 'mini-trees', 'seed0', stem, 'imbalance',
                                      'run.json')))
        iter_seconds += sum(rec['iter_times'])
    assert int(took.group(1)) * 60 + int(took.group(2)) == int(iter_seconds)

    # Regression: a smoke run's record used to be reused by a request with other settings.
    out = run_tool(['--rows', 'ghm-c', '--work-dir', work, '--dataset', 'trees', '--max-iters',
                    '3', *SMALL[:2], *SMALL[4:]], expect=2)
    assert 'other settings' in out and 'max_iters: 4 -> 3' in out and 'nothing was trained' in out


def test_collect_only_with_nothing_trained_says_where_it_looked(tmp_path):
    out = run_tool(['--rows', 'retinanet', '--work-dir', str(tmp_path / 'empty'),
                    '--collect-only'], expect=2)
    assert 'found no run' in out and str(tmp_path / 'empty') in out

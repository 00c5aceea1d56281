"""End to end: two rows (GHM-C and its RetinaNet baseline) x 4 iterations through tools/table1.py
on the embedded trees data.

The first table run is killed (SIGKILL to the tool and its training subprocess) after the method
row's first checkpoint; the rerun skips the finished baseline and resumes the method row. Then the
table files and the PNG exist, every number in them is finite, the hook logged its keys into
mmengine's own scalars, and a re-collected table keeps the runs' own time."""
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
SMALL = ['--max-iters', '4', '--cfg-options', 'val_dataloader.dataset.indices=2',
         'default_hooks.checkpoint.interval=2']


def tool_env():
    return dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))


def run_tool(args, timeout=240):
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=tool_env(), timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


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
    proc = subprocess.Popen([sys.executable, TOOL, '--rows', 'ghm-c', '--work-dir', work, *SMALL],
                            cwd=REPO_ROOT, env=tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill once mmengine has registered the checkpoint (it writes last_checkpoint after the
    # .pth is complete); a kill while iter_2.pth is still being written leaves nothing to resume.
    marker = osp.join(method_dir, 'last_checkpoint')
    deadline = time.time() + 400
    while not (osp.exists(marker) and open(marker).read().strip().endswith('iter_2.pth')):
        assert proc.poll() is None and time.time() < deadline, 'table run ended before the kill'
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not osp.exists(osp.join(method_dir, 'iter_4.pth'))

    out = run_tool(['--rows', 'ghm-c', '--work-dir', work, *SMALL])
    assert 'Total wall time' in out and 'FAILED' not in out
    assert out.count('finished earlier, skipped') == 1, out
    assert 'ghm-c seed 0: done' in out and '(resumed)' in out, out

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
    assert record['resumed_at'] == [2]
    scalars = [json.loads(line) for path in glob.glob(osp.join(run_dir, '*', 'vis_data',
                                                                'scalars.json'))
               for line in open(path)]
    assert any(s.get('imbalance/hyperparams') == 2 for s in scalars)
    val = [s for s in scalars if 'imbalance/ap' in s]
    assert val and 'imbalance/delta_ap' in val[-1] and 'imbalance/speed_ratio' in val[-1]


    # A table re-collected from the runs still reports what the runs cost: the summed iteration
    # times of both run.json files, the killed-and-resumed one included.
    run_tool(['--rows', 'ghm-c', '--work-dir', work, '--collect-only'])
    md = open(files['md']).read()
    took = re.search(r"the rows' training iterations took (\d+)m(\d+)s", md)
    assert took, md[:600]
    iter_seconds = 0.
    for stem in ('retinanet_mini', 'retinanet_mini_ghm-c'):
        rec = json.load(open(osp.join(work, 'mini-trees', 'seed0', stem, 'imbalance',
                                      'run.json')))
        iter_seconds += sum(rec['iter_times'])
    assert int(took.group(1)) * 60 + int(took.group(2)) == int(iter_seconds)

"""The table tool's ``--launcher pytorch --gpus 2`` path on a CPU-only machine (issue 23, item 5):
one mini row trained by ``torch.distributed.run`` on 2 gloo ranks, collected into the table, and a
second request with the same settings skips it (the ranks' record has the request's settings).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'table1.py')
SMALL = ['--max-iters', '4', '--precision', 'fp32', '--cfg-options',
         'val_dataloader.dataset.indices=2', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False']


def run_tool(args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_one_row_on_two_cpu_ranks(tmp_path):
    work, results = str(tmp_path / 'table1'), str(tmp_path / 'results')
    request = ['--rows', 'retinanet', '--launcher', 'pytorch', '--gpus', '2', '--work-dir', work,
               '--results', results, *SMALL]
    out = run_tool(request)
    run_dir = osp.join(work, 'mini-shapes', 'seed0', 'retinanet_mini')
    with open(osp.join(run_dir, 'train_stdout.log')) as f:
        log = f.read()
    assert '-m torch.distributed.run --nproc_per_node=2' in log
    assert 'no CUDA: 2 ranks over gloo on CPU' in log
    with open(osp.join(run_dir, 'imbalance', 'run.json')) as f:
        record = json.load(f)
    assert record['status'] == 'finished' and record['world_size'] == 2
    assert len(record['iter_times']) == 4
    with open(osp.join(work, 'table1.json')) as f:
        rows = {r['key']: r for r in json.load(f)['rows']}
    assert rows['retinanet']['status'] == 'ok' and rows['retinanet']['sec_per_iter'] > 0
    assert 'FAILED' not in out
    # The record's settings are the request's: the rerun finds the run finished, trains nothing.
    out = run_tool(request)
    assert 'finished earlier with the same settings, skipped' in out, out[-2000:]

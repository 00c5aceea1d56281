"""Runs survive interruption, and the same seed gives the same result.

* A mini row killed (SIGKILL) in the middle of training and restarted with ``--resume`` ends with
  the same weights and the same COCO AP as an uninterrupted run with the same seed.
* The same seed twice gives identical weights and AP for the baseline and every non-stock method
  row; a different seed gives different weights (so the comparison can fail).
  No mmcv op in these rows' CPU paths is non-deterministic: mmcv's CPU ``nms`` and ``roi_align``
  kernels are single-threaded loops with a fixed order (the CUDA RoIAlign backward uses
  ``atomicAdd`` and is not bit-reproducible; on GPU pin ``randomness.deterministic=True``).

Runs are kept tiny (a few iterations at batch 2, AP on a 4-image val subset): the properties are
about bit-identical state, not about accuracy. Every run names its precision: ``--precision auto``
times this machine's matrix products in each process, and on a CPU whose bf16 speed-up lies near
the threshold (engine/precision.py) two processes can choose differently, bf16 in one and fp32 in
the other; the weights of such a pair agree to only three or four digits.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmdet_imbalance.table.rows import get_row

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'val_dataloader.dataset.indices=4',
        'train_cfg.max_iters=6', 'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=3',
        'default_hooks.checkpoint.max_keep_ckpts=3']


def _train_cmd(config, work_dir, *extra):
    return [sys.executable, os.path.join(REPO, 'tools/train.py'), os.path.join(REPO, config),
            '--work-dir', str(work_dir), '--precision', 'fp32', *extra, '--cfg-options', *TINY]


def _run(cmd):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _ap(work_dir):
    with open(os.path.join(work_dir, 'imbalance', 'run.json')) as f:
        run = json.load(f)
    assert run['status'] == 'finished'
    return run['ap']


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    config = get_row('retinanet').configs['mini']
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    _run(_train_cmd(config, straight))

    proc = subprocess.Popen(_train_cmd(config, killed), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    marker = killed / 'last_checkpoint'
    deadline = time.time() + 300
    while not (marker.exists() and marker.read_text().strip().endswith('iter_3.pth')):
        assert proc.poll() is None and time.time() < deadline, 'run ended before its checkpoint'
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / 'iter_6.pth').exists()

    _run(_train_cmd(config, killed, '--resume'))
    assert _same_weights(_weights(straight / 'iter_6.pth'), _weights(killed / 'iter_6.pth'))
    assert _ap(killed) == _ap(straight)


DETERMINISM_ROWS = ['retinanet', 'ap-loss', 'dr-loss', 'resobj', 'sampling-free-retinanet',
                    'sampling-free-faster-rcnn', 'fcos-sampling-free']


def _short_runs(config, tmp_path, seeds):
    """Train ``config`` 3 iterations once per seed, all runs at the same time, one thread each.

    Every run gets the same thread count, so equal seeds must give bit-identical results; running
    them side by side halves the wall time on a 2-core machine.
    """
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    procs = {}
    for name, seed in seeds.items():
        cmd = _train_cmd(config, tmp_path / name) + [f'randomness.seed={seed}',
                                                      'train_cfg.max_iters=3',
                                                      'train_cfg.val_interval=3']
        procs[name] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f'run {name}: {out[-3000:]}'
    return {name: (_weights(tmp_path / name / 'iter_3.pth'), _ap(tmp_path / name))
            for name in seeds}


@pytest.mark.parametrize('key', DETERMINISM_ROWS)
def test_same_seed_same_result(key, tmp_path):
    runs = _short_runs(get_row(key).configs['mini'], tmp_path, {'a': 0, 'b': 0})
    assert _same_weights(runs['a'][0], runs['b'][0])
    assert runs['a'][1] == runs['b'][1]


def test_different_seed_gives_different_weights(tmp_path):
    # The check above could pass vacuously if the seed did not reach the run; it does.
    runs = _short_runs(get_row('retinanet').configs['mini'], tmp_path, {'a': 0, 'c': 1})
    assert not _same_weights(runs['a'][0], runs['c'][0])

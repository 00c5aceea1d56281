"""Distributed training without a GPU, through the launcher scripts (issue 23, items 1, 3 and 5).

* ``bash tools/dist_train.sh CONFIG 2`` trains every mini row for 4 iterations on 2 gloo ranks
  (``torch.distributed.run``, mmengine's Runner and DDP) and leaves one finished run record that
  says ``world_size`` 2.
* A rank killed in the middle of a run: under ``tools/dist_train.sh`` the launcher stops the other
  rank at once and the script says what happened; under ``tools/slurm_train.sh`` (a stand-in
  ``srun`` that, unlike ``--kill-on-bad-exit``, leaves the other rank alone) the surviving rank
  exits by itself with a one-line message instead of hanging.

Runs are tiny (4 iterations at batch 2 per rank, AP on 2 validation images): what is tested is
that the ranks start, agree and finish, not what they learn.
"""
import json
import os
import os.path as osp
import signal
import stat
import subprocess
import sys
import time

import pytest

from mmdet_imbalance.table.rows import ROWS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MINI_CONFIGS = [row.configs['mini'] for row in ROWS if 'mini' in row.configs]
TINY = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'val_dataloader.dataset.indices=2']
# Long enough to be killed in the middle; a kill after the second iteration ends it.
LONG = ['train_cfg.max_iters=200', 'train_cfg.val_interval=200']
# A rank that lost its peer must be gone well within this (gloo fails at once on a closed
# connection; the launcher stops the others within a second).
EXIT_WITHIN = 60


def launcher_env(**extra):
    # The launch scripts run ${PYTHON:-python}, as mmdet's do: the interpreter of this test run.
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(extra)
    return env


def read_json(path):
    with open(path) as f:
        return json.load(f)


def ranks_training(work_dir, variable):
    """``{rank: pid}`` of the live train.py processes of ``work_dir``, the rank read from the
    launcher's environment ``variable`` (LOCAL_RANK under torch.distributed.run, SLURM_PROCID
    under srun)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read().decode(errors='replace')
            with open(f'/proc/{pid}/environ', 'rb') as f:
                env = dict(item.split('=', 1) for item in f.read().decode(errors='replace')
                           .split('\0') if '=' in item)
        except OSError:
            continue
        if 'train.py' in cmd and str(work_dir) in cmd and variable in env:
            found[int(env[variable])] = int(pid)
    return found


def start(cmd, env):
    """The launcher in a session of its own, so that :func:`stop` reaches every rank."""
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_iteration(work_dir, proc, iteration, timeout=300):
    progress = osp.join(work_dir, 'imbalance', 'progress.json')
    deadline = time.time() + timeout
    while True:
        state = read_json(progress) if osp.exists(progress) else {}
        if (state or {}).get('iter', 0) >= iteration:
            return
        assert proc.poll() is None, 'the run ended before it was killed'
        assert time.time() < deadline, f'no iteration {iteration} after {timeout} s'
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize('config', MINI_CONFIGS)
def test_mini_row_trains_on_two_cpu_ranks(tmp_path, config, free_port):
    work_dir = tmp_path / 'run'
    proc = start(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), osp.join(REPO, config), '2',
                  '--work-dir', str(work_dir), '--precision', 'fp32', '--cfg-options',
                  'train_cfg.max_iters=4', 'train_cfg.val_interval=4', *TINY],
                 launcher_env(PORT=str(free_port)))
    try:
        output = proc.communicate(timeout=900)[0]
    finally:
        stop(proc)
    assert proc.returncode == 0, output[-4000:]
    assert 'no CUDA: 2 ranks over gloo on CPU' in output
    records = [osp.join(root, name) for root, _, names in os.walk(work_dir) for name in names
               if name == 'run.json']
    assert records == [osp.join(work_dir, 'imbalance', 'run.json')]
    record = read_json(records[0])
    assert record['status'] == 'finished' and record['world_size'] == 2
    assert record['iter'] == record['max_iters'] == 4 and len(record['iter_times']) == 4
    assert (record['iter_times_of'], record['peak_memory_of']) == ('rank 0', 'max over ranks')
    assert [e['iter'] for e in record['evaluations']] == [4] and record['ap'] is not None
    assert record['config'].endswith(config)


@pytest.mark.slow
def test_killed_rank_stops_the_run_under_dist_train(tmp_path, free_port):
    work_dir = tmp_path / 'killed'
    proc = start(['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
                  osp.join(REPO, 'configs/mini/retinanet_mini.py'), '2', '--work-dir',
                  str(work_dir), '--precision', 'fp32', '--cfg-options', *LONG, *TINY],
                 launcher_env(PORT=str(free_port)))
    try:
        wait_for_iteration(work_dir, proc, 2)
        ranks = ranks_training(work_dir, 'LOCAL_RANK')
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        output = proc.communicate(timeout=EXIT_WITHIN)[0]
    finally:
        stop(proc)
    assert proc.returncode != 0
    assert 'dist_train.sh: training failed' in output
    assert 'Signal 9 (SIGKILL)' in output  # torch.distributed.run's summary names the rank
    assert ranks_training(work_dir, 'LOCAL_RANK') == {}


FAKE_SRUN = """#!/usr/bin/env bash
# Stand-in for srun on one machine: every option is recorded, --ntasks copies of the command run
# with the environment srun gives them, and the exit status is the worst one. Unlike srun
# --kill-on-bad-exit it leaves the other tasks alone when one dies.
echo "$@" > "$SRUN_LOG"
while [[ $1 == -* ]]; do
  case $1 in --ntasks=*) ntasks=${1#--ntasks=};; -p) shift;; esac
  shift
done
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$ntasks SLURM_NODELIST=localhost "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""


@pytest.mark.slow
def test_slurm_script_and_a_rank_that_loses_its_peer(tmp_path, free_port):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    work_dir, srun_log = tmp_path / 'slurm', tmp_path / 'srun_args'
    env = launcher_env(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', SRUN_LOG=str(srun_log),
                       GPUS='2', GPUS_PER_NODE='2', GRES='', MASTER_ADDR='127.0.0.1',
                       MASTER_PORT=str(free_port))
    proc = start(['bash', osp.join(REPO, 'tools', 'slurm_train.sh'), 'cpu', 'mini-retinanet',
                  osp.join(REPO, 'configs/mini/retinanet_mini.py'), str(work_dir), '--precision',
                  'fp32', '--cfg-options', *LONG, *TINY], env)
    try:
        wait_for_iteration(work_dir, proc, 2)
        ranks = ranks_training(work_dir, 'SLURM_PROCID')
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        output = proc.communicate(timeout=EXIT_WITHIN)[0]
    finally:
        stop(proc)
    args = srun_log.read_text().split()
    assert '--ntasks=2' in args and '--kill-on-bad-exit=1' in args
    assert not any(a.startswith('--gres') for a in args)  # GRES= : CPU-only nodes
    assert '--launcher=slurm' in args
    assert 'error: rank 0 of 2 lost contact with another rank' in output, output[-3000:]
    assert proc.returncode != 0
    record = read_json(osp.join(work_dir, 'imbalance', 'run.json'))
    assert record['world_size'] == 2

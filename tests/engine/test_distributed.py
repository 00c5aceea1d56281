"""mmdet_imbalance/engine/distributed.py and the run record in a distributed run (issue 23,
items 1 and 3): the CPU process group and model wrapper, the launchers' environment, the one-line
exit of a rank that lost its peer; only rank 0 writes the record and the lock, whose peak memory
is the largest rank's."""
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import MessageHub

from mmdet_imbalance.engine import distributed, table_hook
from mmdet_imbalance.engine.table_hook import ImbalanceTableHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LAUNCH_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
              'SLURM_NTASKS', 'SLURM_LOCALID', 'SLURM_NODELIST', 'OMPI_COMM_WORLD_RANK',
              'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK')


@pytest.fixture
def clean_env(monkeypatch):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_nothing_changes_without_a_launcher_or_with_cuda(monkeypatch):
    cfg = Config(dict(launcher='none'))
    assert distributed.setup_cpu_distributed(cfg) is False
    assert 'model_wrapper_cfg' not in cfg
    cfg = Config(dict(launcher='pytorch'))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert distributed.setup_cpu_distributed(cfg) is False
    assert 'model_wrapper_cfg' not in cfg  # mmengine's own NCCL set-up and CUDA wrapper


def test_cpu_model_wrapper_keeps_mmengines_defaults():
    wrapper = distributed.cpu_model_wrapper_cfg(Config(dict()))
    # What Runner.wrap_model gives without a model_wrapper_cfg, less the CUDA device.
    assert wrapper == dict(type='MMDistributedDataParallel', device_ids=None,
                           broadcast_buffers=False, find_unused_parameters=False)
    wrapper = distributed.cpu_model_wrapper_cfg(Config(dict(
        find_unused_parameters=True,
        model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=[0],
                               broadcast_buffers=True))))
    assert wrapper['device_ids'] is None  # a CUDA device cannot hold a CPU module
    assert wrapper['broadcast_buffers'] is True and wrapper['find_unused_parameters'] is True
    with pytest.raises(KeyError, match="model_wrapper_cfg.type 'NoSuchWrapper'"):
        distributed.cpu_model_wrapper_cfg(Config(dict(model_wrapper_cfg=dict(
            type='NoSuchWrapper'))))


def test_launcher_environment(clean_env):
    with pytest.raises(KeyError, match='RANK is not set.*tools/dist_train.sh'):
        distributed.launcher_ranks('pytorch')
    with pytest.raises(KeyError, match='SLURM_PROCID is not set.*tools/slurm_train.sh'):
        distributed.launcher_ranks('slurm')
    for name, value in dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1',
                            MASTER_ADDR='10.0.0.7').items():
        clean_env.setenv(name, value)
    assert distributed.launcher_ranks('slurm') == (3, 4)
    # What init_process_group('env://') and mmengine read, as mmengine's slurm launcher sets it.
    assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT')] == \
        ['3', '4', '1', distributed.DEFAULT_PORT]
    with pytest.raises(ValueError, match="'spawn'"):
        distributed.launcher_ranks('spawn')


@pytest.mark.slow
def test_train_py_says_how_to_start_a_distributed_run(clean_env, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/train.py'),
                           osp.join(REPO, 'configs/mini/retinanet_mini.py'), '--launcher',
                           'pytorch', '--work-dir', str(tmp_path / 'run')],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert 'RANK is not set' in lines[-1] and 'tools/dist_train.sh' in lines[-1]


def test_a_lost_rank_becomes_one_line(tmp_path):
    lost = RuntimeError('[gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:38069: '
                        'Connection reset by peer. This is typically caused by a remote worker')
    # Without a process group (or for another error) nothing is turned into an exit.
    with pytest.raises(RuntimeError, match='Connection reset'):
        with distributed.exit_when_a_rank_is_lost():
            raise lost
    torch_dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                                  world_size=1)
    try:
        with pytest.raises(RuntimeError, match='shape mismatch'):
            with distributed.exit_when_a_rank_is_lost():
                raise RuntimeError('shape mismatch')
        with pytest.raises(SystemExit) as exit_info:
            with distributed.exit_when_a_rank_is_lost():
                raise lost
    finally:
        torch_dist.destroy_process_group()
    message = str(exit_info.value)
    assert message.startswith('error: rank 0 of 1 lost contact with another rank '
                              '(Connection reset by peer)')
    assert '\n' not in message and '--resume' in message


class Runner:
    """The attributes of mmengine's Runner the hook uses."""

    def __init__(self, work_dir):
        self.cfg = Config(dict(randomness=dict(seed=3), train_cfg=dict(max_iters=2),
                               optim_wrapper=dict(type='OptimWrapper')),
                          filename='configs/mini/retinanet_mini.py', cfg_text='# stand-in')
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f'dist-test-{work_dir}')
        self.logger = logging.getLogger('dist-test')
        self.iter, self.epoch, self.max_iters = 0, 0, 2
        self._train_loop = object()
        self.world_size = 2


def test_only_rank_0_writes(tmp_path, monkeypatch):
    """Rank 1 of a run takes no lock and writes no record or progress file."""
    monkeypatch.setattr(table_hook, 'is_main_process', lambda: False)
    runner = Runner(tmp_path / 'run')
    hook = ImbalanceTableHook()
    hook.before_run(runner)
    hook.before_train(runner)
    for _ in range(2):
        runner.message_hub.update_scalar('train/time', 0.1)
        hook.after_train_iter(runner, runner.iter)
        runner.iter += 1
    hook.after_train(runner)
    hook.after_run(runner)
    assert not osp.exists(runner.work_dir)
    assert hook.record.world_size == 2 and len(hook.record.iter_times) == 2


PEAK_WORKER = """
import sys, torch.distributed as dist
from mmdet_imbalance.engine.table_hook import ImbalanceTableHook
rank, store = int(sys.argv[1]), sys.argv[2]
dist.init_process_group('gloo', init_method='file://' + store, rank=rank, world_size=2)
hook = ImbalanceTableHook()
hook.record.peak_memory_mb = 1e6 * (rank + 1)  # far above the real peak of either process
hook._reduce_memory()
print('peak', hook.record.peak_memory_mb)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_recorded_peak_memory_is_the_largest_ranks(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, '-c', PEAK_WORKER, str(rank),
                               str(tmp_path / 'store')], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    peaks = [float(out.split('peak')[-1]) for out, _ in outputs]
    assert peaks == [2e6, 2e6]


def test_record_says_whose_figures_it_holds(tmp_path):
    from mmdet_imbalance.engine.run_record import RunRecord, read_record
    RunRecord(world_size=2).write(str(tmp_path))
    with open(osp.join(tmp_path, 'imbalance', 'run.json')) as f:
        data = json.load(f)
    assert (data['iter_times_of'], data['peak_memory_of']) == ('rank 0', 'max over ranks')
    assert read_record(str(tmp_path)).world_size == 2


@pytest.mark.parametrize('outcome', ['finished', 'failed'])
def test_train_py_destroys_its_process_group_after_a_finished_run(clean_env, tmp_path, outcome,
                                                                  free_port):
    """A finished run destroys the gloo group it created (a live group can abort the rank in the
    interpreter's teardown: end_cpu_distributed); a failed run leaves it, as destroying it would
    wait on collectives that a lost peer never ends."""
    from mmdet_imbalance import train
    from mmdet_imbalance.engine.checkpoint_loading import OwnCheckpointRunner
    for name, value in dict(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                            MASTER_PORT=str(free_port)).items():
        clean_env.setenv(name, value)
    seen = {}

    class Runner:
        def train(self):
            seen['group during the run'] = torch_dist.is_initialized()
            if outcome == 'failed':
                raise RuntimeError('shape mismatch')

    clean_env.setattr(OwnCheckpointRunner, 'from_cfg', classmethod(lambda cls, cfg: Runner()))
    argv = [osp.join(REPO, 'configs/mini/retinanet_mini.py'), '--launcher', 'pytorch',
            '--work-dir', str(tmp_path / 'run')]
    try:
        if outcome == 'finished':
            train.main(argv)
        else:
            with pytest.raises(RuntimeError, match='shape mismatch'):
                train.main(argv)
        assert seen == {'group during the run': True}
        assert torch_dist.is_initialized() is (outcome == 'failed')
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()

"""Distributed training on a machine without CUDA, through mmengine's own entry points.

mmengine's launchers (``mmengine.dist.init_dist`` for ``pytorch``, ``slurm`` and ``mpi``) pin a
CUDA device with ``torch.cuda.set_device`` before they create the process group, so on a CPU-only
torch every rank of ``tools/dist_train.sh`` fails with ``module 'torch._C' has no attribute
'_cuda_setDevice'``. mmengine leaves two openings that make patching it unnecessary:

* ``Runner.setup_env`` calls ``init_dist`` only when no process group exists yet, so
  :func:`setup_cpu_distributed` creates a gloo group from the launcher's environment before the
  Runner is built (with the ``timeout`` of ``env_cfg.dist_cfg`` when the config gives one);
* ``Runner.wrap_model`` builds ``model_wrapper_cfg`` and only ``setdefault``s the CUDA
  ``device_ids=[LOCAL_RANK]``, so a ``model_wrapper_cfg`` with ``device_ids=None`` (what
  ``DistributedDataParallel`` needs for a CPU module) wraps the model on CPU. It keeps mmengine's
  own defaults: ``broadcast_buffers=False`` (each rank keeps its own buffers, as the rows whose
  state is per rank need: docs/methods/ghm-c.md §6, alrp-loss.md §8) and the config's
  ``find_unused_parameters``.

:func:`end_cpu_distributed` destroys that group when the run has finished (mmengine never does).

With CUDA present nothing here runs: mmengine initialises NCCL from ``env_cfg.dist_cfg`` as mmdet
does.
"""
import contextlib
import datetime
import os
import subprocess
from typing import Tuple

import torch
import torch.distributed as torch_dist

#: torch.distributed's default port, as mmengine's launchers use it.
DEFAULT_PORT = '29500'
#: What gloo and NCCL raise (as a plain RuntimeError) when another rank died or stopped answering.
PEER_LOST = ('Connection reset by peer', 'Connection closed by peer', 'Broken pipe', 'Timed out',
             'timed out', 'NCCL communicator was aborted')
#: How each launcher is meant to be started (it sets the environment read here).
START_HINTS = dict(
    pytorch='bash tools/dist_train.sh CONFIG N (torch.distributed.run sets it)',
    slurm='bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR (srun sets it)',
    mpi='mpirun, with MASTER_ADDR exported')


def _require(name: str, launcher: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise KeyError(f'--launcher {launcher}: environment variable {name} is not set; start the '
                       f'run with {START_HINTS[launcher]}')
    return value


def launcher_ranks(launcher: str) -> Tuple[int, int]:
    """``(rank, world_size)`` from a launcher's environment, which is completed the way mmengine's
    ``_init_dist_<launcher>`` completes it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``), so that ``init_method='env://'`` finds it."""
    env = os.environ
    if launcher == 'slurm':
        env['RANK'] = _require('SLURM_PROCID', launcher)
        env['WORLD_SIZE'] = _require('SLURM_NTASKS', launcher)
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        if 'MASTER_ADDR' not in env:
            nodes = _require('SLURM_NODELIST', launcher)
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {nodes} | head -n1')
        env.setdefault('MASTER_PORT', DEFAULT_PORT)
    elif launcher == 'mpi':
        env['RANK'] = _require('OMPI_COMM_WORLD_RANK', launcher)
        env['WORLD_SIZE'] = _require('OMPI_COMM_WORLD_SIZE', launcher)
        env['LOCAL_RANK'] = env.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        _require('MASTER_ADDR', launcher)
        env.setdefault('MASTER_PORT', DEFAULT_PORT)
    elif launcher == 'pytorch':
        for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
            _require(name, launcher)
    else:
        raise ValueError(f"--launcher {launcher!r}: expected 'pytorch', 'slurm' or 'mpi'")
    return int(env['RANK']), int(env['WORLD_SIZE'])


def cpu_model_wrapper_cfg(cfg) -> dict:
    """``cfg.model_wrapper_cfg`` completed for a CPU module (module docstring): ``device_ids=None``
    and mmengine's own defaults for the rest."""
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper_type = MODEL_WRAPPERS.get(wrapper['type'])
    if wrapper_type is None:
        raise KeyError(f"model_wrapper_cfg.type {wrapper['type']!r} is not a registered model "
                       'wrapper')
    if issubclass(wrapper_type, DistributedDataParallel):
        wrapper['device_ids'] = None
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    return wrapper


def setup_cpu_distributed(cfg) -> bool:
    """Prepare ``cfg`` (launcher other than 'none') for a distributed run without CUDA: create the
    gloo process group and set ``cfg.model_wrapper_cfg``. Returns whether it did anything (False
    with CUDA, without a launcher, or when a process group already exists)."""
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg)
    if torch_dist.is_initialized():
        return False
    rank, world_size = launcher_ranks(launcher)
    kwargs = {}
    timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group('gloo', init_method='env://', rank=rank,
                                  world_size=world_size, **kwargs)
    return True


def end_cpu_distributed() -> None:
    """Destroy the process group of :func:`setup_cpu_distributed` once the run has finished.

    A rank that leaves its gloo group alive can abort in the interpreter's teardown, after the
    run has finished and written its record: gloo's worker threads still hold work while Python
    finalises, and the process dies with "terminate called without an active exception"
    (SIGABRT), which ``torch.distributed.run`` reports as a failed run. Not for the error path:
    destroying waits for the pending collectives, which never end on a rank that lost its peer.
    """
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


@contextlib.contextmanager
def exit_when_a_rank_is_lost():
    """Turn the backend's error about a lost rank into a one-line exit of this rank.

    When a rank dies, the others fail in their next collective (gloo at once, on the closed
    connection; a rank that hangs after the process group's ``timeout``) with a long traceback
    from inside DDP. ``torch.distributed.run`` and ``srun --kill-on-bad-exit`` stop them
    themselves; under a launcher that does not, this says what happened instead.
    """
    try:
        yield
    except RuntimeError as err:
        lost = [s for s in PEER_LOST if s in str(err)]
        if not (torch_dist.is_initialized() and lost):
            raise
        raise SystemExit(
            f'error: rank {torch_dist.get_rank()} of {torch_dist.get_world_size()} lost contact '
            f'with another rank ({lost[0]}): that rank died or hangs, and its log says why. '
            'Rerun with --resume to continue from the last checkpoint.') from None

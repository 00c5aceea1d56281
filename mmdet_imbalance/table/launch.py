"""How the table tool starts one training run: one process, ``torch.distributed.run`` or ``srun``.

Both benchmarks take ``--launcher`` and ``--gpus``: the COCO rows on GPUs, and the mini rows on
CPU ranks over gloo where CUDA is absent (``tools/train.py`` creates the group,
:mod:`mmdet_imbalance.engine.distributed`), which is how a CPU machine runs a row the way a
cluster does. ``--gpus`` is then the number of processes; each takes the config's batch size, as
mmdet's ``batch_size`` is per GPU. The run record says ``world_size``; its iteration times are
rank 0's and its peak memory the largest process's, so the table's speed and memory columns stay
per-process figures.
"""
import os
from typing import List


def launch_command(args, script: str, arguments: List[str], seed: int) -> List[str]:
    """The command that runs ``script arguments`` under ``args.launcher`` with ``args.gpus``
    processes; ``arguments`` must already carry ``--launcher args.launcher``."""
    if args.launcher == 'pytorch':
        # One port per tool process and seed, so that two table tools on one machine do not meet.
        port = 20000 + (os.getpid() + seed) % 10000
        return [args.python, '-m', 'torch.distributed.run', f'--nproc_per_node={args.gpus}',
                f'--master_port={port}', script, *arguments]
    if args.launcher == 'slurm':
        per_node = min(args.gpus, args.gpus_per_node)
        # The mini rows are CPU-scale: their ranks ask for no GPU.
        gres = [f'--gres=gpu:{per_node}'] if args.benchmark == 'coco' else []
        return ['srun', '-p', args.partition, *gres, f'--ntasks={args.gpus}',
                f'--ntasks-per-node={per_node}', '--kill-on-bad-exit=1', args.python, '-u',
                script, *arguments]
    return [args.python, script, *arguments]

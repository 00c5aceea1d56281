"""Train a row config: mmdet's tools/train.py plus the embedded-dataset switch and input checks.

The package entry point behind ``tools/train.py`` (a thin CLI over :func:`main`) and the table
tool, which starts every run as ``python -m mmdet_imbalance.train`` so that the package never
depends on its tools::

    python -m mmdet_imbalance.train configs/mini/retinanet_mini.py --dataset shapes

Output goes to work_dirs/<config name>_<dataset>/ for the mini configs (work_dirs/<config name>/
for COCO) unless --work-dir is given. ``mim train mmdet <config>`` runs the same configs through
mmdet's own script.
"""
import argparse
import os
import sys

from mmdet_imbalance import cli
from mmdet_imbalance.config_builder import (CfgOptionsAction, add_precision_argument,
                                            build_runner_config, check_work_dir,
                                            embedded_data_roots, refuse_other_runs)
from mmdet_imbalance.engine.distributed import (end_cpu_distributed, exit_when_a_rank_is_lost,
                                                setup_cpu_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='train.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='row config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--dataset',
                        help="embedded dataset for a mini config: 'trees' or 'shapes'")
    parser.add_argument('--data-root',
                        help='COCO root for a COCO config (annotations/, train2017/)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from a checkpoint path, or the latest in the work dir')
    add_precision_argument(parser)
    parser.add_argument('--overwrite', action='store_true',
                        help='train into a work dir that holds a run of other settings '
                             '(replacing its record); without it such a work dir is refused')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr linearly with the total batch size')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config keys, e.g. train_cfg.max_iters=20')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.dist import get_rank, get_world_size
    from mmdet_imbalance.engine.checkpoint_loading import OwnCheckpointRunner
    with cli.bad_input():
        cfg = build_runner_config(
            args.config, work_dir=args.work_dir, dataset=args.dataset, data_root=args.data_root,
            cfg_options=args.cfg_options, launcher=args.launcher, resume=args.resume,
            precision=args.precision, overwrite=args.overwrite,
            auto_scale_lr=args.auto_scale_lr)
        cfg.work_dir = check_work_dir(cfg.work_dir)
        refuse_other_runs(cfg)
    print(f'work dir: {cfg.work_dir}' + ''.join(
        f'; embedded data: {root}' for root in embedded_data_roots(cfg)))
    # On a machine without CUDA: the gloo process group and a CPU model wrapper, before the Runner
    # (mmengine's launchers assume CUDA; mmdet_imbalance/engine/distributed.py).
    try:
        own_group = setup_cpu_distributed(cfg)
    except (KeyError, ValueError) as err:
        raise cli.BadInput(err.args[0]) from err
    if own_group and get_rank() == 0:
        print(f'no CUDA: {get_world_size()} ranks over gloo on CPU')
    with exit_when_a_rank_is_lost():
        with cli.bad_input():
            runner = OwnCheckpointRunner.from_cfg(cfg)
        # Data is read when training starts: bad data is bad input too.
        with cli.bad_input(cli.DATA_ERRORS):
            runner.train()
    if own_group:
        end_cpu_distributed()


if __name__ == '__main__':
    sys.exit(cli.run(main, 'train.py', errors=()))

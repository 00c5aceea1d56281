"""Evaluate a trained row: mmdet's tools/test.py with the same dataset switch as tools/train.py.

    python tools/test.py configs/mini/retinanet_mini.py work_dirs/retinanet_mini/iter_300.pth
    python tools/test.py configs/mini/retinanet_mini.py CKPT --dataset shapes
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.config_builder import CfgOptionsAction, build_runner_config  # noqa: E402,E501
from mmdet_imbalance.engine.checkpoint_loading import check_checkpoint_fits  # noqa: E402
from mmdet_imbalance.engine.distributed import (end_cpu_distributed,  # noqa: E402
                                                setup_cpu_distributed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='row config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir',
                        help='where the evaluation log goes (default: <checkpoint folder>/test; '
                             'a training work dir given here gets its test/ subfolder, so the '
                             "training's record and config copy stay as they are)")
    parser.add_argument('--dataset', help="embedded dataset for a mini config: 'trees' or 'shapes'")
    parser.add_argument('--data-root', help='COCO root for a COCO config')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    from mmdet_imbalance.engine.checkpoint_loading import OwnCheckpointRunner
    work_dir = test_work_dir(args.work_dir, args.checkpoint)
    print(f'test results: {work_dir}')
    with cli.bad_input():
        cfg = build_runner_config(args.config, work_dir=work_dir, dataset=args.dataset,
                                  data_root=args.data_root, cfg_options=args.cfg_options,
                                  launcher=args.launcher)
    cfg.load_from = args.checkpoint
    # Without CUDA: gloo and a CPU model wrapper (mmdet_imbalance/engine/distributed.py).
    try:
        own_group = setup_cpu_distributed(cfg)
    except (KeyError, ValueError) as err:
        raise cli.BadInput(err.args[0]) from err
    with cli.bad_input():
        runner = OwnCheckpointRunner.from_cfg(cfg)
        check_checkpoint_fits(runner.model, args.checkpoint)
    with cli.bad_input(cli.DATA_ERRORS):
        runner.test()
    if own_group:
        end_cpu_distributed()


def test_work_dir(work_dir, checkpoint: str) -> str:
    """Where a test writes: ``work_dir`` (default: the checkpoint's folder), or its ``test/``
    subfolder when that folder holds a training run. mmengine writes its config copy into the
    work dir, and the results tree exports the training's copy from there."""
    from mmdet_imbalance.engine.run_record import read_record
    work_dir = work_dir or osp.join(osp.dirname(osp.abspath(checkpoint)), 'test')
    return osp.join(work_dir, 'test') if read_record(work_dir) is not None else work_dir


if __name__ == '__main__':
    sys.exit(cli.run(main, 'test.py', errors=()))

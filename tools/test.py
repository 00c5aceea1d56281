"""Evaluate a trained row: mmdet's tools/test.py with the same dataset switch as tools/train.py.

    python tools/test.py configs/mini/retinanet_mini.py work_dirs/retinanet_mini/iter_300.pth
    python tools/test.py configs/mini/retinanet_mini.py CKPT --dataset shapes
"""
import argparse
import os
import os.path as osp
import sys

os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mmdet_imbalance.runner import build_runner_config  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='row config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--dataset', help="embedded dataset for a mini config: 'trees' or 'shapes'")
    parser.add_argument('--data-root', help='COCO root for a COCO config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    from mmengine.runner import Runner
    cfg = build_runner_config(args.config, work_dir=args.work_dir, dataset=args.dataset,
                              data_root=args.data_root, cfg_options=args.cfg_options,
                              launcher=args.launcher)
    cfg.load_from = args.checkpoint
    Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()

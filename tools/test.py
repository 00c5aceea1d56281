"""Evaluate a trained row: mmdet's tools/test.py with the same dataset switch as tools/train.py.

    python tools/test.py configs/mini/retinanet_mini.py work_dirs/retinanet_mini/iter_300.pth
    python tools/test.py configs/mini/retinanet_mini.py CKPT --dataset shapes
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


from mmdet_imbalance.config_builder import CfgOptionsAction, build_runner_config  # noqa: E402,E501


def check_checkpoint_fits(model, checkpoint: str) -> None:
    """Raise ValueError unless ``checkpoint``'s weights have exactly ``model``'s keys and shapes.

    mmengine loads a checkpoint non-strictly and only warns, in the middle of the log, about keys
    that do not fit: another detector's checkpoint would be scored with random weights (AP 0.000,
    exit 0). The keys are compared as mmengine loads them (``module.`` prefix removed).
    """
    import pickle

    import torch
    from mmengine.model import is_model_wrapper
    try:
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f'checkpoint {checkpoint} cannot be loaded ({err})') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    expected = (model.module if is_model_wrapper(model) else model).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state)
                        if tuple(getattr(state[k], 'shape', ())) != tuple(expected[k].shape))
    problems = [f'{len(keys)} {kind} keys (e.g. {", ".join(keys[:3])})'
                for kind, keys in (('missing', missing), ('unexpected', unexpected),
                                   ('shape-mismatched', mismatched)) if keys]
    if problems:
        raise ValueError(f'checkpoint {checkpoint} does not fit the model of this config: '
                         f'{"; ".join(problems)}. Was it trained with another config?')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='row config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--dataset', help="embedded dataset for a mini config: 'trees' or 'shapes'")
    parser.add_argument('--data-root', help='COCO root for a COCO config')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
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
    runner = Runner.from_cfg(cfg)
    try:
        check_checkpoint_fits(runner.model, args.checkpoint)
    except ValueError as err:
        parser.exit(1, f'{parser.prog}: error: {err}\n')
    runner.test()


if __name__ == '__main__':
    main()

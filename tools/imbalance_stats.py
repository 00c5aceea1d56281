"""Foreground/background imbalance of a config's training set: counts, pi* and bias per stage.

    python tools/imbalance_stats.py configs/mini/retinanet_mini.py
    python tools/imbalance_stats.py configs/mini/faster-rcnn_mini.py --dataset shapes
    python tools/imbalance_stats.py configs/table1/retinanet_r50_fpn_1x_coco.py \\
        --data-root /data/coco --device cuda
    python tools/imbalance_stats.py configs/mini/faster-rcnn_mini.py \\
        --checkpoint work_dirs/faster-rcnn_mini/iter_300.pth          # adds the RoI candidates

One pass over the training annotations with the config's anchor/point generators and assigners
(no image is decoded, no network is run, except for the RoI stage with --checkpoint); see
mmdet_imbalance/analysis/imbalance_stats.py for what is counted and how. Results are cached in
work_dirs/imbalance_stats/, where SamplingFreePriorHook finds them for prior_prob='auto'.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mmdet_imbalance.analysis.imbalance_stats import (DEFAULT_CACHE_DIR, STAGES,  # noqa: E402
                                                      format_table, get_imbalance_stats,
                                                      train_dataset_cfg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file (its model and train_dataloader are used)')
    parser.add_argument('--stages', nargs='+', choices=STAGES,
                        help='stages to count (default: every stage the config has)')
    parser.add_argument('--checkpoint', help='two-stage detector weights: also count the RoI '
                                             'candidates after the RPN')
    parser.add_argument('--dataset', help="embedded dataset for a mini config: 'trees' or 'shapes'")
    parser.add_argument('--data-root', help='data root of the training set (e.g. a COCO root)')
    parser.add_argument('--num-images', type=int, help='count only the first N training images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random train transforms')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--cache-dir', default=DEFAULT_CACHE_DIR, help='where results are cached')
    parser.add_argument('--no-cache', action='store_true', help='recompute even if cached')
    parser.add_argument('--json', help='also write the full result to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmdet_imbalance  # noqa: F401  (registers modules)
    from mmdet_imbalance.runner import load_config, use_mini_dataset
    cfg = load_config(args.config)
    if args.dataset:
        use_mini_dataset(cfg, args.dataset)
    if args.data_root:
        train_dataset_cfg(cfg).data_root = args.data_root.rstrip('/') + '/'
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    stats = get_imbalance_stats(
        cfg, stages=args.stages, checkpoint=args.checkpoint, cache_dir=args.cache_dir,
        num_images=args.num_images, seed=args.seed, use_cache=not args.no_cache,
        progress=sys.stdout.isatty(), device=args.device)
    print(format_table(stats))
    for entry in stats['stages'].values():
        print(f"{entry['stage']}: {entry.get('cache_file', '(not cached)')}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(stats, f, indent=1)
    return stats


if __name__ == '__main__':
    main()

"""Foreground/background imbalance of a config's training set: counts, pi* and bias per stage.

    python tools/imbalance_stats.py configs/mini/retinanet_mini.py
    python tools/imbalance_stats.py configs/mini/faster-rcnn_mini.py --dataset shapes
    python tools/imbalance_stats.py configs/table1/retinanet_r50_fpn_1x_coco.py \\
        --data-root /data/coco --device cuda
    python tools/imbalance_stats.py configs/mini/faster-rcnn_mini.py \\
        --checkpoint work_dirs/faster-rcnn_mini_shapes/iter_600.pth   # adds the RoI candidates
    python tools/imbalance_stats.py --write-docs docs/imbalance_stats.md   # regenerates its tables

One pass over the training annotations with the config's anchor/point generators and assigners
(no image is decoded, no network is run, except for the RoI stage with --checkpoint); see
mmdet_imbalance/analysis/ for what is counted and how. Results are cached in
work_dirs/imbalance_stats/, where SamplingFreePriorHook finds them for prior_prob='auto'.

--write-docs DOC reruns the tool for every section marked in DOC (<!-- imbalance-stats:begin NAME
followed by one argument list per line -->) and rewrites the table up to its end marker; the rest
of DOC is kept. --cache-dir, --no-cache and --device apply to every argument list.
"""
import argparse
import json
import os.path as osp
import shlex
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.analysis import (DEFAULT_CACHE_DIR, STAGES, doc_sections,  # noqa: E402
                                      format_doc_table, format_table, get_imbalance_stats,
                                      rewrite_doc)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?',
                        help='config file (its model and train_dataloader are used)')
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
    parser.add_argument('--write-docs', metavar='DOC',
                        help='instead of one config: regenerate the marked tables of DOC')
    parser.add_argument('--sections', nargs='+', metavar='NAME',
                        help='with --write-docs: only these sections (default: all)')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    if (args.config is None) == (args.write_docs is None):
        parser.error('give either a config or --write-docs DOC')
    if args.sections and not args.write_docs:
        parser.error('--sections needs --write-docs')
    return args


def compute(args) -> dict:
    """The statistics of ``args.config`` with the command line's dataset and config options."""
    from mmdet_imbalance.config_builder import build_runner_config
    from mmdet_imbalance.engine.checkpoint_loading import own_checkpoint_loading
    # The data choices apply as for training (the COCO root rule included); the files are read
    # when the statistics are counted.
    cfg = build_runner_config(args.config, dataset=args.dataset, data_root=args.data_root,
                              cfg_options=args.cfg_options, check_files=False)
    # --checkpoint names a two-stage run's checkpoint, which mmengine loads (RoI stage).
    with own_checkpoint_loading():
        return get_imbalance_stats(
            cfg, stages=args.stages, checkpoint=args.checkpoint, cache_dir=args.cache_dir,
            num_images=args.num_images, seed=args.seed, use_cache=not args.no_cache,
            progress=sys.stdout.isatty(), device=args.device)


def write_docs(args) -> dict:
    """Rewrites the sections of ``args.write_docs``; returns name -> table."""
    with open(args.write_docs) as f:
        text = f.read()
    sections = doc_sections(text)
    names = args.sections or list(sections)
    unknown = sorted(set(names) - set(sections))
    if unknown:
        raise SystemExit(f'{args.write_docs} has no section {unknown}; it has {list(sections)}')
    tables = {}
    for name in names:
        results = []
        for argv in sections[name]:
            print(f'[{name}] imbalance_stats.py {shlex.join(argv)}', flush=True)
            line_args = parse_args(argv)
            if line_args.write_docs:
                raise SystemExit(f'section {name!r}: an argument list cannot --write-docs')
            # How and where results are computed, not what: taken from this command.
            line_args.cache_dir, line_args.no_cache, line_args.device = \
                args.cache_dir, args.no_cache, args.device
            results.append(compute(line_args))
        tables[name] = format_doc_table(results)
        print(tables[name])
    with open(args.write_docs, 'w') as f:
        f.write(rewrite_doc(text, tables))
    print(f"{args.write_docs}: rewrote {', '.join(names)}")
    return tables


def main(argv=None):
    args = parse_args(argv)
    if args.write_docs:
        return write_docs(args)
    stats = compute(args)
    print(format_table(stats))
    for entry in stats['stages'].values():
        print(f"{entry['stage']}: {entry.get('cache_file', '(not cached)')}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(stats, f, indent=1)
    return stats


if __name__ == '__main__':
    sys.exit(cli.run(main, 'imbalance_stats.py'))

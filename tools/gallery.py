"""Draw a detection gallery of published rows: ground truth | baseline | method, on val canvases.

    python tools/gallery.py                      # docs/gallery.png: the 3 rows with the largest
                                                 # |ΔAP| (distinct baselines), seed 0, canvases 0-3
    python tools/gallery.py --rows ghm-c,isr --images 0 5 9 12 --out work_dirs/gallery.png
    python tools/gallery.py --no-train           # fail instead of retraining a run

The models are the published runs of ``results/mini-<dataset>/seed<k>/``: the last checkpoint of
a work dir that holds a finished run of exactly the published settings, looked up in the table
tool's ``--work-dir`` (default work_dirs/table1) and then in ``--retrain-dir``; where none is kept
the run is trained again there with the table's own command (about 5 minutes a row on 2 cores).
Checkpoints are not kept in git (mmdet_imbalance/table/gallery.py says why). Writes
``<out>.inputs.json`` next to the picture: the hash of the records of the runs drawn.
"""
import argparse
import os.path as osp
import shlex
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmdet_imbalance import cli, config_paths  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', help='method rows to draw, as tools/table1.py --rows takes them '
                                       '(default: the 3 with the largest |ΔAP|, one per baseline)')
    parser.add_argument('--seed', type=int, default=0, help='the published seed drawn')
    parser.add_argument('--images', type=int, nargs='+', default=[0, 1, 2, 3],
                        help='val canvases, by index in the val annotation file')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections scoring above this are drawn')
    parser.add_argument('--dataset', default='shapes', help='embedded dataset of the mini tree')
    cli.add_results_argument(parser)
    parser.add_argument('--work-dir', default='work_dirs/table1',
                        help='the table tool\'s --work-dir, where its runs keep their checkpoints')
    parser.add_argument('--retrain-dir', default='work_dirs/gallery',
                        help='where runs whose checkpoint is not kept are trained again')
    parser.add_argument('--no-train', action='store_true',
                        help='fail instead of retraining a run whose checkpoint is not kept')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'gallery.png'))
    cli.add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmcv import imread

    from mmdet_imbalance.config_builder import build_runner_config
    from mmdet_imbalance.engine.checkpoint_loading import own_checkpoint_loading
    from mmdet_imbalance.engine.run_record import read_record
    from mmdet_imbalance.table import gallery, pictures, published
    from mmdet_imbalance.table.rows import select_rows
    root = osp.abspath(args.results)
    if args.rows:
        chosen = [row for row in select_rows(args.rows, 'mini') if not row.is_baseline]
    else:
        _, table, _ = published.load_table(root, args.dataset)
        chosen = gallery.pick_rows(table, args.seed)
    pairs = gallery.baseline_pairs(chosen)
    if not pairs:
        raise cli.BadInput(f'no method row with a seed-{args.seed} run in {root} to draw')
    models, inputs, aps, configs = {}, [], {}, {}
    for row in {r.key: r for pair in pairs for r in pair}.values():
        record_path, record = gallery.published_record(root, args.dataset, args.seed, row.key)
        candidates = [gallery.work_dir_of(osp.abspath(d), args.dataset, args.seed, row)
                      for d in (args.work_dir, args.retrain_dir)]
        checkpoint, work_dir = gallery.find_checkpoint(record, candidates)
        if checkpoint is None:
            if args.no_train:
                raise cli.BadInput(f'no kept checkpoint of the published {row.key} seed '
                                   f'{args.seed} in {" or ".join(candidates)}; rerun without '
                                   '--no-train to train it again')
            work_dir = candidates[1]
            checkpoint = gallery.retrain(row, args.dataset, args.seed, record, work_dir)
        print(f'{row.key}: {checkpoint}')
        models[row.key] = checkpoint
        inputs.append(osp.relpath(record_path, osp.dirname(root)))
        aps[row.key] = gallery.ap_text(record, read_record(work_dir))
        configs[row.key] = build_runner_config(config_paths.resolve(row.config('mini')),
                                               dataset=args.dataset, check_files=False)
    canvases, classes = gallery.val_canvases(configs[pairs[0][0].key], args.images)
    paths = [path for path, _, _ in canvases]
    with own_checkpoint_loading():
        found = {key: gallery.detect(configs[key], models[key], paths) for key in models}
    images = [imread(path, channel_order='rgb') for path in paths]
    grid = []
    for base, row in pairs:
        cells = [gallery.cell(image, boxes, labels, [found[base.key][i], found[row.key][i]],
                              classes, args.score_thr)
                 for i, (image, (_, boxes, labels)) in enumerate(zip(images, canvases))]
        grid.append((f'ground truth  |  {base.display_name} (AP {aps[base.key]})  |  '
                     f'{row.display_name} (AP {aps[row.key]})', cells))
    columns = [f'val canvas {i}: {osp.basename(p)}' for i, p in zip(args.images, paths)]
    size = gallery.draw(args.out, grid, columns,
                        f'{args.dataset} val, seed {args.seed}: ground truth | baseline | method '
                        f'(detections scoring above {args.score_thr})')
    command = 'python tools/gallery.py ' + shlex.join(argv if argv is not None else sys.argv[1:])
    pictures.write_inputs(args.out, osp.dirname(root), inputs, command)
    print(f'wrote {args.out} ({size[0]}x{size[1]} px) and {pictures.inputs_path(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main, 'gallery.py'))

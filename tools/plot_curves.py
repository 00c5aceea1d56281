"""Draw the training curves of table rows from the results tree, each over its baseline's.

    python tools/plot_curves.py                        # docs/curves.png: the published baselines
                                                       # and the rows whose ΔAP is outside the noise
    python tools/plot_curves.py --rows ghm-c,ohem --out work_dirs/curves.png
    python tools/plot_curves.py --rows ghm-c --seeds 0 --keys loss grad_norm lr

Reads ``results/mini-<dataset>/seed<k>/<row>/scalars.json`` (mmengine's logged scalars every 10
iterations, kept by the export; tools/export_curves.py adds them to older runs) through the same
verified reader as the table, and writes ``<out>.inputs.json`` next to the picture: the hash of
every record and curve of the tree, which tests/test_pictures.py compares with the tree.
"""
import argparse
import os
import os.path as osp
import shlex
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmdet_imbalance import cli  # noqa: E402


def main(argv=None):
    from mmdet_imbalance.table.curve_plot import DEFAULT_KEYS
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', default='published',
                        help="'published' (baselines and rows whose ΔAP is outside the noise), "
                             'or rows as tools/table1.py --rows takes them')
    parser.add_argument('--seeds', type=int, nargs='+', help='only these seeds (default: all)')
    parser.add_argument('--keys', nargs='+', default=list(DEFAULT_KEYS),
                        help='logged scalars to draw, one column each')
    parser.add_argument('--dataset', default='shapes', help='embedded dataset of the mini tree')
    cli.add_results_argument(parser)
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'curves.png'))
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    from mmdet_imbalance.table import curve_plot, pictures, published, results
    root = osp.abspath(args.results)
    rows, runs, table = published.choose_rows(args.rows, root, args.dataset)
    if not any(run for key in runs for run in runs[key].values()):
        raise cli.BadInput(f'no run of the rows {[r.key for r in rows]} in '
                           f'{results.table_dir(root, "mini", args.dataset)}')
    tree = osp.relpath(results.table_dir(root, 'mini', args.dataset), osp.dirname(root))
    command = 'python tools/plot_curves.py ' + shlex.join(argv if argv is not None
                                                          else sys.argv[1:])
    shown = curve_plot.draw(args.out, rows, runs, table, args.keys, args.seeds,
                            f'training curves of {tree} (mean over seeds, band = min-max)')
    if not any(panel for family in shown.values() for panel in family.values()):
        os.remove(args.out)
        raise cli.BadInput(f'none of the runs in {tree} has a curve ({", ".join(args.keys)}); '
                           'python tools/export_curves.py adds them from their work dirs')
    pictures.write_inputs(args.out, osp.dirname(root),
                          [f'{tree}/seed*/*/run.json', f'{tree}/seed*/*/scalars.json'], command)
    for base, panels in shown.items():
        drawn = {}
        for key, seeds in ((k, n) for keys in panels.values() for k, n in keys.items()):
            drawn[key] = max(seeds, drawn.get(key, 0))
        print(f'{base}: ' + (', '.join(f'{key} ({n} seed(s))' for key, n in drawn.items())
                             or 'no curve'))
    print(f'wrote {args.out} and {pictures.inputs_path(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main, 'plot_curves.py'))

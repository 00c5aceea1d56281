"""Add the training curve of every run in a results tree, from the work dirs that trained them.

    python tools/export_curves.py                                  # results/mini-shapes
    python tools/export_curves.py --dataset trees --work-dir work_dirs/table1

For runs exported before the export kept curves: ``tools/table1.py`` now writes each run's
``scalars.json`` (mmengine's logged scalars every 10 iterations) when it exports the run. A work
dir is used only when its record is the exported run (same settings, start time and AP); each
folder is verified again after its ``run.json`` names the curve. See
:func:`mmdet_imbalance.table.results.reexport_curves`.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmdet_imbalance import cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/table1',
                        help='the table tool\'s --work-dir that trained the runs')
    parser.add_argument('--dataset', default='shapes', help='embedded dataset of the mini tree')
    cli.add_results_argument(parser)
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    from mmdet_imbalance.table.results import reexport_curves
    lines = reexport_curves(osp.abspath(args.results), osp.abspath(args.work_dir), 'mini',
                            args.dataset)
    for line in lines:
        print(line)
    done = sum(': curve of ' in line for line in lines)
    print(f'{done} of {len(lines)} run folders have their curve from {args.work_dir}')
    return 0 if done == len(lines) else 1


if __name__ == '__main__':
    sys.exit(cli.run(main, 'export_curves.py'))

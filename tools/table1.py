"""Regenerate Table 1 of the foreground-background imbalance review from one codebase.

    python tools/table1.py                                   # mini table on shapes, 1 seed
    python tools/table1.py --dataset shapes --rows ohem,isr  # two rows (+ their baseline)
    python tools/table1.py --seeds 3                         # mean ± std, noise marking
    python tools/table1.py --collect-only                    # only re-read finished runs
    python tools/table1.py --seeds 3 --reuse-results         # add seeds 1-2 to results/
    python tools/table1.py --from-results --publish docs/    # the table of results/, every seed
    python tools/table1.py --benchmark coco --data-root data/coco --launcher pytorch --gpus 8
    python tools/table1.py --rows retinanet --launcher pytorch --gpus 2  # 2 CPU ranks, gloo

A thin CLI: it builds a :class:`~mmdet_imbalance.table.request.TableRequest` and hands it to
:func:`mmdet_imbalance.table.runs.run_table`, which says what a request trains,
skips, resumes and refuses. Rows whose config or modules do not exist yet are listed as "not
implemented". See docs/table1-method.md.
"""
import argparse
import os.path as osp
import shlex
import signal
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.config_builder import add_precision_argument  # noqa: E402
from mmdet_imbalance.engine.precision import resolve_precision  # noqa: E402
from mmdet_imbalance.table import collect, runs  # noqa: E402
from mmdet_imbalance.table.request import TableRequest  # noqa: E402
from mmdet_imbalance.table.rows import BENCHMARKS, select_rows, valid_row_names  # noqa: E402

MINI_DATASETS = ('trees', 'shapes')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--benchmark', choices=BENCHMARKS, default='mini',
                        help='mini: CPU-scale rows on embedded data; coco: the R50-FPN 1x rows')
    parser.add_argument('--dataset', choices=MINI_DATASETS, default='shapes',
                        help='embedded dataset of the mini benchmark')
    add_precision_argument(parser)
    parser.add_argument('--rows', default='all',
                        help='all, baselines, or a comma list of row keys/names '
                             f'({", ".join(valid_row_names())})')
    parser.add_argument('--seeds', type=int, default=1, help='train every row with seeds 0..N-1')
    parser.add_argument('--force', action='store_true', help='retrain rows that already finished')
    parser.add_argument('--collect-only', action='store_true',
                        help='train nothing; build the table from the runs found')
    parser.add_argument('--work-dir', default='work_dirs/table1',
                        help='root of the row runs and of the table files')
    parser.add_argument('--max-iters', type=int,
                        help='cap every run at this many iterations (evaluated at the end): '
                             'smoke tests of the tool, not results')
    parser.add_argument('--warmup-iters', type=int, default=collect.WARMUP_ITERS,
                        help='iterations skipped before timing')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value overrides passed to every run')
    parser.add_argument('--data-root', default='data/coco',
                        help='COCO 2017 root for --benchmark coco')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run with --launcher pytorch/slurm: one per GPU, or '
                             'CPU ranks over gloo where CUDA is absent (both benchmarks)')
    parser.add_argument('--gpus-per-node', type=int, default=8, help='slurm: GPUs per node')
    parser.add_argument('--partition', help='slurm partition')
    parser.add_argument('--python', default=sys.executable, help='interpreter for the runs')
    cli.add_results_argument(parser, help='the committed results tree: every finished run of '
                             "the table is exported there (default: the repository's results/)")
    parser.add_argument('--reuse-results', action='store_true',
                        help='do not train runs that the results tree already holds with the '
                             'same settings; the table takes them from there (adds seeds to a '
                             'published table without retraining its seed 0)')
    parser.add_argument('--from-results', action='store_true',
                        help='train nothing; build the table from the results tree alone, with '
                             'every seed found there')
    parser.add_argument('--model-index', action='store_true',
                        help='also rewrite configs/<method>/metafile.yml and model-index.yml from '
                             'the results tree (as tools/model_index.py does)')
    parser.add_argument('--publish', metavar='DIR',
                        help='also copy table1.md and table1.png into DIR (e.g. docs/)')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.publish and osp.exists(args.publish) and not osp.isdir(args.publish):
        parser.error(f'--publish {args.publish}: a file; --publish takes the folder that gets '
                     'table1.md and table1.png (e.g. docs/)')
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.max_iters is not None and args.max_iters < 1:
        parser.error(f'--max-iters must be >= 1, got {args.max_iters}')
    if args.gpus < 1:
        parser.error(f'--gpus must be >= 1, got {args.gpus}')
    if args.launcher == 'slurm' and not args.partition:
        parser.error('--launcher slurm needs --partition')
    try:
        args.selected = select_rows(args.rows, args.benchmark)
    except ValueError as err:
        parser.error(str(err))
    if args.reuse_results and (args.force or args.benchmark != 'mini'):
        parser.error('--reuse-results reuses the mini results tree; it cannot be combined with '
                     + ('--force' if args.force else f'--benchmark {args.benchmark}'))
    bad = [o for o in args.cfg_options if '=' not in o or o.startswith('=')]
    if bad:
        parser.error(f'--cfg-options {" ".join(bad)}: each option must be key=value')
    # Every path is resolved once, against the caller's folder; the runs get absolute paths.
    args.work_dir = osp.abspath(args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    args.results = osp.abspath(args.results)
    if args.publish:
        args.publish = osp.abspath(args.publish)
    args.precision = resolve_precision(args.precision)
    return args


def table_request(args, command: str) -> TableRequest:
    """The request of the parsed options."""
    return TableRequest(
        rows=args.selected, work_dir=args.work_dir, results=args.results,
        benchmark=args.benchmark, dataset=args.dataset, precision=args.precision,
        seeds=args.seeds, force=args.force, collect_only=args.collect_only,
        reuse_results=args.reuse_results, from_results=args.from_results,
        max_iters=args.max_iters, warmup_iters=args.warmup_iters, cfg_options=args.cfg_options,
        data_root=args.data_root, launcher=args.launcher, gpus=args.gpus,
        gpus_per_node=args.gpus_per_node, partition=args.partition, python=args.python,
        publish=args.publish, command=command)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # mmengine resolves ``mmdet::`` bases through pkg_resources, which warns on every config load.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    command = 'python tools/table1.py ' + shlex.join(argv if argv is not None else sys.argv[1:])
    request = table_request(args, command)
    paths, failures = runs.run_table(request)
    print('Table files: ' + ', '.join(paths[e] for e in ('md', 'csv', 'json', 'png')))
    if args.publish and args.from_results:
        # The published plot records the records it was drawn from (tests/test_pictures.py).
        from mmdet_imbalance.table import pictures, results
        tree = results.table_dir(args.results, args.benchmark, request.mini_dataset)
        pictures.write_inputs(osp.join(args.publish, 'table1.png'), osp.dirname(args.results),
                              [osp.relpath(tree, osp.dirname(args.results)) + '/seed*/*/run.json'],
                              command)
    if args.model_index:
        from mmdet_imbalance.table import metafile
        written, _ = metafile.write(REPO_ROOT, args.results)
        print(f'Model index: {len(written)} files rewritten from {args.results}')
    return 1 if failures else 0


if __name__ == '__main__':
    try:
        sys.exit(cli.run(main, 'table1.py'))
    except KeyboardInterrupt:
        print('\ninterrupted. Rerun the same command to continue: finished rows are kept, the '
              'interrupted run resumes from its last checkpoint.')
        sys.exit(130)

"""Write or check the OpenMMLab model index of the Table 1 rows (what ``mim search`` reads).

    python tools/model_index.py            # write configs/<method>/metafile.yml, model-index.yml
    python tools/model_index.py --check    # exit 1 when the committed files are out of date

Numbers come from the row registry and the committed results tree, never typed in; see
:mod:`mmdet_imbalance.table.metafile`.
"""
import argparse
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.table import metafile  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_results_argument(parser)
    parser.add_argument('--check', action='store_true',
                        help='write nothing; list the files that differ and exit 1 if any does')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    # mmengine resolves ``mmdet::`` bases through pkg_resources, which warns on every config load.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    if args.check:
        problems = metafile.check(REPO_ROOT, osp.abspath(args.results))
        for line in problems:
            print(line)
        if problems:
            print('model index out of date: run python tools/model_index.py')
            return 1
        print('model index up to date')
        return 0
    written, stale = metafile.write(REPO_ROOT, osp.abspath(args.results))
    for line in stale:
        print(f'left out, other settings than the current configs give: {line}')
    print(f'wrote {len(written)} files: ' + ', '.join(written))
    return 0


if __name__ == '__main__':
    sys.exit(cli.run(main, 'model_index.py'))

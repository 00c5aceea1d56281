"""Prepare the embedded benchmark datasets under data/ (idempotent; --force rebuilds).

    python tools/prepare_data.py                  # trees and shapes
    python tools/prepare_data.py shapes --force
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.datasets import EMBEDDED, prepare  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names', nargs='*', metavar='NAME',
                        help=f'datasets to prepare, of {sorted(EMBEDDED)} (default: all)')
    parser.add_argument('--root', default='data', help='parent folder of the datasets')
    parser.add_argument('--force', action='store_true', help='rebuild even if prepared')
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(EMBEDDED))
    if unknown:
        parser.error(f'unknown dataset(s) {unknown}; choose from {sorted(EMBEDDED)}')
    for name in args.names or sorted(EMBEDDED):
        start = time.time()
        # Files that differ from the manifest are an error (cli), never rebuilt here.
        manifest = prepare(name, f'{args.root}/{name}', force=args.force)
        counts = ', '.join(f"{s}: {manifest[s]['images']} images / {manifest[s]['boxes']} boxes "
                           f"(GT self-AP {manifest[s]['self_ap']:.3f})" for s in ('train', 'val'))
        print(f'[data] {name} at {args.root}/{name}: {counts} [{time.time() - start:.1f}s]')


if __name__ == '__main__':
    sys.exit(cli.run(main, 'prepare_data.py'))

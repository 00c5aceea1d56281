"""Prepare the embedded benchmark datasets under data/ (idempotent; --force rebuilds).

    python tools/prepare_data.py                  # trees and shapes
    python tools/prepare_data.py shapes --force
"""
import argparse
import time

from mmdet_imbalance.datasets import EMBEDDED, EmbeddedDataError, prepare


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names', nargs='*', metavar='NAME',
                        help=f'datasets to prepare, of {sorted(EMBEDDED)} (default: all)')
    parser.add_argument('--root', default='data', help='parent folder of the datasets')
    parser.add_argument('--force', action='store_true', help='rebuild even if prepared')
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(EMBEDDED))
    if unknown:
        parser.error(f'unknown dataset(s) {unknown}; choose from {sorted(EMBEDDED)}')
    for name in args.names or sorted(EMBEDDED):
        start = time.time()
        try:
            manifest = prepare(name, f'{args.root}/{name}', force=args.force)
        except EmbeddedDataError as err:  # files that differ from the manifest: never rebuilt here
            parser.exit(1, f'[data] error: {err}\n')
        counts = ', '.join(f"{s}: {manifest[s]['images']} images / {manifest[s]['boxes']} boxes "
                           f"(GT self-AP {manifest[s]['self_ap']:.3f})" for s in ('train', 'val'))
        print(f'[data] {name} at {args.root}/{name}: {counts} [{time.time() - start:.1f}s]')


if __name__ == '__main__':
    main()

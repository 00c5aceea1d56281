"""Pretrain the mini backbone on the shapes pretext task and write it under checkpoints/.

    python tools/pretrain_backbone.py                       # the committed artifact's recipe
    python tools/pretrain_backbone.py --verify checkpoints/<name>-<sha8>.pth

The file is named ``<stem>-<sha256[:8]>.pth``; the mini configs name the committed one
(configs/mini/_base_/recipe_mini.py). A retrained backbone is another artifact, with another name,
and every mini run's settings identity changes with it. docs/calibration.md gives the accuracy.
"""
import argparse
import json
import sys


from mmdet_imbalance import pretrain

STEM = 'resnet18-w32_bn_shapes-pretext'


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', default='checkpoints')
    parser.add_argument('--stem', default=STEM, help='file name before -<sha8>.pth')
    parser.add_argument('--num-train', type=int, default=30000)
    parser.add_argument('--num-val', type=int, default=4000)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--verify', metavar='PTH', help='check a checkpoint and print its meta')
    args = parser.parse_args()
    if args.verify:
        try:
            meta = pretrain.load_meta(args.verify)
        except (OSError, ValueError) as err:
            parser.exit(2, f'error: {err}\n')
        print(json.dumps(meta, indent=1))
        return
    result = pretrain.pretrain(args.out_dir, args.stem, num_train=args.num_train,
                               num_val=args.num_val, epochs=args.epochs, batch=args.batch,
                               lr=args.lr, seed=args.seed,
                               log=lambda line: print(f'[pretrain] {line}', flush=True))
    print(f"[pretrain] wrote {result['path']} (sha256 {result['sha256']})")


if __name__ == '__main__':
    sys.exit(main())

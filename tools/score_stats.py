"""Where a detector's scores sit against the test score threshold: each object's best score.

    python tools/test.py configs/mini/atss_mini_rs-loss.py CKPT --dataset shapes \\
        --cfg-options model.test_cfg.score_thr=0 test_evaluator.outfile_prefix=work_dirs/rs/det
    python tools/score_stats.py data/shapes/annotations/instances_val.json \\
        work_dirs/atss/det.bbox.json work_dirs/rs/det.bbox.json

For each detections file: the objects' median best score (the highest score of a same-class
detection with IoU >= --iou-thr), the share of objects whose best score is above --score-thr
(what a test at that threshold can still find), and the highest score of the set. See
mmdet_imbalance/analysis/score_stats.py.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.analysis.score_stats import score_stats  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('ann_file', help='COCO annotation file of the tested split')
    parser.add_argument('det_files', nargs='+', help='detections files (<prefix>.bbox.json)')
    parser.add_argument('--score-thr', type=float, default=0.05,
                        help="the test threshold to count against (mmdet's default 0.05)")
    parser.add_argument('--iou-thr', type=float, default=0.5)
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    print(f'| detections | objects | median best score | best score > {args.score_thr:g} '
          '| found at any score | highest score |')
    print('|---|---|---|---|---|---|')
    rows = []
    for det_file in args.det_files:
        stats = score_stats(args.ann_file, det_file, args.score_thr, args.iou_thr)
        rows.append(stats)
        print(f"| {det_file} | {stats['objects']} | {stats['median_best_score']:.3f} "
              f"| {100 * stats['share_above_thr']:.1f} % | {100 * stats['share_found']:.1f} % "
              f"| {stats['max_score']:.3f} |")
    return rows


if __name__ == '__main__':
    sys.exit(cli.run(main, 'score_stats.py'))

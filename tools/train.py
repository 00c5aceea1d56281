"""Train a row config: mmdet's tools/train.py plus the embedded-dataset switch and input checks.

    python tools/train.py configs/mini/retinanet_mini.py
    python tools/train.py configs/mini/retinanet_mini_ap-loss.py --dataset shapes
    python tools/train.py configs/table1/retinanet_r50_fpn_1x_coco.py --data-root /data/coco
    bash tools/dist_train.sh configs/table1/retinanet_r50_fpn_1x_coco.py 8

Output goes to work_dirs/<config name>_<dataset>/ for the mini configs (work_dirs/<config name>/
for COCO) unless --work-dir is given. ``mim train mmdet <config>``
runs the same configs through mmdet's own script. A thin CLI over
:func:`mmdet_imbalance.train.main`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_imbalance import cli  # noqa: E402
from mmdet_imbalance.train import main, parse_args  # noqa: E402,F401  (parse_args: tests)

if __name__ == '__main__':
    sys.exit(cli.run(main, 'train.py', errors=()))

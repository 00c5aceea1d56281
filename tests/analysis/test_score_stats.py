"""tools/score_stats.py: each object's best same-class score at IoU >= 0.5, counted by hand."""
import json
import os
import runpy

import numpy as np
import pytest

from pycocotools import mask as mask_utils

from mmdet_imbalance.analysis.score_stats import best_object_scores, score_stats

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ANNS = [dict(id=1, image_id=1, category_id=1, bbox=[0, 0, 10, 10], iscrowd=0),
        dict(id=2, image_id=1, category_id=2, bbox=[20, 20, 10, 10], iscrowd=0),
        dict(id=3, image_id=2, category_id=1, bbox=[0, 0, 10, 10], iscrowd=0),
        dict(id=4, image_id=2, category_id=1, bbox=[50, 50, 4, 4], iscrowd=1)]
DETS = [dict(image_id=1, category_id=1, bbox=[0, 0, 10, 10], score=0.02),
        # IoU with object 1 is 50 / 150 = 1/3 < 0.5: a higher score that does not count
        dict(image_id=1, category_id=1, bbox=[5, 0, 10, 10], score=0.9),
        dict(image_id=1, category_id=1, bbox=[1, 0, 10, 10], score=0.04),  # IoU 90/110
        dict(image_id=1, category_id=3, bbox=[20, 20, 10, 10], score=0.8),  # wrong class
        dict(image_id=2, category_id=1, bbox=[0, 0, 10, 8], score=0.3)]  # IoU 0.8


def test_iou_of_coco_boxes():
    # the IoU the counting uses (pycocotools'), on the boxes the cases below rely on
    iou = mask_utils.iou([[5, 0, 10, 10], [0, 0, 10, 10], [10, 10, 1, 1]], [[0, 0, 10, 10]], [0])
    assert iou[:, 0] == pytest.approx([1 / 3, 1., 0.])


def test_best_scores_count_same_class_matches_only():
    # object 1: max(0.02, 0.04); object 2: no detection of its class; object 3: 0.3; the crowd
    # region is left out.
    assert best_object_scores(ANNS, DETS) == pytest.approx(np.array([0.04, 0., 0.3]))


def test_score_stats_of_files_and_the_tool(tmp_path, capsys):
    ann, det = tmp_path / 'ann.json', tmp_path / 'det.bbox.json'
    ann.write_text(json.dumps(dict(annotations=ANNS)))
    det.write_text(json.dumps(DETS))
    stats = score_stats(str(ann), str(det), score_thr=0.05)
    assert stats == dict(objects=3, median_best_score=pytest.approx(0.04),
                         share_above_thr=pytest.approx(1 / 3), share_found=pytest.approx(2 / 3),
                         max_score=pytest.approx(0.9))
    tool = runpy.run_path(os.path.join(REPO, 'tools', 'score_stats.py'))
    tool['main']([str(ann), str(det), '--score-thr', '0.01'])
    assert '| 3 | 0.040 | 66.7 % | 66.7 % | 0.900 |' in capsys.readouterr().out
    (tmp_path / 'bad.json').write_text(json.dumps(dict(annotations=[])))
    with pytest.raises(ValueError, match='bad.json is not a COCO detections list'):
        score_stats(str(ann), str(tmp_path / 'bad.json'))

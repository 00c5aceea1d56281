"""Counts of each stage against the hand derivation of the toy dataset (conftest.py)."""
import math

import pytest
import torch
from mmengine.config import Config

from mmdet_imbalance.analysis import get_imbalance_stats


def test_retinanet_anchor_counts_match_the_hand_derivation(toy, tmp_path):
    stats = get_imbalance_stats(toy.retina_config(), cache_dir=str(tmp_path / 'cache'))
    assert list(stats['stages']) == ['bbox_head']
    entry = stats['stages']['bbox_head']
    counts = entry['counts']
    assert stats['dataset']['num_images'] == 2  # image 3 has no box and is filtered
    assert (counts['images'], counts['fg'], counts['ignored'], counts['bg'], counts['outside']) \
        == (2, 2, 2, 12, 0)
    assert counts['fg_per_class'] == [1, 1]
    assert (counts['gt_boxes'], counts['gt_ignored_boxes']) == (2, 1)  # the crowd box is ignored
    assert entry['num_classes'] == 2
    assert entry['prior'] == pytest.approx(1 / 14)
    assert entry['bias'] == pytest.approx(-math.log(13))
    assert entry['bg_per_fg'] == pytest.approx(6.0)


def test_rpn_outside_anchors_and_fcos_points(toy):
    rpn = get_imbalance_stats(toy.faster_config(), cache_dir=None)['stages']
    assert list(rpn) == ['rpn_head']  # the RoI stage needs a checkpoint
    counts = rpn['rpn_head']['counts']
    assert (counts['fg'], counts['ignored'], counts['bg'], counts['outside']) == (2, 2, 0, 12)
    assert rpn['rpn_head']['num_classes'] == 1
    # Only foreground left among the non-ignored anchors: pi* = 1 has no finite bias.
    assert rpn['rpn_head']['prior'] == 1.0 and rpn['rpn_head']['bias'] is None

    fcos = get_imbalance_stats(toy.fcos_config(), cache_dir=None)['stages']['bbox_head']
    assert fcos['kind'] == 'points'
    assert (fcos['counts']['fg'], fcos['counts']['bg']) == (8, 24)
    assert fcos['counts']['fg_per_class'] == [4, 4]
    assert fcos['prior'] == pytest.approx(1 / 8)


def test_roi_candidates_with_a_checkpoint(toy, tmp_path):
    from mmdet.registry import MODELS
    toy.write_images()
    cfg_path = toy.faster_config()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    entry = get_imbalance_stats(cfg_path, stages=['roi_head'], checkpoint=ckpt,
                                cache_dir=None)['stages']['roi_head']
    counts = entry['counts']
    assert counts['images'] == 2
    # Each image's GT box is appended as a proposal (add_gt_as_proposals) and is foreground;
    # the 0.5/0.5 assigner has no ignore band.
    assert counts['fg'] >= 2 and counts['ignored'] == 0 and counts['bg'] > 0
    assert sum(counts['fg_per_class']) == counts['fg'] and min(counts['fg_per_class']) >= 1


def test_roi_positive_slots_filled(toy, tmp_path):
    # The stock R-CNN sampler keeps 512 x 0.25 = 128 positives; a toy image offers a handful of
    # foreground candidates, so none fills them. With 4 x 0.25 = 1 slot, every image's own GT box
    # (added as a proposal) fills it.
    from mmdet.registry import MODELS
    toy.write_images()
    cfg = Config.fromfile(toy.faster_config())
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), ckpt)
    for num, slots, filled in ((512, 128, 0), (4, 1, 2)):
        cfg.model.train_cfg.rcnn.sampler.num = num
        path = str(tmp_path / f'faster_{num}.py')
        cfg.dump(path)
        counts = get_imbalance_stats(path, stages=['roi_head'], checkpoint=ckpt,
                                     cache_dir=None)['stages']['roi_head']['counts']
        assert (counts['pos_slots'], counts['pos_slots_filled']) == (slots, filled)

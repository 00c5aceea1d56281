"""aLRP RetinaNet head: one ranking per minibatch with GIoU localisation errors and self-balance
whose period comes from the dataloader (docs/methods/alrp-loss.md §4)."""
import os
from types import SimpleNamespace

import pytest
import torch

from mmdet_imbalance.engine import ALRPSelfBalanceHook
from mmdet_imbalance.models.dense_heads import ALRPLossRetinaHead
from mmdet_imbalance.testing import build_detector, demo_batch, predict, train_step

MINI = 'configs/mini/retinanet_mini_alrp-loss.py'
COCO = 'configs/table1/retinanet_r50_fpn_1x_coco_alrp-loss.py'


@pytest.mark.parametrize('config', [MINI, COCO])
def test_trains_a_step_with_an_empty_image(config, repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, config))
    head = model.bbox_head
    assert isinstance(head, ALRPLossRetinaHead) and head.num_base_priors == 6
    assert head.cls_out_channels == head.num_classes and head.sb_weight.item() == 50
    head.set_self_balance_period(100)
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 3]))
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    assert 0 < losses['loss_cls'].item() <= 1 and losses['loss_bbox'].item() > 0
    assert head.retina_cls.weight.grad.abs().sum() > 0
    assert head.retina_reg.weight.grad.abs().sum() > 0
    results = predict(model, demo_batch(model, batch_size=1, image_size=128, training=False))
    scores = results[0].pred_instances.scores
    assert ((scores >= 0) & (scores <= 1)).all()


def test_self_balance_updates_at_the_end_of_each_period(repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, MINI))
    head = model.bbox_head
    hook_runner = SimpleNamespace(model=model, train_dataloader=[None, None])
    ALRPSelfBalanceHook().before_train(hook_runner)
    assert head.sb_period == 2
    records = []
    for seed in range(3):
        batch = demo_batch(model, batch_size=2, image_size=128, num_items=[2, 3], seed=seed)
        weight_before = head.sb_weight.item()
        losses = model.loss(batch['inputs'], batch['data_samples'])
        loc = losses['loss_bbox'].item() / weight_before
        records.append((losses['loss_cls'].item(), loc, weight_before))
    # Iterations 1-2 use SB = 50; the third uses (mean L_cls + mean L_loc) / mean L_loc of them.
    assert records[0][2] == records[1][2] == 50
    cls_sum = records[0][0] + records[1][0]
    loc_sum = records[0][1] + records[1][1]
    assert records[2][2] == pytest.approx((cls_sum + loc_sum) / loc_sum, rel=1e-5)
    # The state is in buffers, so it survives a checkpoint.
    state = model.state_dict()
    assert 'bbox_head.sb_weight' in state and 'bbox_head.sb_sums' in state


def test_batch_without_objects_is_zero_and_in_the_graph(repo_root):
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, MINI))
    model.bbox_head.set_self_balance_period(5)
    losses = train_step(model, demo_batch(model, batch_size=2, image_size=128, num_items=[0, 0]))
    assert all(v.item() == 0 and v.requires_grad for v in losses.values())
    assert model.bbox_head.sb_sums[2].item() == 0  # not counted as an iteration of the period


def test_bad_configuration(repo_root):
    from mmdet_imbalance.testing import load_config
    cfg = load_config(os.path.join(repo_root, MINI))
    head_cfg = cfg.model.bbox_head.copy()
    head_cfg.update(reg_decoded_bbox=False)
    from mmdet.registry import MODELS
    with pytest.raises(ValueError, match='reg_decoded_bbox'):
        MODELS.build(head_cfg)
    head_cfg = cfg.model.bbox_head.copy()
    head_cfg.update(sb_period=0)
    with pytest.raises(ValueError, match='period'):
        MODELS.build(head_cfg)


@pytest.mark.parametrize('world_size,period', [(1, 5), (2, 3), (4, 2)])
def test_self_balance_period_is_one_epoch_of_all_ranks(repo_root, world_size, period):
    """10 images at batch 2 per rank: one epoch is 5 iterations alone, 3 on 2 ranks (ceil 10 / 4),
    2 on 4. mmengine's InfiniteSampler (the mini rows') reports all 10 images on every rank."""
    from mmengine.dataset import InfiniteSampler
    from torch.utils.data import BatchSampler, DataLoader
    torch.manual_seed(0)
    model = build_detector(os.path.join(repo_root, MINI))
    images = list(range(10))
    loader = DataLoader(images, batch_sampler=BatchSampler(InfiniteSampler(images), 2, False))
    runner = SimpleNamespace(model=model, train_dataloader=loader, world_size=world_size)
    ALRPSelfBalanceHook().before_train(runner)
    assert model.bbox_head.sb_period == period

"""Every loss of the package and every Table 1 row's detector survives degenerate batches.

Parametrized over the row registry (mmdet_imbalance.table.rows), so a new row is covered the moment
it is registered. Each case must give a finite loss and finite gradients everywhere:

* an image with no ground truth, and a batch with no ground truth at all (no positive);
* a batch where every anchor / point is ignored (all assigners' thresholds out of reach);
* ground-truth boxes of zero width;
* classification logits of +100 and of -100 (the classifier layers' bias forced there);
* a training step under CPU autocast in bfloat16.
"""
import os
import re

import pytest
import torch

from mmdet_imbalance.models.cpu_autocast import use_cpu_box_ops
from mmdet_imbalance.models.losses import (ap_loss, dr_loss, guided_loss, objectness_bce_loss,
                                           positive_class_bce_loss)
from mmdet_imbalance.table.rows import rows_for
from mmdet_imbalance.testing import build_detector, demo_batch, load_config, train_step

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = [r for r in rows_for('mini') if os.path.isfile(os.path.join(REPO, r.configs['mini']))]
ROW_IDS = [r.key for r in ROWS]
CLASSIFIER = re.compile(r'(cls|obj|res)(\.\d+)?$')
IMAGE = 96


def test_registry_rows_are_all_covered():
    # Every mini row of the registry has its config, so none silently drops out of this suite.
    assert len(ROWS) == len(rows_for('mini')) >= 13


def _config(row):
    return load_config(os.path.join(REPO, row.configs['mini']))


def _model(cfg):
    torch.manual_seed(0)
    return build_detector(cfg)


def _make_assigners_ignore_everything(model) -> int:
    """Every MaxIoUAssigner of a built detector ignores everything: no IoU reaches the positive
    threshold, none falls below the negative one, and no low-quality match is allowed."""
    from mmdet.models.task_modules import MaxIoUAssigner
    assigners = []
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, MaxIoUAssigner) and value not in assigners:
                assigners.append(value)
    for assigner in assigners:
        assigner.pos_iou_thr, assigner.min_pos_iou, assigner.neg_iou_thr = 1.01, 1.01, -1.0
    return len(assigners)


def _classifier_layers(model):
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and CLASSIFIER.search(n)
              and not n.startswith(('backbone', 'neck'))]
    assert layers, f'{type(model).__name__}: no classifier layer found'
    return layers


@pytest.mark.parametrize('row', ROWS, ids=ROW_IDS)
@pytest.mark.parametrize('num_items', [[0, 2], [0, 0]], ids=['image-without-gt', 'no-gt-at-all'])
def test_images_without_ground_truth(row, num_items):
    model = _model(_config(row))
    losses = train_step(model, demo_batch(model, image_size=IMAGE, num_items=num_items))
    assert losses


@pytest.mark.parametrize('row', ROWS, ids=ROW_IDS)
def test_every_anchor_ignored(row):
    cfg = _config(row)
    model = _model(cfg)
    if not _make_assigners_ignore_everything(model):
        # FCOS assigns points by location and scale range, ATSS (and GFL) by an adaptive IoU
        # threshold per object: neither has an ignore band to fill.
        assert cfg.model.type in ('FCOS', 'ATSS', 'GFL'), \
            f'{row.key}: no MaxIoUAssigner and not FCOS / ATSS'
        return
    train_step(model, demo_batch(model, image_size=IMAGE, num_items=[2, 3]))


@pytest.mark.parametrize('row', ROWS, ids=ROW_IDS)
def test_zero_width_ground_truth(row):
    model = _model(_config(row))
    batch = demo_batch(model, image_size=IMAGE, num_items=[2, 1], zero_width=1)
    # The data preprocessor moves them aside; the other boxes still train.
    assert [len(s.gt_instances) for s in batch['data_samples']] == [1, 0]
    assert [len(s.ignored_instances) for s in batch['data_samples']] == [1, 1]
    train_step(model, batch)


@pytest.mark.parametrize('row', ROWS, ids=ROW_IDS)
@pytest.mark.parametrize('logit', [100.0, -100.0])
def test_extreme_logits(row, logit):
    model = _model(_config(row))
    with torch.no_grad():
        for _, layer in _classifier_layers(model):
            layer.weight.zero_()
            layer.bias.fill_(logit)
    train_step(model, demo_batch(model, image_size=IMAGE, num_items=[0, 3]))


@pytest.mark.parametrize('row', ROWS, ids=ROW_IDS)
def test_bfloat16_autocast(row):
    # What selecting CPU bfloat16 (CPUAutocastOptimWrapper) does to mmcv's nms and roi_align.
    use_cpu_box_ops()
    model = _model(_config(row))
    batch = demo_batch(model, image_size=IMAGE, num_items=[1, 3])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**batch, mode='loss')
    total = sum(v.float().sum() for k, vs in losses.items() if 'loss' in k
                for v in (vs if isinstance(vs, (list, tuple)) else [vs]))
    assert torch.isfinite(total)
    total.backward()
    for name, param in model.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name


# Loss functions, called directly: (name, call(logits, labels, label_weights) -> scalar).
NUM_CLASSES = 3


def _ap(logits, labels, weights):
    targets = torch.zeros_like(logits)
    fg = labels < NUM_CLASSES
    targets[fg.nonzero()[:, 0], labels[fg]] = 1
    targets[weights == 0] = -1
    return ap_loss(logits, targets)


def _dr(logits, labels, weights):
    return dr_loss(logits, labels, weights)


def _objectness(logits, labels, weights):
    return objectness_bce_loss(logits[:, 0], labels, weights, NUM_CLASSES)


def _positive_class(logits, labels, weights):
    return positive_class_bce_loss(logits, labels, weights, NUM_CLASSES)


def _guided(logits, labels, weights):
    valid = weights > 0
    loss_cls = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[valid], torch.zeros_like(logits[valid]), reduction='sum')
    # A stand-in regression loss that, like the real one, is 0 without valid positives.
    return guided_loss(loss_cls, ((labels < NUM_CLASSES) & valid).sum().float() * 0.1)


LOSSES = [('ap_loss', _ap), ('dr_loss', _dr), ('objectness_bce_loss', _objectness),
          ('positive_class_bce_loss', _positive_class), ('guided_loss', _guided)]


def _case(name, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, NUM_CLASSES, generator=gen)
    labels = torch.randint(0, NUM_CLASSES + 1, (64, ), generator=gen)
    labels[:4] = torch.arange(4) % NUM_CLASSES
    weights = torch.ones(64)
    if name == 'no-positive':
        labels[:] = NUM_CLASSES
    elif name == 'all-ignored':
        weights[:] = 0
    elif name == 'logits+100':
        logits = torch.full_like(logits, 100.0)
    elif name == 'logits-100':
        logits = torch.full_like(logits, -100.0)
    return logits.to(dtype).requires_grad_(), labels, weights


@pytest.mark.parametrize('loss_name,fn', LOSSES, ids=[n for n, _ in LOSSES])
@pytest.mark.parametrize('case', ['no-positive', 'all-ignored', 'logits+100', 'logits-100',
                                  'bfloat16'])
def test_losses_on_degenerate_inputs(loss_name, fn, case):
    dtype = torch.bfloat16 if case == 'bfloat16' else torch.float32
    logits, labels, weights = _case(case, dtype)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=case == 'bfloat16'):
        loss = fn(logits, labels, weights)
    assert loss.dim() == 0 and torch.isfinite(loss), (loss_name, case, loss)
    if loss.requires_grad:
        loss.float().backward()
        assert logits.grad is None or torch.isfinite(logits.grad).all(), (loss_name, case)
    if case in ('no-positive', 'all-ignored') and loss_name in ('guided_loss', 'ap_loss',
                                                                'positive_class_bce_loss'):
        # These losses are defined through the positives: nothing to rank or weight, so 0.
        assert float(loss) == 0.0, (loss_name, case)

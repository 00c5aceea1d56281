"""Small helpers shared by the test-suite: build any row's detector at toy size, run one step.

Kept in the package (like ``mmdet.testing``) so that tests in every folder, and users writing their
own rows, can call them without path tricks.
"""
import copy
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.config import Config, ConfigDict


def load_config(path: str) -> Config:
    """Load a row config (local file whose ``_base_`` may use ``mmdet::``) with every module
    registered and mmdet as the default scope, as a Runner would see it."""
    from mmdet.utils import register_all_modules

    from mmdet_imbalance.config_builder import load_config as load
    register_all_modules(init_default_scope=True)
    return load(path)


def shrink_model_cfg(model_cfg: Union[Config, ConfigDict, dict]) -> ConfigDict:
    """Return a copy of a COCO row's model config with a ResNet-18 backbone and no pretrained init.

    Only the backbone and the neck's input widths change, so every head, loss, sampler and
    assigner stays exactly as the row configures them. Mini configs are returned unchanged.
    """
    cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))
    backbone = cfg.get('backbone', {})
    if backbone.get('type') == 'ResNet' and backbone.get('depth', 0) >= 50:
        backbone.depth = 18
        backbone.init_cfg = None
        # A neck may be a chain (Libra R-CNN: FPN then BFP); the first one reads the backbone.
        first_neck = cfg.neck[0] if isinstance(cfg.neck, (list, tuple)) else cfg.neck
        first_neck.in_channels = [64, 128, 256, 512]
    return cfg


def build_detector(cfg_or_path, shrink: bool = True) -> torch.nn.Module:
    """Build a detector from a config (or path), shrunk for CPU tests, in train mode."""
    from mmdet.registry import MODELS
    cfg = load_config(cfg_or_path) if isinstance(cfg_or_path, str) else cfg_or_path
    model_cfg = shrink_model_cfg(cfg.model) if shrink else ConfigDict(cfg.model)
    model = MODELS.build(model_cfg)
    if isinstance(cfg, Config):
        # Sampling-Free heads with prior_prob='auto' take the prior from the training set's
        # statistics, which the runner hook resolves before init; do the same here.
        from mmdet_imbalance.engine import resolve_auto_priors
        resolve_auto_priors(model, cfg)
    model.init_weights()
    return model.train()


def demo_batch(model,
               batch_size: int = 2,
               image_size: int = 128,
               num_items: Optional[Sequence[int]] = None,
               num_classes: Optional[int] = None,
               training: bool = True,
               seed: int = 0,
               zero_width: int = 0) -> dict:
    """A preprocessed random batch for ``model``: noise images with random boxes and labels.

    ``num_items`` gives the number of ground-truth boxes per image (``[0, 3]``: the first image has
    none); by default 1 to 5. Labels are drawn from all ``num_classes`` foreground classes.
    ``zero_width`` turns that many boxes of each image into zero-width boxes (x2 = x1).
    """
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    rng = np.random.RandomState(seed)
    if num_classes is None:
        num_classes = find_num_classes(model)
    if num_items is None:
        num_items = [int(rng.randint(1, 6)) for _ in range(batch_size)]
    inputs, samples = [], []
    for idx, n in enumerate(num_items):
        image = rng.randint(0, 255, size=(3, image_size, image_size), dtype=np.uint8)
        xy = rng.uniform(0, image_size * 0.7, size=(n, 2))
        wh = rng.uniform(image_size * 0.1, image_size * 0.3, size=(n, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, image_size - 1)], axis=1)
        boxes[:zero_width, 2] = boxes[:zero_width, 0]
        sample = DetDataSample(metainfo=dict(
            img_id=idx, img_shape=(image_size, image_size), ori_shape=(image_size, image_size),
            scale_factor=(1., 1.), pad_shape=(image_size, image_size), flip=False))
        sample.gt_instances = InstanceData(
            bboxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.as_tensor(rng.randint(0, num_classes, size=n), dtype=torch.long))
        sample.ignored_instances = InstanceData(
            bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        inputs.append(torch.from_numpy(image))
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training)


def find_num_classes(model) -> int:
    """The number of object classes of a detector (the largest ``num_classes`` of its modules)."""
    found = [m.num_classes for m in model.modules()
             if isinstance(getattr(m, 'num_classes', None), int)]
    if not found:
        raise ValueError(f'{type(model).__name__} has no module with a num_classes attribute')
    return max(found)


def total_loss(losses: Dict[str, Union[torch.Tensor, list]]) -> torch.Tensor:
    """Sum the entries mmengine's ``parse_losses`` would sum (keys containing 'loss')."""
    total = 0.
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        total = total + sum(v.sum() for v in values)
    return total


def train_step(model, batch: dict, optimizer: Optional[torch.optim.Optimizer] = None) -> dict:
    """One forward/backward (and optimizer step if given); asserts finite losses and gradients."""
    model.train()
    losses = model(**batch, mode='loss')
    loss = total_loss(losses)
    assert torch.isfinite(loss), f'non-finite total loss: { {k: v for k, v in losses.items()} }'
    if optimizer is not None:
        optimizer.zero_grad()
    loss.backward()
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), f'non-finite gradient in {name}'
    if optimizer is not None:
        optimizer.step()
    return losses


def predict(model, batch: dict):
    """Inference on a preprocessed batch; returns the list of DetDataSample."""
    model.eval()
    with torch.no_grad():
        return model(**batch, mode='predict')


def fake_work_dir(work_dir: str, settings: dict, ap: float, seconds: float = 0.2,
                  iters: int = 10, memory: float = 500., environment: Optional[dict] = None,
                  config_name: str = 'retinanet_mini.py', loss: float = 1.0):
    """A finished run's work dir as ``tools/train.py`` leaves it, for the table and results-tree
    tests: the hook's record (AP ``ap``, one evaluation at the end), mmengine's text log with the
    evaluation lines and its ``vis_data/scalars.json`` (a line every 10 iterations, loss falling
    from ``loss``), and the merged-config copy. Returns the :class:`RunRecord`."""
    import json
    import os
    import os.path as osp

    from mmdet_imbalance.engine.run_record import RunRecord
    metrics = {'coco/bbox_mAP': round(ap / 100., 4), 'coco/bbox_mAP_50': 0.5}
    ap = 100. * metrics['coco/bbox_mAP']
    record = RunRecord(status='finished', config=config_name, settings=settings,
                       environment=environment or dict(cpu='test CPU', cpu_count=2,
                                                       torch_threads=2),
                       iter_times=[1.0, 1.0] + [seconds] * (iters - 2), iter=iters,
                       max_iters=iters, peak_memory_mb=memory, memory_source='cpu_peak_rss',
                       evaluations=[dict(iter=iters, epoch=0, metrics=metrics, ap=ap)],
                       final_metrics=dict(metrics), ap=ap, started=1.0, updated=2.0)
    record.write(str(work_dir))
    stamp = osp.join(str(work_dir), '20260101_000000')
    os.makedirs(osp.join(stamp, 'vis_data'), exist_ok=True)
    with open(osp.join(stamp, '20260101_000000.log'), 'w') as f:
        f.write(f'Iter(train) [{iters}/{iters}] loss: {loss}\n'
                f'bbox_mAP_copypaste: {metrics["coco/bbox_mAP"]:.3f} 0.500\n'
                f'Iter(val) [2/2]    coco/bbox_mAP: {metrics["coco/bbox_mAP"]:.4f}  '
                f'imbalance/ap: {ap:.4f}\n')
    with open(osp.join(stamp, 'vis_data', 'scalars.json'), 'w') as f:
        for step in range(1, iters + 1):
            f.write(json.dumps(dict(lr=1e-3, loss=loss / step, loss_cls=0.6 * loss / step,
                                    time=seconds, iter=step, step=step)) + '\n')
        f.write(json.dumps({'coco/bbox_mAP': metrics['coco/bbox_mAP'], 'imbalance/ap': ap,
                            'step': iters}) + '\n')
    with open(osp.join(str(work_dir), config_name), 'w') as f:
        f.write('model = dict()\n')
    # The config copy is written when the run starts, before its record's last update.
    os.utime(osp.join(str(work_dir), config_name), (1.0, 1.0))
    return record


def table_request(tmp_path, rows: str = 'retinanet', **kwargs):
    """A mini Table 1 request rooted at ``tmp_path`` (its work dir ``work/`` and results tree
    ``results/`` side by side), for the table tests; ``rows`` as ``--rows`` takes them."""
    from mmdet_imbalance.table.request import TableRequest
    from mmdet_imbalance.table.rows import select_rows
    options = dict(work_dir=str(tmp_path / 'work'), results=str(tmp_path / 'results'),
                   data_root='data/coco', warmup_iters=2, python='python')
    options.update(kwargs)
    return TableRequest(rows=select_rows(rows, options.get('benchmark', 'mini')), **options)

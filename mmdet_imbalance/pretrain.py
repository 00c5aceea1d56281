"""The mini backbone's pretraining: the ImageNet step of every COCO row, at the scale of the shapes.

Every COCO row of the review starts from an ImageNet-pretrained ResNet-50; nothing can be downloaded
here, so the mini rows start from a half-width ResNet-18 pretrained on the shapes family's pretext
task (:func:`mmdet_imbalance.datasets.shapes.build_pretext`: the three classes, the distractors and
background, at the objects' scales, from a random stream no detection canvas uses). It trains with
BatchNorm at a batch that suits BN, so the detectors can use the stock regime of the COCO rows
(``frozen_stages=1``, ``norm_eval=True``); docs/calibration.md, "The pretrained backbone".

The artifact is one file, named as OpenMMLab names its checkpoints, with the first 8 hex digits of
its sha256 before ``.pth`` (:func:`checkpoint_name`). Every machine loads the same bytes, and the
loader checks them (:class:`mmdet_imbalance.models.backbone_init.CheckedPretrainedInit`). Its
state dict holds ``backbone.*`` (mmdet's ``ResNet`` keys, loaded with ``prefix='backbone.'``) and
the pretext classifier ``head.fc.*``, like an mmpretrain classifier checkpoint.
"""
import functools
import hashlib
import os
import os.path as osp
import re
import time
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

#: The mini rows' backbone (configs/mini/_base_/recipe_mini.py) with BatchNorm. The detectors
#: build the same ``ResNet`` with ``out_indices=(0, 1, 2, 3)``, which adds no parameter.
BACKBONE = dict(type='ResNet', depth=18, base_channels=32, num_stages=4, out_indices=(3, ),
                norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch')
#: OpenMMLab's ``<sha256[:8]>.pth`` suffix.
HASH_SUFFIX = re.compile(r'-([0-9a-f]{8})\.pth$')


def sha256_of(path: str) -> str:
    """The file's sha256, hashed once per process for a given path, size and modification time:
    a run asks for its backbone's hash several times (settings identity, load, record)."""
    stat = os.stat(path)
    return _sha256_of(osp.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_name(stem: str, sha256: str) -> str:
    """``<stem>-<sha256[:8]>.pth``, as ``resnet18_8xb32_in1k_20210831-fbbb1da6.pth``."""
    return f'{stem}-{sha256[:8]}.pth'


def verify(path: str) -> str:
    """The file's sha256, after checking it against the 8 hex digits its name carries.

    Raises ValueError naming the file when the name has no hash or the bytes do not match it.
    """
    match = HASH_SUFFIX.search(osp.basename(path))
    if match is None:
        raise ValueError(f'{path}: a pretrained backbone must be named <name>-<sha256[:8]>.pth, so '
                         'that every machine can check it loads the same bytes')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: pretrained backbone not found')
    actual = sha256_of(path)
    if not actual.startswith(match.group(1)):
        raise ValueError(f'{path}: sha256 {actual[:8]}... does not match the {match.group(1)} in '
                         'its name; the file is damaged or was retrained without renaming. '
                         'Restore it with `git checkout -- checkpoints/`.')
    return actual


class PretextClassifier(nn.Module):
    """mmdet's ``ResNet`` (``BACKBONE``), global average pooling and one linear layer."""

    def __init__(self, num_classes: int):
        super().__init__()
        from mmdet.registry import MODELS
        import mmdet.models  # noqa: F401  (registers ResNet)
        self.backbone = MODELS.build(BACKBONE)
        self.head = nn.Module()
        self.head.fc = nn.Linear(self.backbone.feat_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.backbone(x)[-1]
        return self.head.fc(feat.mean(dim=(2, 3)))


def _batches(images: np.ndarray, labels: np.ndarray, batch: int, rng: np.random.RandomState,
             mean: torch.Tensor, std: torch.Tensor, shuffle: bool):
    order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
    for start in range(0, len(order) - (batch - 1 if shuffle else 0), batch):
        index = order[start:start + batch]
        # BGR uint8 -> RGB float, normalised as the detectors' data preprocessor does.
        x = torch.from_numpy(images[index][..., ::-1].copy()).permute(0, 3, 1, 2).float()
        yield (x - mean) / std, torch.from_numpy(labels[index])


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy in percent."""
    mean, std = _normalisation()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in _batches(images, labels, batch, None, mean, std, shuffle=False):
            correct += int((model(x).argmax(1) == y).sum())
    return 100.0 * correct / len(images)


def _normalisation():
    # mmdet's stock DetDataPreprocessor values, which every mini row keeps.
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return mean, std


def pretrain(out_dir: str, stem: str, num_train: int = 30000, num_val: int = 4000,
             epochs: int = 4, batch: int = 128, lr: float = 2e-3, weight_decay: float = 0.05,
             seed: int = 0, log=print) -> Dict[str, object]:
    """Train the pretext classifier and write ``<out_dir>/<stem>-<sha8>.pth``.

    AdamW with a one-epoch-fraction linear warm-up and a cosine decay; the val crops come from the
    pretext stream after the training crops. Returns the path, sha256 and accuracies.
    """
    from mmdet_imbalance.datasets import shapes
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    start = time.time()
    images, labels = shapes.build_pretext(num_train + num_val)
    train_x, train_y = images[:num_train], labels[:num_train]
    val_x, val_y = images[num_train:], labels[num_train:]
    log(f'pretext set: {num_train} train / {num_val} val crops of {images.shape[1]} px, classes '
        f'{shapes.PRETEXT_CLASSES}, built in {time.time() - start:.0f}s')
    model = PretextClassifier(len(shapes.PRETEXT_CLASSES))
    model.backbone.init_weights()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * (num_train // batch)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * i / steps)))
    mean, std = _normalisation()
    loss_fn = nn.CrossEntropyLoss()
    step = 0
    for epoch in range(epochs):
        model.train()
        running, seen, correct = 0.0, 0, 0
        for x, y in _batches(train_x, train_y, batch, rng, mean, std, shuffle=True):
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            running += float(loss.detach()) * len(y)
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
        log(f'epoch {epoch + 1}/{epochs}: loss {running / seen:.3f}, train accuracy '
            f'{100 * correct / seen:.1f} %, {time.time() - start:.0f}s')
    train_acc = 100.0 * correct / seen
    val_acc = evaluate(model, val_x, val_y)
    log(f'val accuracy {val_acc:.1f} % ({num_val} crops)')
    meta = dict(pretext='shapes', classes=list(shapes.PRETEXT_CLASSES), num_train=num_train,
                num_val=num_val, crop_size=int(images.shape[1]), pretext_seed=shapes.PRETEXT_SEED,
                epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay, seed=seed,
                train_accuracy=round(train_acc, 2), val_accuracy=round(val_acc, 2),
                backbone=BACKBONE, torch=str(torch.__version__),
                seconds=round(time.time() - start, 1))
    os.makedirs(out_dir, exist_ok=True)
    tmp = osp.join(out_dir, f'.{stem}.tmp')
    torch.save(dict(meta=meta, state_dict=model.state_dict()), tmp)
    digest = sha256_of(tmp)
    path = osp.join(out_dir, checkpoint_name(stem, digest))
    os.replace(tmp, path)
    return dict(path=path, sha256=digest, **meta)


def load_meta(path: str) -> Optional[dict]:
    """The ``meta`` a pretrained backbone was saved with (after :func:`verify`)."""
    verify(path)
    return torch.load(path, map_location='cpu', weights_only=True).get('meta')

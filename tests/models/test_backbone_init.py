"""The committed mini backbone: its hash is checked before loading, and it loads into every mini row
with no missing or unexpected key; the pretext set it was trained on is deterministic."""
import glob
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from mmdet_imbalance.datasets import shapes
from mmdet_imbalance.pretrain import checkpoint_name, sha256_of, verify
from mmdet_imbalance.testing import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MINI_ROWS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', 'mini', '*.py')))


def committed_backbone() -> str:
    cfg = load_config(osp.join(REPO, 'configs', 'mini', 'retinanet_mini.py'))
    return osp.join(REPO, cfg.mini_pretrained)


def test_committed_backbone_matches_its_name_and_size_limit():
    path = committed_backbone()
    digest = verify(path)
    assert osp.basename(path) == checkpoint_name(osp.basename(path).rsplit('-', 1)[0], digest)
    assert os.path.getsize(path) <= 12 * 1024 * 1024


def test_a_damaged_or_unnamed_backbone_is_refused_before_loading(tmp_path):
    path = committed_backbone()
    damaged = tmp_path / osp.basename(path)
    shutil.copyfile(path, damaged)
    with open(damaged, 'r+b') as f:
        f.seek(os.path.getsize(damaged) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match=f'{damaged.name}.*does not match'):
        verify(str(damaged))
    unnamed = tmp_path / 'backbone.pth'
    shutil.copyfile(path, unnamed)
    with pytest.raises(ValueError, match='sha256'):
        verify(str(unnamed))


def test_a_backbone_damaged_after_its_first_check_is_hashed_again(tmp_path):
    """The hash is kept per path, size and modification time, so an edit in place is seen."""
    path = committed_backbone()
    copy = tmp_path / osp.basename(path)
    shutil.copyfile(path, copy)
    assert verify(str(copy)) == sha256_of(path)
    stat = os.stat(copy)
    with open(copy, 'r+b') as f:
        f.seek(stat.st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ValueError, match='does not match'):
        verify(str(copy))


def test_damaged_backbone_stops_the_detector_init(tmp_path):
    from mmdet.registry import MODELS
    path = committed_backbone()
    damaged = tmp_path / osp.basename(path)
    with open(path, 'rb') as src:
        data = bytearray(src.read())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    cfg = load_config(osp.join(REPO, 'configs', 'mini', 'retinanet_mini.py'))
    cfg.model.backbone.init_cfg.checkpoint = str(damaged)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='does not match'):
        model.init_weights()


@pytest.mark.parametrize('config', MINI_ROWS, ids=osp.basename)
def test_backbone_loads_into_every_mini_row_with_no_missing_or_unexpected_key(config):
    from mmdet_imbalance.testing import build_detector
    cfg = load_config(config)
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'CheckedPretrained' and init_cfg.prefix == 'backbone.'
    state = torch.load(committed_backbone(), map_location='cpu', weights_only=True)['state_dict']
    pretrained = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    torch.manual_seed(0)
    model = build_detector(cfg)
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(pretrained)
    for key, value in pretrained.items():
        assert torch.equal(loaded[key], value), key
    # The stock regime of the COCO rows: frozen BN statistics, stem and first stage frozen.
    assert model.backbone.norm_eval and model.backbone.frozen_stages == 1


def test_backbone_sha256_is_part_of_the_run_settings():
    from mmdet_imbalance.engine.run_record import run_settings
    cfg = load_config(osp.join(REPO, 'configs', 'mini', 'retinanet_mini.py'))
    assert run_settings(cfg)['backbone_sha256'] == sha256_of(committed_backbone())


def test_pretext_set_is_deterministic_and_apart_from_the_detection_canvases():
    images, labels = shapes.build_pretext(40)
    again, labels_again = shapes.build_pretext(40)
    assert np.array_equal(images, again) and np.array_equal(labels, labels_again)
    other, _ = shapes.build_pretext(40, seed=shapes.PRETEXT_SEED + 1)
    assert not np.array_equal(images, other)
    # The detection splits draw from seeds 0 (train) and 1 (val).
    assert shapes.PRETEXT_SEED not in (0, 1)
    assert set(labels.tolist()) <= set(range(len(shapes.PRETEXT_CLASSES)))
    assert images.shape == (40, 72, 72, 3) and images.dtype == np.uint8


def test_pretext_crop_too_small_for_the_objects_is_refused():
    with pytest.raises(ValueError, match='does not fit'):
        shapes.build_pretext(1, size=64)

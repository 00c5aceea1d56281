"""``CheckedPretrained``: mmengine's ``Pretrained`` initializer that first checks the file's hash.

Seeds of a mini row accumulate across machines (``results/``), so every machine must start from
the same backbone bytes. The committed backbone carries the first 8 hex digits of its sha256 in its
name (OpenMMLab's convention, :func:`mmdet_imbalance.pretrain.checkpoint_name`); this initializer
refuses a file whose bytes do not match, naming it, before anything is loaded. A relative path is
looked up from the working directory, then from the folder that holds ``configs/`` (the checkout,
or an install's ``.mim/``), so ``mim train`` works from anywhere.
"""
import os.path as osp

from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import WEIGHT_INITIALIZERS


def resolve_checkpoint(path: str) -> str:
    if osp.isabs(path) or osp.isfile(path):
        return path
    from mmdet_imbalance.config_paths import checkout_root, data_root
    for root in (data_root(), checkout_root()):
        if root and osp.isfile(osp.join(root, path)):
            return osp.join(root, path)
    return path


@WEIGHT_INITIALIZERS.register_module(name='CheckedPretrained')
class CheckedPretrainedInit(PretrainedInit):
    """As ``dict(type='Pretrained', checkpoint=..., prefix=...)``, with the hash checked."""

    def __init__(self, checkpoint: str, prefix=None, map_location='cpu'):
        from mmdet_imbalance.pretrain import verify
        checkpoint = resolve_checkpoint(checkpoint)
        verify(checkpoint)
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)

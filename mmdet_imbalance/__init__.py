"""mmdet_imbalance: Table 1 of the foreground-background imbalance review on stock MMDetection 3.x.

Importing this package registers every module into mmdet's own registries
(``mmdet.registry.MODELS``, ``TASK_UTILS``, ``HOOKS``, ``DATASETS``, ``OPTIM_WRAPPERS``), which is
what a config's ``custom_imports=dict(imports=['mmdet_imbalance'])`` relies on. A child registry
with its own scope would be invisible to the ``_scope_='mmdet'`` dicts inherited from ``mmdet::``
bases.

Importing it also has three process-wide effects, all needed by every entry point (``mim train``
imports nothing else of ours), so they are made here, once:

* ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` unless already set: mmengine 0.10.7 loads its own
  checkpoints with a plain ``torch.load``, which on torch >= 2.6 defaults to ``weights_only=True``
  and rejects the pickled message hub, so ``--resume`` and ``load_from`` would fail. Only
  checkpoints you trust should be loaded, as with any pickle.
* mmcv's CPU ``nms`` and ``roi_align`` accept bfloat16 and channels_last inputs
  (:mod:`mmdet_imbalance.models.cpu_autocast`): without it a two-stage detector cannot train under
  CPU autocast. float32 contiguous inputs and CUDA tensors take mmcv's own path unchanged.
* mmengine resolves ``_base_ = 'mmdet_imbalance::<path under configs/>'`` in a user's config
  (:func:`mmdet_imbalance.config_paths.register_config_scope`): mmengine only knows OpenMMLab's
  own packages otherwise.
"""
import os

os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

from . import config_paths, datasets, engine, models  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'datasets', 'engine', 'models']

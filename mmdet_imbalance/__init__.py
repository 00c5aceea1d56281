"""mmdet_imbalance: Table 1 of the foreground-background imbalance review on stock MMDetection 3.x.

Importing this package registers every module into mmdet's own registries
(``mmdet.registry.MODELS``, ``TASK_UTILS``, ``HOOKS``, ``DATASETS``), which is what a config's
``custom_imports=dict(imports=['mmdet_imbalance'])`` relies on. A child registry with its own scope
would be invisible to the ``_scope_='mmdet'`` dicts inherited from ``mmdet::`` bases.
"""
import os

# mmengine 0.10.7 loads its own checkpoints with a plain ``torch.load``; torch >= 2.6 defaults to
# ``weights_only=True`` and rejects the pickled message hub, so ``--resume`` would fail.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

from . import datasets, engine, models  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'datasets', 'engine', 'models']

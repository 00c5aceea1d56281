"""mmdet_imbalance: Table 1 of the foreground-background imbalance review on stock MMDetection 3.x.

Importing this package registers every module into mmdet's own registries
(``mmdet.registry.MODELS``, ``TASK_UTILS``, ``HOOKS``, ``DATASETS``, ``OPTIM_WRAPPERS``,
``RUNNERS``), which is what a config's ``custom_imports=dict(imports=['mmdet_imbalance'])`` relies
on. A child registry with its own scope would be invisible to the ``_scope_='mmdet'`` dicts
inherited from ``mmdet::`` bases.

Importing it also has one process-wide effect beyond the registration, needed by every entry
point (``mim train`` imports nothing else of ours), so it is made here, once: mmengine resolves
``_base_ = 'mmdet_imbalance::<path under configs/>'`` in a user's config
(:func:`mmdet_imbalance.config_paths.register_config_scope`): mmengine only knows OpenMMLab's own
packages otherwise, and adding this package to its ``MODULE2PACKAGE`` table is the only hook it
offers; it has to happen before such a config is parsed.

What only some runs need happens where they ask for it, not on import: mmcv's ``nms`` and
``roi_align`` get their CPU versions when CPU bfloat16 is selected
(:class:`~mmdet_imbalance.engine.CPUAutocastOptimWrapper`, :mod:`.models.cpu_autocast`);
``CocoMetric`` leaves out the ground-truth boxes the loader drops as corrupt when a run starts
(``ImbalanceTableHook``, :mod:`.datasets.coco_metric`); and ``torch.load`` unpickles a checkpoint in full only while the tools load the one a command names or
resumes (:mod:`.engine.checkpoint_loading`).
"""
from . import config_paths, datasets, engine, models  # noqa: F401  (registration side effects)
from .version import __version__

__all__ = ['__version__', 'datasets', 'engine', 'models']

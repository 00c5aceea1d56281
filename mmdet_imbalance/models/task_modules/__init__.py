"""Registered task_modules of mmdet_imbalance (one method per file)."""
from .all_sampler import AllSampler  # noqa: F401

from . import backbone_init, dense_heads, losses, roi_heads, task_modules  # noqa: F401
from .data_preprocessor import BoxFilterDetDataPreprocessor  # noqa: F401

__all__ = ['BoxFilterDetDataPreprocessor', 'dense_heads', 'losses', 'roi_heads', 'task_modules']

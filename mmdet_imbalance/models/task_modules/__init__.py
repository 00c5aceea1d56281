"""Registered task_modules of mmdet_imbalance (one method per file)."""

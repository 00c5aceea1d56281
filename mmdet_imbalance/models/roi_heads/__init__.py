"""Registered roi_heads of mmdet_imbalance (one method per file)."""

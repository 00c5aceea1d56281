"""Registered dense_heads of mmdet_imbalance (one method per file)."""

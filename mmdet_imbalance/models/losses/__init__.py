"""Registered losses of mmdet_imbalance (one method per file)."""

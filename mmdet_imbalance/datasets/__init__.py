"""Embedded benchmark data (trees from deepforest's photos, generated shapes), its dataset class."""
from .embedded import EMBEDDED, EmbeddedCocoDataset, is_prepared, prepare

__all__ = ['EMBEDDED', 'EmbeddedCocoDataset', 'is_prepared', 'prepare']

"""Embedded benchmark data (trees from deepforest's photos, generated shapes), its dataset class."""
from .checked_coco import AnnotationFileError, CheckedCocoDataset
from .coco_metric import install as _leave_corrupt_boxes_out_of_coco_metric
from .embedded import EMBEDDED, EmbeddedCocoDataset, EmbeddedDataError, is_prepared, prepare

_leave_corrupt_boxes_out_of_coco_metric()

__all__ = ['AnnotationFileError', 'CheckedCocoDataset', 'EMBEDDED', 'EmbeddedCocoDataset',
           'EmbeddedDataError', 'is_prepared', 'prepare']

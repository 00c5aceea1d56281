"""Embedded benchmark data (trees from deepforest's photos, generated shapes), its dataset class."""
from .checked_coco import AnnotationFileError, CheckedCocoDataset
from .coco_metric import leave_out_corrupt_boxes, leave_out_corrupt_boxes_of
from .embedded import EMBEDDED, EmbeddedCocoDataset, EmbeddedDataError, is_prepared, prepare

__all__ = ['AnnotationFileError', 'CheckedCocoDataset', 'EMBEDDED', 'EmbeddedCocoDataset',
           'EmbeddedDataError', 'is_prepared', 'leave_out_corrupt_boxes',
           'leave_out_corrupt_boxes_of', 'prepare']

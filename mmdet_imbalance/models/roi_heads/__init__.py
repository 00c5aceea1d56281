"""Registered roi_heads of mmdet_imbalance (one method per file)."""
from .sampling_free_bbox_head import SamplingFreeBBoxHead  # noqa: F401
from .rank_sort_bbox_head import RankSortBBoxHead  # noqa: F401

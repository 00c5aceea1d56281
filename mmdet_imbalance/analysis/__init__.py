"""Foreground/background imbalance statistics of a config's training set
(:func:`get_imbalance_stats`, ``tools/imbalance_stats.py``)."""
from .cache import DEFAULT_CACHE_DIR
from .counting import (STAGES, available_stages, count_anchors, count_points,
                       count_roi_candidates)
from .dataset_pass import geometric_pipeline, train_dataset_cfg
from .formatting import doc_sections, format_doc_table, format_table, rewrite_doc, summary_line
from .imbalance_stats import get_imbalance_stats

__all__ = ['STAGES', 'DEFAULT_CACHE_DIR', 'available_stages', 'count_anchors', 'count_points',
           'count_roi_candidates', 'doc_sections', 'format_doc_table', 'format_table',
           'geometric_pipeline', 'get_imbalance_stats', 'rewrite_doc', 'summary_line',
           'train_dataset_cfg']

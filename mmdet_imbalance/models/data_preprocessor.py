"""``BoxFilterDetDataPreprocessor``: mmdet's ``DetDataPreprocessor`` that drops degenerate GT boxes.

A ground-truth box of zero width or height has no valid regression target: mmdet's
``DeltaXYWHBBoxCoder`` encodes log(w_gt / w_anchor) = -inf, and with ``min_pos_iou=0``
low-quality matching such a box (IoU 0 with every anchor) makes anchors positive for it. COCO's
loader already skips boxes under 1 px (``CocoDataset.parse_data_info``), but augmentations, other
datasets and hand-made batches can still produce them, and then every head, stock or ours, returns
an infinite box loss. Filtering them once, here, before any head sees them, protects every row
alike, whichever entry point feeds the model; the boxes are moved to ``ignored_instances`` rather
than lost, so a test can still see them.
"""
from typing import List

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample


def drop_degenerate_gt(data_samples: List[DetDataSample], min_size: float) -> int:
    """Move GT boxes narrower or lower than ``min_size`` pixels to ``ignored_instances``.

    Returns the number of boxes moved.
    """
    moved = 0
    for sample in data_samples:
        gt = sample.get('gt_instances')
        if gt is None or len(gt) == 0 or 'bboxes' not in gt:
            continue
        boxes = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
        keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
        keep &= torch.isfinite(boxes).all(dim=1)
        if bool(keep.all()):
            continue
        moved += int((~keep).sum())
        dropped = gt[~keep]
        sample.gt_instances = gt[keep]
        ignored = sample.get('ignored_instances')
        if ignored is not None and len(ignored) > 0 and 'bboxes' in ignored:
            dropped = dropped.cat([ignored, dropped])
        sample.ignored_instances = dropped
    return moved


@MODELS.register_module()
class BoxFilterDetDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` plus the removal of GT boxes under ``min_gt_size`` pixels.

    Args:
        min_gt_size (float): smallest width and height, in input pixels, of a kept GT box. 1 px
            matches the threshold of mmdet's COCO loader. Others as ``DetDataPreprocessor``.
    """

    def __init__(self, *args, min_gt_size: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if min_gt_size < 0:
            raise ValueError(f'min_gt_size must be >= 0, got {min_gt_size}')
        self.min_gt_size = min_gt_size

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        if training and data.get('data_samples') is not None:
            drop_degenerate_gt(data['data_samples'], self.min_gt_size)
        return data

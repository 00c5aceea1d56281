"""RetinaNet head trained with DR Loss (Qian et al., CVPR 2020); docs/methods/dr-loss.md §4.

mmdet's ``AnchorHead.loss_by_feat`` calls the classification loss once per FPN level with a global
``avg_factor``; that equals one loss over all anchors only for losses that are sums over entries.
DR Loss ranks two softmax-weighted expectations, so it does not decompose (dr-loss.md §4).
This head overrides only ``loss_by_feat``: it concatenates all levels of each image and calls the
loss once per image.

Decisions:

* **Per image, then the mean over the images of the batch** (§4). The paper ranks "pairs of
  candidates within the image"; the released ``SigmoidDRLoss`` returns one scalar for whatever rows
  it is given, and its modified RetinaNet ``loss.py`` is not released. A public mmdet-1.x port
  computes the loss per image and divides by the batch size, which is what this head does.
* **No division by the number of positives.** The softmax expectations are already normalised
  (they lie in [0, 1] whatever the number of anchors), and tau=4 sets the scale; dividing by
  ``num_pos`` as focal loss does would shrink the loss of crowded images and blow it up for images
  with one object.
* **An image whose anchors are all ignored** adds a zero (``dr_loss``'s rule) and still counts in
  the mean. That cannot happen with the row's assigner (no ignore band, every anchor valid); it
  only keeps the loss finite.
* **Regression is mmdet's**: ``loss_bbox`` over all levels at once with the usual ``avg_factor``
  (the number of positives), which equals the stock per-level sum because L1/smooth-L1 decompose.
  The reference's maskrcnn-benchmark smooth-L1 (beta 0.11, divided by 4 N_pos) is not reproduced.
"""
from typing import List

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor


def _levels_to_images(per_level: List[Tensor], last_dim: int) -> Tensor:
    """(N, A_l*K, H, W) maps of every level -> one (N, sum_l A_l*H*W, K) tensor.

    Rows follow mmdet's anchor order (level, then y, x, then base anchor), the order of the
    targets returned by ``get_targets``.
    """
    return torch.cat(
        [level.permute(0, 2, 3, 1).reshape(level.size(0), -1, last_dim) for level in per_level],
        dim=1)


@MODELS.register_module()
class DRLossRetinaHead(RetinaHead):
    """``RetinaHead`` whose classification loss is computed per image over all FPN levels.

    Meant for ``loss_cls=dict(type='DRLoss', use_sigmoid=True, ...)``: ``loss_cls`` is called as
    ``loss_cls(cls_score (M, C), labels (M,), label_weights (M,))`` once per image and the results
    are averaged over the images. Everything else (anchors, assigner, bbox loss, inference) is
    ``RetinaHead``'s. See the module docstring for the reduction choices.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_sigmoid_cls:
            raise ValueError('DRLossRetinaHead needs sigmoid class scores: set '
                             "loss_cls=dict(type='DRLoss', use_sigmoid=True, ...)")

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """Per-image classification loss over all levels, averaged over images; mmdet bbox loss.

        Args and the anchor/target computation are those of ``AnchorHead.loss_by_feat``.

        Returns:
            dict: ``loss_cls`` (scalar) and ``loss_bbox`` (scalar).
        """
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=cls_scores[0].device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         avg_factor) = self.get_targets(
             anchor_list,
             valid_flag_list,
             batch_gt_instances,
             batch_img_metas,
             batch_gt_instances_ignore=batch_gt_instances_ignore)

        # get_targets returns per-level (N, A_l, ...) tensors; concatenate the levels per image.
        labels = torch.cat(labels_list, dim=1)
        label_weights = torch.cat(label_weights_list, dim=1)
        cls_score = _levels_to_images(cls_scores, self.cls_out_channels)
        num_imgs = cls_score.size(0)
        loss_cls = sum(
            self.loss_cls(cls_score[i], labels[i], label_weights[i])
            for i in range(num_imgs)) / num_imgs

        bbox_pred = _levels_to_images(bbox_preds, self.bbox_coder.encode_size)
        bbox_targets = torch.cat(bbox_targets_list, dim=1)
        bbox_weights = torch.cat(bbox_weights_list, dim=1)
        if self.reg_decoded_bbox:
            # cat_boxes over one image's levels gives the same row order as _levels_to_images.
            anchors = torch.stack(
                [get_box_tensor(cat_boxes(per_image)) for per_image in anchor_list])
            bbox_pred = get_box_tensor(
                self.bbox_coder.decode(
                    anchors.reshape(-1, anchors.size(-1)),
                    bbox_pred.reshape(-1, bbox_pred.size(-1))))
        loss_bbox = self.loss_bbox(
            bbox_pred.reshape(-1, bbox_pred.size(-1)),
            bbox_targets.reshape(-1, bbox_targets.size(-1)),
            bbox_weights.reshape(-1, bbox_weights.size(-1)),
            avg_factor=avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)

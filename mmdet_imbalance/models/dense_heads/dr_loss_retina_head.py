"""RetinaNet head trained with DR Loss (Qian et al., CVPR 2020); docs/methods/dr-loss.md §4.

mmdet's ``AnchorHead.loss_by_feat`` calls the classification loss once per FPN level with a global
``avg_factor``; that equals one loss over all anchors only for losses that are sums over entries.
DR Loss ranks two softmax-weighted expectations, so it does not decompose (dr-loss.md §4).
This head replaces only ``loss_by_feat`` (through :class:`~.flat_targets.FlatAnchorLossMixin`): it
concatenates all levels of each image and calls the loss once per image.

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
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.utils import ConfigType

from .flat_targets import FlatAnchorLossMixin, FlatTargets, flat_bbox_loss


@MODELS.register_module()
class DRLossRetinaHead(FlatAnchorLossMixin, RetinaHead):
    """``RetinaHead`` whose classification loss is computed per image over all FPN levels.

    ``loss_cls`` is called as ``loss_cls(cls_score (M, C), labels (M,), label_weights (M,))`` once
    per image and the results are averaged over the images. Everything else (anchors, assigner,
    bbox loss, inference) is ``RetinaHead``'s. See the module docstring for the reduction choices.

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the input feature maps.
        loss_cls (dict): a sigmoid ranking loss called once per image; ``DRLoss`` with the
            paper's defaults by default.
        **kwargs: the rest of ``RetinaHead``'s arguments (anchors, box coder, ``loss_bbox``,
            ``init_cfg``, ...), passed on unchanged.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss_cls: ConfigType = dict(type='DRLoss', use_sigmoid=True),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, loss_cls=loss_cls, **kwargs)
        if not self.use_sigmoid_cls:
            raise ValueError('DRLossRetinaHead needs sigmoid class scores: set '
                             "loss_cls=dict(type='DRLoss', use_sigmoid=True, ...)")

    def loss_by_flat(self, flat: FlatTargets) -> dict:
        """Per-image classification loss over all levels, averaged over images (§4); mmdet's box
        loss over all levels at once.

        Returns:
            dict: ``loss_cls`` (scalar) and ``loss_bbox`` (scalar).
        """
        num_imgs = flat.num_imgs
        images = zip(flat.cls_score.view(num_imgs, -1, self.cls_out_channels),
                     flat.labels.view(num_imgs, -1), flat.label_weights.view(num_imgs, -1))
        loss_cls = sum(self.loss_cls(score, labels, weights)
                       for score, labels, weights in images) / num_imgs
        return dict(loss_cls=loss_cls,
                    loss_bbox=flat_bbox_loss(self, flat, flat.avg_factor))

"""The counting: assign each stage's examples with the config's own assigners and count them.

Each example is foreground (``fg``: assigned to an object), background (``bg``), ignored (the
assigner's IoU band or ignore regions) or, for anchors, outside (valid anchors that cross the image
border further than ``allowed_border``, which mmdet's anchor heads drop before assigning). Each
level's feature map is ``ceil(padded / stride)`` (what ResNet/FPN produce).

Counts are over the whole pass (all images), as the reference's ``AdaptiveInitializer`` does;
``allow_low_quality_matches`` and every other assigner setting come from the config. Unlike that
initializer, the RPN counts respect ``allowed_border`` (crossing anchors are "outside", not
background), because the loss never sees them; the reported ``outside`` count lets both variants
be recomputed. From the counts, ``pi* = N_fg / (C (N_fg + N_bg))`` and the bias
``-log((1 - pi*) / pi*)`` (docs/methods/sampling-free.md §2).
"""
import copy
import inspect
import math
from typing import Iterable, List, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData

from ..models.losses.guided_loss import optimal_prior, prior_to_bias
from .dataset_pass import build_dataset

STAGES = ('bbox_head', 'rpn_head', 'roi_head')


def _new_counts(num_classes: int) -> dict:
    return dict(images=0, fg=0, bg=0, ignored=0, outside=0, gt_boxes=0, gt_ignored_boxes=0,
                fg_per_class=[0] * num_classes)


def _add_fg_per_class(counts: dict, gt_inds: torch.Tensor, gt_labels: torch.Tensor) -> None:
    pos = gt_inds > 0
    if pos.any():
        per_class = torch.bincount(gt_labels[gt_inds[pos] - 1],
                                   minlength=len(counts['fg_per_class']))
        for c, n in enumerate(per_class.tolist()[:len(counts['fg_per_class'])]):
            counts['fg_per_class'][c] += n


def _assign(assigner, priors: torch.Tensor, num_level_priors: List[int], gt: InstanceData,
            ignored: InstanceData):
    kwargs = dict(gt_instances_ignore=ignored if len(ignored) else None)
    if 'num_level_priors' in inspect.signature(assigner.assign).parameters:
        kwargs['num_level_priors'] = num_level_priors
    return assigner.assign(InstanceData(priors=priors), gt_instances=gt, **kwargs)


def _featmap_sizes(strides, padded) -> List[tuple]:
    sizes = []
    for stride in strides:
        stride_w, stride_h = (stride, stride) if isinstance(stride, (int, float)) else stride
        sizes.append((int(math.ceil(padded[0] / stride_h)), int(math.ceil(padded[1] / stride_w))))
    return sizes


def count_anchors(head, images: Iterable, device: str = 'cpu') -> dict:
    """fg / bg / ignored / outside anchor counts of an ``AnchorHead`` over ``images``.

    Args:
        head: a built mmdet anchor head with ``train_cfg`` (its ``prior_generator``, ``assigner``
            and ``train_cfg['allowed_border']`` are used; its sampler is not: these are the
            assigned counts before any sampling).
        images: ``(img_shape, padded_shape, gt_instances, ignored_instances)`` tuples.
        device (str): where anchors are generated and assigned ('cuda' speeds up COCO).
    """
    from mmdet.models.task_modules.prior_generators import anchor_inside_flags
    counts = _new_counts(head.num_classes)
    generator = head.prior_generator
    allowed_border = head.train_cfg.get('allowed_border', -1)
    # Anchors depend only on the image and padded shapes; consecutive images often share them.
    # Only the last shape is kept: COCO-size anchor sets are megabytes each.
    last_key, last = None, None
    for img_shape, padded, gt, ignored in images:
        if (img_shape, padded) != last_key:
            sizes = _featmap_sizes(generator.strides, padded)
            levels = generator.grid_priors(sizes, device=device)
            flags = generator.valid_flags(sizes, padded, device=device)
            anchors, valid = torch.cat(levels), torch.cat(flags)
            inside = anchor_inside_flags(anchors, valid, img_shape, allowed_border)
            level_ids = torch.cat([torch.full((len(a), ), i, device=device)
                                   for i, a in enumerate(levels)])
            num_level_inside = torch.bincount(level_ids[inside], minlength=len(levels)).tolist()
            last_key = (img_shape, padded)
            last = (anchors[inside], num_level_inside, int(valid.sum() - inside.sum()))
        priors, num_level_inside, outside = last
        counts['images'] += 1
        counts['gt_boxes'] += len(gt)
        counts['gt_ignored_boxes'] += len(ignored)
        counts['outside'] += outside
        if len(priors) == 0:
            continue
        gt, ignored = gt.to(device), ignored.to(device)
        gt_inds = _assign(head.assigner, priors, num_level_inside, gt, ignored).gt_inds
        counts['fg'] += int((gt_inds > 0).sum())
        counts['bg'] += int((gt_inds == 0).sum())
        counts['ignored'] += int((gt_inds < 0).sum())
        _add_fg_per_class(counts, gt_inds, gt.labels)
    return counts


def count_points(head, images: Iterable, device: str = 'cpu') -> dict:
    """fg / bg point counts of an ``FCOSHead`` over ``images`` (FCOS ignores nothing)."""
    counts = _new_counts(head.num_classes)
    for img_shape, padded, gt, ignored in images:
        sizes = _featmap_sizes(head.prior_generator.strides, padded)
        points = head.prior_generator.grid_priors(sizes, device=device)
        labels = torch.cat(head.get_targets(points, [gt.to(device)])[0])
        counts['images'] += 1
        counts['gt_boxes'] += len(gt)
        counts['gt_ignored_boxes'] += len(ignored)
        fg = labels < head.num_classes
        counts['fg'] += int(fg.sum())
        counts['bg'] += int((~fg).sum())
        per_class = torch.bincount(labels[fg], minlength=head.num_classes).tolist()
        for c, n in enumerate(per_class):
            counts['fg_per_class'][c] += n
    return counts


def count_roi_candidates(model, cfg: Config, dataset, num_images: Optional[int]) -> dict:
    """fg / bg / ignored RoI candidates (training proposals of the RPN plus the GT boxes).

    Runs the backbone and RPN of ``model`` (a trained two-stage detector in eval mode) on the
    training images through the full train pipeline, makes proposals with
    ``train_cfg.rpn_proposal`` and assigns them with the R-CNN assigner, before any sampling.
    Also counts the images whose foreground candidates fill the sampler's positive slots
    (``num * pos_fraction``): there a sampler chooses among positives too, which a
    foreground-background sampler rarely does on COCO (docs/methods/ohem.md).
    """
    from mmengine.dataset import pseudo_collate
    rcnn_cfg = cfg.model.train_cfg.rcnn
    sampler = rcnn_cfg.get('sampler') or {}
    add_gt = sampler.get('add_gt_as_proposals', True)
    counts = _new_counts(model.roi_head.bbox_head.num_classes)
    pos_slots = sampler.get('num', 0) * sampler.get('pos_fraction', 0) or None
    counts.update(pos_slots=pos_slots, pos_slots_filled=0)
    total = min(len(dataset), num_images) if num_images else len(dataset)
    for idx in range(total):
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), False)
        samples = data['data_samples']
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
            proposals = model.rpn_head.predict_by_feat(
                *model.rpn_head(feats), batch_img_metas=[s.metainfo for s in samples],
                cfg=cfg.model.train_cfg.rpn_proposal, rescale=False)
        for proposal, sample in zip(proposals, samples):
            gt = sample.gt_instances
            ignored = sample.get('ignored_instances', InstanceData(bboxes=torch.zeros(0, 4)))
            gt_inds = _assign(model.roi_head.bbox_assigner, proposal.bboxes,
                              [len(proposal)], gt, ignored).gt_inds
            counts['images'] += 1
            counts['gt_boxes'] += len(gt)
            counts['gt_ignored_boxes'] += len(ignored)
            fg = int((gt_inds > 0).sum()) + (len(gt) if add_gt else 0)
            counts['fg'] += fg
            counts['pos_slots_filled'] += int(pos_slots is not None and fg >= pos_slots)
            counts['bg'] += int((gt_inds == 0).sum())
            counts['ignored'] += int((gt_inds < 0).sum())
            _add_fg_per_class(counts, gt_inds, gt.labels)
            if add_gt:
                for label in gt.labels.tolist():
                    counts['fg_per_class'][label] += 1
    return counts


def count_roi_stage(cfg: Config, dataset_cfg: ConfigDict, checkpoint: str,
                    num_images: Optional[int], device: str) -> dict:
    """:func:`count_roi_candidates` of ``cfg``'s detector loaded from ``checkpoint``."""
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    model_cfg = copy.deepcopy(cfg.model)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.to(device).eval()
    dataset = build_dataset(dataset_cfg, pipeline=None)
    return count_roi_candidates(model, cfg, dataset, num_images)


def _head_cfg(cfg: Config, stage: str) -> Optional[ConfigDict]:
    model = cfg.model
    if stage not in model or model[stage] is None:
        return None
    head = copy.deepcopy(model[stage])
    train_cfg, test_cfg = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    if stage == 'rpn_head':
        head.update(train_cfg=train_cfg.get('rpn'), test_cfg=test_cfg.get('rpn'))
        head.setdefault('num_classes', 1)
    else:
        head.update(train_cfg=train_cfg, test_cfg=test_cfg)
    return head


def available_stages(cfg: Config, checkpoint: Optional[str] = None) -> List[str]:
    """The stages of ``cfg``'s detector this module can count (``roi_head`` needs a checkpoint)."""
    found = [s for s in ('bbox_head', 'rpn_head') if cfg.model.get(s) is not None]
    if checkpoint and cfg.model.get('roi_head') is not None:
        found.append('roi_head')
    return found


def build_head(cfg: Config, stage: str):
    """The built head of ``stage`` and what it is counted over: ``'anchors'`` or ``'points'``."""
    from mmdet.models.dense_heads import AnchorHead, FCOSHead
    from mmdet.registry import MODELS
    head = MODELS.build(_head_cfg(cfg, stage))
    if isinstance(head, AnchorHead):
        if not head.train_cfg:
            raise ValueError(f'model.{stage} has no train_cfg (assigner): cannot count anchors')
        return head, 'anchors'
    if isinstance(head, FCOSHead):
        return head, 'points'
    raise ValueError(f'model.{stage} is a {type(head).__name__}: only anchor heads and FCOS '
                     'heads can be counted without a network')


def stage_label(stage: str, head_type: str, kind: str) -> str:
    if stage == 'roi_head':
        return 'RoI candidates (RPN proposals + GT)'
    return f'{head_type} {kind}'


def derived_stats(counts: dict, num_classes: int) -> dict:
    """``pi*``, its bias, ``bg / fg`` and the per-image means of ``counts``."""
    fg, bg = counts['fg'], counts['bg']
    images = max(counts['images'], 1)
    prior = optimal_prior(fg, bg, num_classes) if fg > 0 else None
    bias = prior_to_bias(prior) if prior is not None and prior < 1 else None
    return dict(prior=prior, bias=bias, bg_per_fg=(bg / fg) if fg else None,
                fg_per_image=fg / images, bg_per_image=bg / images,
                ignored_per_image=counts['ignored'] / images,
                outside_per_image=counts['outside'] / images)

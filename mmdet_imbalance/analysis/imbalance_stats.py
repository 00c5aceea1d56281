"""Foreground/background imbalance statistics of a config's training set.

One pass over the training set of a config, with the config's own anchor generators, point
generators and assigners, counts the examples each stage of the detector learns from:

* ``bbox_head``: the anchors of an anchor head (RetinaNet, ...) or the points of an FCOS head;
* ``rpn_head``: the RPN anchors;
* ``roi_head``: the RoI candidates of the R-CNN stage (the RPN's training proposals plus the GT
  boxes), only when a checkpoint is given, because proposals need a trained network.

:func:`get_imbalance_stats` ties the parts together: :mod:`.dataset_pass` (the training images as
boxes and shapes, no image decoded), :mod:`.counting` (fg / bg / ignored / outside, ``pi*`` and
the bias that ``prior_prob='auto'`` of the Sampling-Free heads uses, docs/methods/sampling-free.md
§2), :mod:`.cache` (one JSON file per stage in ``work_dirs/imbalance_stats/``) and
:mod:`.formatting` (the tables).
"""
import os.path as osp
from typing import Optional, Sequence, Union

from mmengine.config import Config

from .cache import (CACHE_VERSION, DEFAULT_CACHE_DIR, cache_path, dataset_info, read_entry,
                    stage_key, stage_key_parts, write_entry)
from .counting import (STAGES, available_stages, build_head, count_anchors, count_points,
                       count_roi_stage, derived_stats, stage_label)
from .dataset_pass import (AnnotationPass, build_dataset, geometric_pipeline, load_cfg, seeded,
                           train_dataset_cfg, with_progress)
from .formatting import summary_line


def get_imbalance_stats(cfg: Union[str, Config],
                        stages: Optional[Sequence[str]] = None,
                        checkpoint: Optional[str] = None,
                        cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                        num_images: Optional[int] = None,
                        seed: int = 0,
                        use_cache: bool = True,
                        progress: bool = False,
                        device: str = 'cpu') -> dict:
    """Foreground/background statistics of ``cfg``'s training set, per stage (module docstring).

    Args:
        cfg (str | Config): a config (path) with ``model`` and ``train_dataloader``.
        stages (Sequence[str], optional): subset of ``('bbox_head', 'rpn_head', 'roi_head')``;
            default: every stage the config has (``roi_head`` only with ``checkpoint``).
        checkpoint (str, optional): weights of a two-stage detector, for the ``roi_head`` stage.
        cache_dir (str, optional): where the JSON files live; None disables caching.
        num_images (int, optional): count only the first ``num_images`` training images.
        seed (int): seed of the random train transforms.
        use_cache (bool): read existing cache files (they are written either way).
        progress (bool): show a progress bar.
        device (str): device for the anchor/point assignment and the ``roi_head`` network.

    Returns:
        dict: ``{'dataset': {...}, 'stages': {stage: {...}}}``; a stage holds ``counts``
        (``images``, ``fg``, ``bg``, ``ignored``, ``outside``, ``gt_boxes``, ``gt_ignored_boxes``,
        ``fg_per_class``), ``num_classes``, ``prior`` (``pi*``, None without foreground),
        ``bias``, ``bg_per_fg``, per-image means, ``label``, ``head``, ``key`` and ``cache_file``.
    """
    cfg = load_cfg(cfg)
    from mmengine.registry import DefaultScope
    # Wrapped transforms (RandomResize's inner Resize) and datasets are built by name; mmdet's
    # versions must win over mmcv's, as they do in a runner with default_scope='mmdet'.
    # The whole pass, head building included (conv init draws random numbers), runs on its own
    # seed, so statistics computed inside a training run leave its random stream untouched.
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')), seeded(seed):
        return _get_imbalance_stats(cfg, stages, checkpoint, cache_dir, num_images, seed,
                                    use_cache, progress, device)


def _check_arguments(cfg: Config, stages, checkpoint, num_images) -> list:
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int)
                                   or num_images < 1):
        raise ValueError(f'num_images must be a positive int or None, got {num_images!r}')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    wanted = list(stages) if stages is not None else available_stages(cfg, checkpoint)
    for stage in wanted:
        if stage not in STAGES:
            raise ValueError(f'unknown stage {stage!r}; choose from {STAGES}')
        if cfg.model.get(stage) is None:
            raise ValueError(f'stage {stage!r} is not in this config\'s model '
                             f'(it has {available_stages(cfg, checkpoint) or "none"})')
        if stage == 'roi_head' and not checkpoint:
            raise ValueError("stage 'roi_head' counts RPN proposals and needs --checkpoint")
    return wanted


def _get_imbalance_stats(cfg: Config, stages, checkpoint, cache_dir, num_images, seed, use_cache,
                         progress, device) -> dict:
    wanted = _check_arguments(cfg, stages, checkpoint, num_images)
    dataset_cfg = train_dataset_cfg(cfg)
    dataset = build_dataset(dataset_cfg, pipeline=[])
    info = dataset_info(dataset, dataset_cfg, num_images)
    pipeline = geometric_pipeline(dataset_cfg)
    from mmdet.registry import MODELS
    preprocessor = MODELS.build(cfg.model.get('data_preprocessor')
                                or dict(type='DetDataPreprocessor'))
    pad = int(getattr(preprocessor, 'pad_size_divisor', 1) or 1)
    min_gt_size = getattr(preprocessor, 'min_gt_size', None)

    result = dict(dataset=info, stages={})
    for stage in wanted:
        if stage == 'roi_head':
            head, kind, head_type = None, 'candidates', cfg.model.roi_head.bbox_head.get('type')
        else:
            head, kind = build_head(cfg, stage)
            head_type = type(head).__name__
        parts = stage_key_parts(cfg, stage, head, kind, pipeline, pad, seed, num_images,
                                checkpoint, min_gt_size)
        key = stage_key(info, parts)
        path = cache_path(cache_dir, info, stage, key)
        cached = read_entry(path, key) if use_cache else None
        if cached is not None:
            # Configs that differ only in the head class (a baseline and its Sampling-Free
            # row) share the entry; report it under the head that asked.
            cached.update(cache_file=path, head=head_type,
                          label=stage_label(stage, head_type, kind))
            result['stages'][stage] = cached
            continue
        if stage == 'roi_head':
            counts = count_roi_stage(cfg, dataset_cfg, checkpoint, num_images, device)
        else:
            images = AnnotationPass(dataset, pipeline, pad, num_images, min_gt_size)
            iterator = with_progress(images, images.num_images) if progress else images
            head.to(device)
            counts = (count_anchors if kind == 'anchors' else count_points)(
                head, iterator, device=device)
            counts['skipped_images'] = images.skipped
        num_classes = parts['num_classes']
        entry = dict(version=CACHE_VERSION, key=key, stage=stage, kind=kind, head=head_type,
                     label=stage_label(stage, head_type, kind), num_classes=num_classes,
                     dataset=info, config=parts, counts=counts,
                     **derived_stats(counts, num_classes))
        if path:
            write_entry(path, entry)
            entry['cache_file'] = path
        result['stages'][stage] = entry
    return result


# SamplingFreePriorHook imports these from this module.
__all__ = ['DEFAULT_CACHE_DIR', 'STAGES', 'get_imbalance_stats', 'summary_line']

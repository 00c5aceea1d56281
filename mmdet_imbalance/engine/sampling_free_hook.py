"""``SamplingFreePriorHook``: resolves ``prior_prob='auto'`` of the Sampling-Free heads.

A head cannot see its training set, so the data-driven prior ``pi* = N_fg / (C (N_fg + N_bg))``
(docs/methods/sampling-free.md §2) comes in through the runner: in ``before_run`` the hook finds
the detector's heads that still wait for statistics (``bbox_head`` / ``rpn_head`` with
``prior_prob='auto'``, or a RetinaNet head with ``score_thr_mode='class_prior'``), computes or
loads the statistics of the config's ``train_dataloader.dataset`` with
:func:`~mmdet_imbalance.analysis.get_imbalance_stats` (the cache that
``tools/imbalance_stats.py`` writes; the pass runs on first use), and hands each head its stage.
mmengine calls ``before_run`` before it initialises the weights (``Runner.train``) and before it
loads a checkpoint (``Runner.val`` / ``Runner.test``), so the bias is initialised from the
resolved value and the test threshold follows it.

In a distributed run rank 0 alone computes (or reads from the cache) the statistics of the whole
training set and broadcasts them, so every rank initialises the same prior and no rank counts on
its part of the data; the reference all-reduces its per-rank counts to the same global value
(docs/methods/sampling-free.md §10).
Configs with numeric priors need no hook; with it they are left untouched. Outside a runner (tests,
scripts), :func:`resolve_auto_priors` does the same for a built detector before ``init_weights``.
"""
from typing import List, Tuple

from mmdet.registry import HOOKS
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..analysis.imbalance_stats import DEFAULT_CACHE_DIR, STAGES, summary_line


def heads_waiting_for_stats(model) -> List[Tuple[str, object]]:
    """``(stage, head)`` for every head of ``model`` that needs dataset statistics.

    The stage is the head's ``imbalance_stage``, the config key its statistics are computed from
    (mmdet's ``RPN`` detector keeps its ``rpn_head`` config in a ``bbox_head`` attribute).
    """
    if is_model_wrapper(model):
        model = model.module
    found = []
    for name in STAGES:
        head = getattr(model, name, None)
        if getattr(head, 'needs_imbalance_stats', False):
            found.append((head.imbalance_stage, head))
    return found


def resolve_auto_priors(model, cfg, cache_dir: str = DEFAULT_CACHE_DIR, seed: int = 0) -> dict:
    """Give every head of ``model`` that waits for statistics its stage of ``cfg``'s training set.

    What :class:`SamplingFreePriorHook` does in ``before_run``, callable without a runner (tests,
    scripts): call it after building the detector and before ``init_weights``.

    Returns:
        dict: the resolved stage statistics by stage (empty when no head was waiting).
    """
    waiting = heads_waiting_for_stats(model)
    if not waiting:
        return {}
    stages = [stage for stage, _ in waiting]
    shared = [_compute_stats(cfg, stages, cache_dir, seed) if is_main_process() else None]
    broadcast_object_list(shared)
    stats = shared[0]
    for stage, head in waiting:
        entry = stats['stages'][stage]
        head.apply_imbalance_stats(entry)
        print_log(f'SamplingFreePriorHook: {stage} <- {summary_line(entry)} '
                  f"({entry.get('cache_file', 'not cached')})", logger='current')
    return {stage: stats['stages'][stage] for stage in stages}


def _compute_stats(cfg, stages, cache_dir: str, seed: int) -> dict:
    from ..analysis.imbalance_stats import get_imbalance_stats
    try:
        return get_imbalance_stats(cfg, stages=stages, cache_dir=cache_dir, seed=seed)
    except (FileNotFoundError, KeyError) as err:
        raise FileNotFoundError(
            "prior_prob='auto' needs imbalance statistics of the training set, and they could "
            f'not be computed: {err}. Run `python tools/imbalance_stats.py <config>` once the '
            'training data is in place, or set prior_prob to a number.') from err


@HOOKS.register_module()
class SamplingFreePriorHook(Hook):
    """Fills in ``prior_prob='auto'`` (and per-class thresholds) from the training set's statistics.

    Args:
        cache_dir (str): the statistics cache (``tools/imbalance_stats.py --cache-dir``).
        seed (int): seed of the random train transforms during the counting pass.
    """

    priority = 'VERY_HIGH'

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR, seed: int = 0) -> None:
        if not isinstance(cache_dir, str) or not cache_dir:
            raise ValueError(f'cache_dir must be a non-empty path, got {cache_dir!r}')
        self.cache_dir = cache_dir
        self.seed = seed

    def before_run(self, runner) -> None:
        resolve_auto_priors(runner.model, runner.cfg, self.cache_dir, self.seed)

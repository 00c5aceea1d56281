"""``AllSampler``: keeps every candidate; the "sampler" of Sampling-Free's RoI head.

See docs/methods/sampling-free.md §5.

The Dec-2019 ``FastRCNNLossComputationFree.subsample`` keeps every proposal with a label >= 0
(with the 0.5/0.5 assigner: all of them) plus the ground-truth boxes, instead of mmdet's 512 RoIs at
1:3. ``RandomSampler(num=10**6, ...)`` would keep everything too, but it draws random
permutations and hides the intent; this sampler returns all positives and all negatives in index
order. Candidates the assigner ignores (``gt_inds == -1``) are left out, as the reference drops
labels < 0.
"""
import torch
from mmdet.models.task_modules.samplers import BaseSampler
from mmdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class AllSampler(BaseSampler):
    """Returns every positive and every negative candidate (no sampling).

    Args:
        add_gt_as_proposals (bool): append the ground-truth boxes to the candidates first, as the
            reference does for the RoI head. Defaults to True.
        context: the head that builds the sampler (mmdet passes it); unused.
    """

    def __init__(self, add_gt_as_proposals: bool = True, context=None) -> None:
        # num and pos_fraction only size BaseSampler's requests, which this sampler ignores.
        super().__init__(num=0, pos_fraction=0.0, neg_pos_ub=-1,
                         add_gt_as_proposals=add_gt_as_proposals)

    def _sample_pos(self, assign_result, num_expected: int, **kwargs) -> torch.Tensor:
        """All candidates assigned to a ground truth."""
        return torch.nonzero(assign_result.gt_inds > 0, as_tuple=False).reshape(-1)

    def _sample_neg(self, assign_result, num_expected: int, **kwargs) -> torch.Tensor:
        """All candidates assigned to background (ignored ones, ``gt_inds == -1``, excluded)."""
        return torch.nonzero(assign_result.gt_inds == 0, as_tuple=False).reshape(-1)

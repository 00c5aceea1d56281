"""``ALRPSelfBalanceHook``: the self-balance period of the aLRP heads, one epoch of the dataloader.

aLRP Loss re-weights its localisation component once per period (docs/methods/alrp-loss.md §4);
the reference hard-codes the period as one COCO epoch at its batch size. A head cannot see its
dataloader, so the runner hands it the period before training.
"""
import math

from mmdet.registry import HOOKS
from mmengine.dataset import InfiniteSampler
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..models.dense_heads.alrp_loss_retina_head import ALRPLossRetinaHead


@HOOKS.register_module()
class ALRPSelfBalanceHook(Hook):
    """Sets the self-balance period of every aLRP head to one epoch of the training dataloader.

    The reference's period is one COCO epoch at its batch size (docs/methods/alrp-loss.md §4): the
    iterations of each process in which the processes together see the dataset once.
    ``len(runner.train_dataloader)`` is that with mmengine's ``DefaultSampler``, which gives each
    rank its share; its ``InfiniteSampler`` (the mini rows') reports the whole dataset on every
    rank, so there the length is divided by the number of ranks (alrp-loss.md §8). A head with an
    explicit ``sb_period`` keeps it.
    """

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        loader = runner.train_dataloader
        period = len(loader)
        batch_sampler = getattr(loader, 'batch_sampler', None)
        sampler = getattr(batch_sampler if batch_sampler is not None else loader, 'sampler', None)
        if isinstance(sampler, InfiniteSampler):
            period = math.ceil(period / runner.world_size)
        for module in model.modules():
            if isinstance(module, ALRPLossRetinaHead) and module.sb_period is None:
                module.set_self_balance_period(period)

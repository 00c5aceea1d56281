"""Runner-side pieces: the run-record hook, the Sampling-Free prior hook, the aLRP self-balance
hook, the precision wrapper, the runner that loads our own checkpoints."""
from .alrp_self_balance_hook import ALRPSelfBalanceHook
from .checkpoint_loading import OwnCheckpointRunner, own_checkpoint_loading
from .precision import CPUAutocastOptimWrapper, resolve_precision
from .sampling_free_hook import SamplingFreePriorHook, resolve_auto_priors
from .table_hook import ImbalanceTableHook

__all__ = ['ALRPSelfBalanceHook', 'CPUAutocastOptimWrapper', 'ImbalanceTableHook',
           'OwnCheckpointRunner', 'own_checkpoint_loading', 'resolve_precision',
           'SamplingFreePriorHook', 'resolve_auto_priors']

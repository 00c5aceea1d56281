"""Runner-side pieces: the run-record hook, the Sampling-Free prior hook, the precision wrapper."""
from .precision import CPUAutocastOptimWrapper, resolve_precision, run_precision
from .sampling_free_hook import SamplingFreePriorHook, resolve_auto_priors
from .table_hook import ImbalanceTableHook

__all__ = ['CPUAutocastOptimWrapper', 'ImbalanceTableHook', 'resolve_precision', 'run_precision',
           'SamplingFreePriorHook', 'resolve_auto_priors']

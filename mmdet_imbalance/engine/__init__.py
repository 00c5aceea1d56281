"""Runner-side pieces: the hook that makes every Table 1 row report its own table columns."""
from .sampling_free_hook import SamplingFreePriorHook, resolve_auto_priors
from .table_hook import ImbalanceTableHook

__all__ = ['ImbalanceTableHook', 'SamplingFreePriorHook', 'resolve_auto_priors']

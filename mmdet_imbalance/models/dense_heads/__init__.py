"""Registered dense_heads of mmdet_imbalance (one method per file)."""
from .dr_loss_retina_head import DRLossRetinaHead  # noqa: F401
from .resobj_retina_head import ResObjRetinaHead, fuse_objectness_logits  # noqa: F401
from .sampling_free_fcos_head import SamplingFreeFCOSHead  # noqa: F401
from .sampling_free_retina_head import SamplingFreeRetinaHead  # noqa: F401
from .sampling_free_rpn_head import SamplingFreeRPNHead  # noqa: F401
from .ap_loss_retina_head import APLossRetinaHead  # noqa: F401
from .alrp_loss_retina_head import ALRPLossRetinaHead  # noqa: F401
from .rank_sort_atss_head import RankSortATSSHead  # noqa: F401
from .rank_sort_rpn_head import RankSortRPNHead  # noqa: F401

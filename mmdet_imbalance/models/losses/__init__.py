"""Registered losses of mmdet_imbalance (one method per file)."""
from .dr_loss import DRLoss, dr_loss  # noqa: F401
from .resobj_loss import (ResObjLoss, ema_loss_normalizers, objectness_bce_loss,  # noqa: F401
                          positive_class_bce_loss)
from .ap_loss import APLoss, ap_loss  # noqa: F401
from .guided_loss import guided_loss, optimal_prior, prior_to_bias  # noqa: F401
from .rank_sort_loss import RankSortLoss, rank_sort_head_losses, rank_sort_loss  # noqa: F401
from .alrp_loss import ALRPLoss, alrp_loss  # noqa: F401

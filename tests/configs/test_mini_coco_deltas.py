"""A method row's mini config changes its mini baseline exactly as its COCO config changes the COCO
baseline: the method block is the same at both scales, apart from the scale adaptations listed
here, each with the reason given in the mini config's header."""
import os

import pytest

from mmdet_imbalance.table.config_diff import config_delta
from mmdet_imbalance.table.rows import ROWS, get_row
from mmdet_imbalance.testing import load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Keys whose run-time plumbing differs by design (paths, hooks lists) are never method settings.
IGNORED = ('work_dir', 'custom_hooks')
#: {row key: {delta key: why the mini value differs from the COCO one}}.
_MINI_LR = ("the mini recipe's AdamW lr scaled by the COCO row's lr ratio to its baseline "
            '(test_lr_ratio_is_the_coco_rows)')
SCALE_ADAPTATIONS = {
    'ap-loss': {
        'model.bbox_head.gather_across_ranks': 'one process on CPU: there is no rank to gather',
    },
    'sampling-free-retinanet': {
        'model.bbox_head.prior_prob': "the prior is measured on the mini training set ('auto')",
    },
    'rs-atss': {'optim_wrapper.optimizer.lr': _MINI_LR},
    'rs-faster-rcnn': {
        'optim_wrapper.optimizer.lr': _MINI_LR,
        'model.test_cfg.rcnn.score_thr': 'the 0.40 speed setting is tuned on converged COCO scores',
    },
    'sampling-free-faster-rcnn': {
        'model.rpn_head.prior_prob': "the RPN prior is measured on the mini training set ('auto')",
    },
}

METHOD_ROWS = [row for row in ROWS if row.baseline and {'mini', 'coco'} <= set(row.configs)]


def _delta(row, benchmark):
    own = load_config(os.path.join(REPO, row.configs[benchmark]))
    base = load_config(os.path.join(REPO, get_row(row.baseline).configs[benchmark]))
    return {k: v for k, v in config_delta(own, base, ignore=IGNORED).items()
            if not k.startswith(IGNORED)}


@pytest.mark.parametrize('row', METHOD_ROWS, ids=lambda r: r.key)
def test_mini_and_coco_rows_change_their_baselines_alike(row):
    mini, coco = _delta(row, 'mini'), _delta(row, 'coco')
    allowed = SCALE_ADAPTATIONS.get(row.key, {})
    differing = {k for k in set(mini) | set(coco)
                 if mini.get(k, (None, None))[1] != coco.get(k, (None, None))[1]}
    assert differing == set(allowed), {k: (mini.get(k), coco.get(k)) for k in differing}


def _lr(row, benchmark):
    return load_config(os.path.join(REPO, row.configs[benchmark])).optim_wrapper.optimizer.lr


@pytest.mark.parametrize('row', METHOD_ROWS, ids=lambda r: r.key)
def test_lr_ratio_is_the_coco_rows(row):
    # A method's own optimiser setting applies on top of the shared recipe: the row keeps the
    # ratio of its lr to its baseline's that its official COCO config has (RS Loss: 0.8, 0.6).
    baseline = get_row(row.baseline)
    coco = _lr(row, 'coco') / _lr(baseline, 'coco')
    mini = _lr(row, 'mini') / _lr(baseline, 'mini')
    assert mini == pytest.approx(coco, rel=1e-9)

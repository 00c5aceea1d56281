"""The hyper-parameter count of every row, each expectation derived in the test from the module's
constructor signature and the documented rule (hyperparams.py docstring), plus the agreement with
the review's count wherever the registry does not document a deviation."""
import inspect
import os.path as osp
from functools import lru_cache

import pytest
from mmdet.models.losses import GHMC, GHMR, FocalLoss
from mmdet.models.task_modules.samplers import (BaseSampler, IoUBalancedNegSampler,
                                                OHEMSampler, RandomSampler, ScoreHLRSampler)
from mmdet.registry import MODELS, TASK_UTILS

from mmdet_imbalance.table.hyperparams import BOOKKEEPING, count_hyperparams, count_module
from mmdet_imbalance.table.rows import ROWS, get_row
from mmdet_imbalance.testing import load_config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SAMPLER = 'model.train_cfg.rcnn.sampler'
HEAD = 'model.bbox_head'
CLS = 'model.bbox_head.loss_cls'


def own_args(cls):
    """name -> default of the arguments ``cls.__init__`` itself declares."""
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items()
            if n != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def stock_ancestor_args(cls):
    """Every argument name declared by an mmdet class ``cls`` derives from."""
    names = set()
    for klass in cls.__mro__[1:]:
        if klass.__module__.startswith('mmdet.') and '__init__' in klass.__dict__:
            names |= set(own_args(klass))
    return names


def numeric(x):
    return isinstance(x, (bool, int, float)) and x is not inspect.Parameter.empty


def new_numeric_args(cls):
    """The rule for a module of this package: arguments its stock ancestors do not take, whose
    signature default is a number or bool, minus bookkeeping."""
    return {n for n, d in own_args(cls).items()
            if n not in stock_ancestor_args(cls) and n not in BOOKKEEPING and numeric(d)}


def at(prefix, names):
    return {f'{prefix}.{n}' for n in names}


# Each entry derives the expected dotted keys from signatures, and pins the names that derivation
# gives, so that a change in a module's signature shows up here as a changed count.
def expect_random_sampler(cfg):
    assert cfg.model.train_cfg.rcnn.sampler.type == 'RandomSampler'
    # RandomSampler(num, pos_fraction, neg_pos_ub, add_gt_as_proposals): the last two bookkeeping.
    names = set(own_args(RandomSampler)) - BOOKKEEPING
    assert names == {'num', 'pos_fraction'}
    return at(SAMPLER, names)


def expect_ohem(cfg):
    assert cfg.model.train_cfg.rcnn.sampler.type == 'OHEMSampler'
    names = set(own_args(OHEMSampler)) - BOOKKEEPING  # context, loss_key are bookkeeping
    assert names == {'num', 'pos_fraction'}
    return at(SAMPLER, names)


def expect_iou_balanced(cfg):
    sampler = cfg.model.train_cfg.rcnn.sampler
    assert sampler.type == 'CombinedSampler'
    assert sampler.neg_sampler.type == 'IoUBalancedNegSampler'
    assert sampler.pos_sampler.type == 'InstanceBalancedPosSampler'
    # CombinedSampler(pos_sampler, neg_sampler, **kwargs) hands num / pos_fraction to BaseSampler
    # and down to both child samplers, where they are not counted again.
    outer = set(own_args(BaseSampler)) - BOOKKEEPING
    inner = set(own_args(IoUBalancedNegSampler)) - BOOKKEEPING - outer
    assert outer == {'num', 'pos_fraction'}
    assert inner == {'floor_thr', 'floor_fraction', 'num_bins'}
    return at(SAMPLER, outer) | at(SAMPLER + '.neg_sampler', inner)


def expect_focal(cfg):
    assert cfg.model.bbox_head.loss_cls.type == 'FocalLoss'
    names = set(own_args(FocalLoss)) - BOOKKEEPING
    assert names == {'gamma', 'alpha'}
    return at(CLS, names)


def expect_ghmc(cfg):
    assert cfg.model.bbox_head.loss_cls.type == 'GHMC'
    names = set(own_args(GHMC)) - BOOKKEEPING
    assert names == {'bins', 'momentum'}
    return at(CLS, names)


def expect_isr(cfg):
    rcnn = cfg.model.train_cfg.rcnn
    assert rcnn.sampler.type == 'ScoreHLRSampler' and 'carl' not in rcnn
    names = set(own_args(ScoreHLRSampler)) - BOOKKEEPING
    assert names == {'num', 'pos_fraction', 'k', 'bias', 'score_thr', 'iou_thr'}
    # train_cfg.rcnn.isr is a plain dict: its keys.
    assert set(rcnn.isr) == {'k', 'bias'}
    return at(SAMPLER, names) | at('model.train_cfg.rcnn.isr', rcnn.isr)


def expect_plugin_head_and_loss(head_type, loss_type, head_names, loss_names):
    def expect(cfg):
        assert cfg.model.bbox_head.type == head_type
        assert cfg.model.bbox_head.loss_cls.type == loss_type
        head = new_numeric_args(MODELS.get(head_type))
        loss_cls = MODELS.get(loss_type)
        loss = {n for n, d in own_args(loss_cls).items() if n not in BOOKKEEPING and numeric(d)}
        assert head == head_names and loss == loss_names
        return at(HEAD, head) | at(CLS, loss)
    return expect


def expect_sf_retina(cfg):
    assert cfg.model.bbox_head.type == 'SamplingFreeRetinaHead'
    names = new_numeric_args(MODELS.get('SamplingFreeRetinaHead'))
    # prior_prob defaults to 'auto' (derived from the data) and score_thr_mode to a string.
    assert names == {'guided_scale'}
    return at(HEAD, names)


def expect_sf_faster(cfg):
    model = cfg.model
    assert model.rpn_head.type == 'SamplingFreeRPNHead'
    assert model.roi_head.bbox_head.type == 'SamplingFreeBBoxHead'
    assert model.train_cfg.rcnn.sampler.type == 'AllSampler'
    rpn = new_numeric_args(MODELS.get('SamplingFreeRPNHead'))
    rcnn = new_numeric_args(MODELS.get('SamplingFreeBBoxHead'))
    sampler = set(own_args(TASK_UTILS.get('AllSampler'))) - BOOKKEEPING
    assert rpn == {'guided_scale'} and rcnn == {'guided_scale'} and sampler == set()
    return at('model.rpn_head', rpn) | at('model.roi_head.bbox_head', rcnn)


def expect_sf_fcos(cfg):
    assert cfg.model.bbox_head.type == 'SamplingFreeFCOSHead'
    names = new_numeric_args(MODELS.get('SamplingFreeFCOSHead'))
    # The later FCOS recipe fixes the prior (1e-4) instead of deriving it, so it counts.
    assert names == {'prior_prob', 'guided_scale'}
    return at(HEAD, names)


def expect_ghm_bundle(cfg):
    assert cfg.model.bbox_head.loss_bbox.type == 'GHMR'
    names = set(own_args(GHMR)) - BOOKKEEPING
    assert names == {'mu', 'bins', 'momentum'}
    return expect_ghmc(cfg) | at('model.bbox_head.loss_bbox', names)


def expect_pisa_bundle(cfg):
    rcnn = cfg.model.train_cfg.rcnn
    assert rcnn.sampler.type == 'ScoreHLRSampler'
    assert set(rcnn.isr) == {'k', 'bias'} and set(rcnn.carl) == {'k', 'bias'}
    names = set(own_args(ScoreHLRSampler)) - BOOKKEEPING
    return (at(SAMPLER, names) | at('model.train_cfg.rcnn.isr', rcnn.isr)
            | at('model.train_cfg.rcnn.carl', rcnn.carl))


def expect_gfl(cfg):
    head = cfg.model.bbox_head
    assert head.loss_cls.type == 'QualityFocalLoss'
    assert head.loss_dfl.type == 'DistributionFocalLoss'
    qfl = set(own_args(MODELS.get('QualityFocalLoss'))) - BOOKKEEPING
    dfl = set(own_args(MODELS.get('DistributionFocalLoss'))) - BOOKKEEPING
    # DFL's only argument besides bookkeeping is its loss weight.
    assert qfl == {'beta'} and dfl == set()
    return at(CLS, qfl)


def expect_rs_faster(cfg):
    model = cfg.model
    assert model.rpn_head.type == 'RankSortRPNHead'
    assert model.roi_head.bbox_head.type == 'RankSortBBoxHead'
    assert model.train_cfg.rcnn.sampler.type == 'AllSampler'
    rpn = new_numeric_args(MODELS.get('RankSortRPNHead'))
    rcnn = new_numeric_args(MODELS.get('RankSortBBoxHead'))
    loss = {n for n, d in own_args(MODELS.get('RankSortLoss')).items()
            if n not in BOOKKEEPING and numeric(d)}
    assert rpn == {'head_weight'} and rcnn == set() and loss == {'delta'}
    return (at('model.rpn_head', rpn) | at('model.rpn_head.loss_cls', loss)
            | at('model.roi_head.bbox_head.loss_cls', loss))


EXPECTED = {
    'faster-rcnn': expect_random_sampler,
    'ohem': expect_ohem,
    'iou-balanced': expect_iou_balanced,
    'retinanet': expect_focal,
    'ghm-c': expect_ghmc,
    'isr': expect_isr,
    'ap-loss': expect_plugin_head_and_loss('APLossRetinaHead', 'APLoss',
                                           {'gather_across_ranks'}, {'delta'}),
    'dr-loss': expect_plugin_head_and_loss('DRLossRetinaHead', 'DRLoss', set(),
                                           {'margin', 'pos_lambda', 'neg_lambda', 'L', 'tau'}),
    'resobj': expect_plugin_head_and_loss(
        'ResObjRetinaHead', 'ResObjLoss', {'num_stages', 'obj_prior_prob'},
        {'obj_weight', 'cls_weight', 'ema_momentum', 'ema_init'}),
    'sampling-free-retinanet': expect_sf_retina,
    'sampling-free-faster-rcnn': expect_sf_faster,
    'fcos': expect_focal,
    'fcos-sampling-free': expect_sf_fcos,
    'atss': expect_focal,
    'gfl': expect_gfl,
    'rs-atss': expect_plugin_head_and_loss('RankSortATSSHead', 'RankSortLoss', set(), {'delta'}),
    'rs-faster-rcnn': expect_rs_faster,
    'alrp-loss': expect_plugin_head_and_loss('ALRPLossRetinaHead', 'ALRPLoss', {'sb_init'},
                                             {'delta'}),
    'libra-rcnn': expect_iou_balanced,
    'ghm-c-r': expect_ghm_bundle,
    'pisa-faster-rcnn': expect_pisa_bundle,
}


@lru_cache(maxsize=None)
def merged(path):
    return load_config(osp.join(REPO_ROOT, path))


CASES = [(row.key, bench) for row in ROWS for bench in sorted(row.configs)]


def test_every_row_has_an_expectation():
    assert set(EXPECTED) == {row.key for row in ROWS}


@pytest.mark.parametrize('key,bench', CASES, ids=[f'{k}-{b}' for k, b in CASES])
def test_row_count_matches_signature_derivation(key, bench):
    row = get_row(key)
    cfg = merged(row.configs[bench])
    expected = EXPECTED[key](cfg)
    counted = count_hyperparams(row, cfg)
    assert sorted(p.key for p in counted.params) == sorted(expected)
    assert counted.count == len(expected)


@pytest.mark.parametrize('row', [r for r in ROWS if r.published is not None], ids=lambda r: r.key)
def test_agreement_with_the_review(row):
    """Where the registry documents no deviation, the derived count equals the review's; where it
    does, the count really differs (the note is not stale)."""
    cfg = merged(row.configs.get('coco') or row.configs['mini'])
    count = count_hyperparams(row, cfg).count
    if isinstance(row.published.params, int) and row.params_deviation is None:
        assert count == row.published.params
    else:
        assert row.params_deviation, f'{row.key}: differs from the review without a reason'
        assert count != row.published.params


def test_agreeing_rows():
    """The rows where the rule reproduces the review's number."""
    agree = {r.key for r in ROWS if r.published and r.params_deviation is None}
    assert agree == {'faster-rcnn', 'ohem', 'retinanet', 'ap-loss'}


# -- the rule on constructed modules -------------------------------------------------------------
class PluginFocal(FocalLoss):
    """A stand-in for a method of this package that extends a stock loss."""

    def __init__(self, beta: float = 0.5, mode: str = 'x', scale=None, flag: bool = True,
                 ranges=(1, 2), **kwargs):
        super().__init__(**kwargs)


PluginFocal.__module__ = 'mmdet_imbalance.models.losses.fake'


class Standalone:
    __module__ = 'mmdet_imbalance.models.losses.fake'

    def __init__(self, required, weight: float = 1.0, loss_weight: float = 1.0, cfg=None):
        pass


def test_plugin_counts_only_its_own_numeric_arguments():
    found = count_module(dict(type=PluginFocal, gamma=3.0, scale=0.3), 'm')
    # gamma/alpha are FocalLoss's (the baseline's); mode is a str, scale defaults to None.
    assert sorted(p.name for p in found) == ['beta', 'flag', 'ranges']


def test_required_and_kwargs_arguments_count_by_config_value():
    found = count_module(dict(type=Standalone, required=4, cfg=dict(a=1, b='s')), 'm')
    assert sorted(p.key for p in found) == ['m.cfg.a', 'm.required', 'm.weight']
    assert [p.name for p in count_module(dict(type=Standalone, required='auto'), 'm')] == \
        ['weight']


def test_plain_dict_counts_numeric_keys():
    found = count_module(dict(k=2, bias=0., name='x', sub=dict(t=1), loss_weight=2.), 'isr')
    assert sorted(p.key for p in found) == ['isr.bias', 'isr.k', 'isr.sub.t']


def test_errors_name_the_culprit():
    row = get_row('ohem')
    with pytest.raises(KeyError, match='model.train_cfg'):
        count_hyperparams(row, dict(model=dict()))
    with pytest.raises(KeyError, match='NoSuchSampler'):
        count_module(dict(type='NoSuchSampler'), 'x')
    with pytest.raises(TypeError, match="'x'"):
        count_module(3, 'x')

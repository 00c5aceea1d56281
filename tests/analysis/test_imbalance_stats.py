"""get_imbalance_stats' arguments, the CLI (tools/imbalance_stats.py) and SamplingFreePriorHook,
on the toy dataset of conftest.py."""
import importlib.util
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmdet_imbalance.analysis import doc_sections, get_imbalance_stats
from mmdet_imbalance.engine import SamplingFreePriorHook, resolve_auto_priors


@pytest.fixture
def cli(repo_root):
    spec = importlib.util.spec_from_file_location(
        'imbalance_stats_cli', osp.join(repo_root, 'tools', 'imbalance_stats.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_arguments_name_the_culprit(toy):
    cfg = toy.retina_config()
    with pytest.raises(ValueError, match='rpn_head'):
        get_imbalance_stats(cfg, stages=['rpn_head'], cache_dir=None)
    with pytest.raises(ValueError, match='checkpoint'):
        get_imbalance_stats(toy.faster_config(), stages=['roi_head'], cache_dir=None)
    with pytest.raises(ValueError, match='num_images'):
        get_imbalance_stats(cfg, num_images=0, cache_dir=None)


def test_cli_prints_the_table(cli, toy, tmp_path, capsys):
    cli.main([toy.retina_config(), '--cache-dir', str(tmp_path / 'cache')])
    out = capsys.readouterr().out
    assert '| stage | images | fg / img |' in out and 'RetinaHead anchors' in out
    assert str(tmp_path / 'cache') in out


def test_cli_writes_the_marked_tables_of_a_doc(cli, toy, tmp_path):
    doc = str(tmp_path / 'doc.md')
    prose = 'The toy set, measured:\n\n'
    with open(doc, 'w') as f:
        f.write(f'{prose}<!-- imbalance-stats:begin toy\n{toy.retina_config()}\n'
                f'{toy.faster_config()} --num-images 2\n-->\nstale\n'
                '<!-- imbalance-stats:end toy -->\nThe end.\n')
    cli.main(['--write-docs', doc, '--cache-dir', str(tmp_path / 'cache')])
    with open(doc) as f:
        text = f.read()
    assert text.startswith(prose) and text.endswith('<!-- imbalance-stats:end toy -->\nThe end.\n')
    assert 'stale' not in text
    assert 'dataset: toy-train (2 training images, 2 classes)\n' in text
    assert '| RetinaHead anchors | 2 | 1.0 | 6.0 | 1.0 | 0.0 | 6 : 1 | 2 | 0.07143 | -2.565 |\n' \
        in text
    assert '| RPNHead anchors (`allowed_border=0`) | 2 | 1.0 | 0.0 | 1.0 | 6.0 | 0 : 1 | 1 | 1 ' \
        '| - |' in text
    with pytest.raises(SystemExit, match='no section'):
        cli.main(['--write-docs', doc, '--sections', 'other'])


def test_cli_takes_a_config_or_a_doc(cli, toy):
    with pytest.raises(SystemExit):
        cli.parse_args([])
    with pytest.raises(SystemExit):
        cli.parse_args([toy.retina_config(), '--write-docs', 'doc.md'])
    with pytest.raises(SystemExit):
        cli.parse_args([toy.retina_config(), '--sections', 'shapes'])


def test_the_docs_argument_lists_are_valid(cli, repo_root):
    with open(osp.join(repo_root, 'docs', 'imbalance_stats.md')) as f:
        sections = doc_sections(f.read())
    for arg_lists in sections.values():
        for argv in arg_lists:
            args = cli.parse_args(argv)
            assert osp.isfile(osp.join(repo_root, args.config)) and not args.write_docs


def test_hook_resolves_auto_prior_before_weight_init(toy, tmp_path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(toy.retina_config(
        head="type='SamplingFreeRetinaHead', prior_prob='auto'"))
    model = MODELS.build(cfg.model)
    head = model.bbox_head
    with pytest.raises(ValueError, match='tools/imbalance_stats.py'):
        model.init_weights()
    SamplingFreePriorHook(cache_dir=str(tmp_path / 'cache')).before_run(
        SimpleNamespace(model=model, cfg=cfg))
    assert head.resolved_prior == pytest.approx(1 / 14)
    assert head.test_cfg['score_thr'] == pytest.approx(1 / 14)
    model.init_weights()
    assert torch.allclose(head.retina_cls.bias, torch.full_like(head.retina_cls.bias,
                                                                -math.log(13)))
    # Resolved heads are left alone by a second call.
    assert resolve_auto_priors(model, cfg, cache_dir=str(tmp_path / 'cache')) == {}


def test_hook_class_prior_thresholds(toy, tmp_path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(toy.retina_config(
        head="type='SamplingFreeRetinaHead', prior_prob=0.01, score_thr_mode='class_prior'"))
    model = MODELS.build(cfg.model)
    resolved = resolve_auto_priors(model, cfg, cache_dir=str(tmp_path / 'cache'))
    assert list(resolved) == ['bbox_head']
    # A numeric prior stays; the per-class thresholds are N_fg,c / (N_fg + N_bg) = 1/14 each.
    assert model.bbox_head.resolved_prior == 0.01
    assert torch.allclose(model.bbox_head.class_score_thrs, torch.tensor([1 / 14, 1 / 14]))


def test_hook_error_says_what_to_run(toy, tmp_path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(toy.retina_config(
        head="type='SamplingFreeRetinaHead', prior_prob='auto'"))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'missing') + '/'  # no annotations
    model = MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match=r'tools/imbalance_stats\.py <config>'):
        SamplingFreePriorHook(cache_dir=str(tmp_path / 'cache')).before_run(
            SimpleNamespace(model=model, cfg=cfg))

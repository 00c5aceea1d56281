"""Every tool answers bad input with one line that names the file, key or value, exit status 2 and
no traceback (``--debug`` shows it); a refused training run changes nothing in its work dir; and
``tools/test.py`` evaluates the checkpoint of any finished run without touching its record.

Each test's docstring says what happened before (issue 22; docs/reliability.md).
"""
import functools
import importlib.util
import json
import os
import os.path as osp
import signal

import pytest

from mmdet_imbalance import cli

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RETINANET = osp.join(REPO, 'configs', 'mini', 'retinanet_mini.py')
COCO_RETINANET = osp.join(REPO, 'configs', 'table1', 'retinanet_r50_fpn_1x_coco.py')


def _tool(name):
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'{name}_cli', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


# What each tool's ``__main__`` passes to cli.run: the tools that train or test mark their input
# phase themselves so that an error in training keeps its traceback.
ERRORS = dict(train=(), test=(), table1=cli.INPUT_ERRORS, imbalance_stats=cli.INPUT_ERRORS,
              model_index=cli.INPUT_ERRORS, prepare_data=cli.INPUT_ERRORS)


def run_tool(name, args, capsys):
    tool = _tool(name)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        code = tool.cli.run(tool.main, f'{name}.py', list(args), errors=ERRORS[name])
    except SystemExit as err:  # argparse's usage errors
        code = err.code
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line(code, err, *expected):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err, err
    for text in expected:
        assert text in err, err


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / 'model.pth'
    path.write_bytes(b'not read: the config is refused first')
    return str(path)


def _args(tool, config, checkpoint, *extra):
    return ([config, checkpoint] if tool == 'test' else [config]) + list(extra)


@pytest.mark.parametrize('tool', ['train', 'test', 'imbalance_stats'])
def test_a_missing_or_unparsable_config_is_one_line(tool, tmp_path, checkpoint, capsys):
    """Before: a Python traceback, exit 1."""
    missing = str(tmp_path / 'no_such_config.py')
    code, err = run_tool(tool, _args(tool, missing, checkpoint), capsys)
    assert_one_line(code, err, 'config file not found', missing)
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = '" + RETINANET + "'\nmodel = dict(\n")
    code, err = run_tool(tool, _args(tool, str(broken), checkpoint), capsys)
    assert_one_line(code, err, 'syntax errors in config file', str(broken))


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_an_unknown_dataset_or_an_empty_data_root_is_one_line(tool, tmp_path, checkpoint,
                                                              capsys):
    """Before: a Python traceback, exit 1."""
    code, err = run_tool(tool, _args(tool, RETINANET, checkpoint, '--dataset', 'nope',
                                     '--work-dir', str(tmp_path / 'wd')), capsys)
    assert_one_line(code, err, "--dataset 'nope' is not an embedded dataset")
    empty = tmp_path / 'coco'
    empty.mkdir()
    code, err = run_tool(tool, _args(tool, COCO_RETINANET, checkpoint, '--data-root', str(empty),
                                     '--work-dir', str(tmp_path / 'wd')), capsys)
    assert_one_line(code, err, f'--data-root {empty}/ is not a COCO 2017 root')


def test_debug_shows_the_traceback(tmp_path):
    tool = _tool('train')
    with pytest.raises(cli.BadInput) as info:
        tool.cli.run(tool.main, 'train.py', [str(tmp_path / 'missing.py'), '--debug'], errors=())
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_a_row_config_that_does_not_parse_is_an_error(tmp_path, monkeypatch, capsys):
    """Before: ``--from-results`` showed 'not implemented: SyntaxError...' and exited 0."""
    from mmdet_imbalance import config_paths
    broken = tmp_path / 'retinanet_mini_ap-loss.py'
    broken.write_text("_base_ = './retinanet_mini.py'\nmodel = dict(\n")
    resolve = config_paths.resolve
    monkeypatch.setattr(config_paths, 'resolve', lambda rel: str(broken)
                        if rel.endswith('retinanet_mini_ap-loss.py') else resolve(rel))
    code, err = run_tool('table1', ['--from-results', '--rows', 'ap-loss', '--results',
                                    str(tmp_path / 'results'), '--work-dir',
                                    str(tmp_path / 'wd')], capsys)
    assert_one_line(code, err, 'syntax errors in config file', str(broken))


def test_publish_into_a_file_is_refused_before_anything_is_built(tmp_path, capsys):
    """Before: ``--publish README.md`` raised a traceback after the table was built."""
    readme = tmp_path / 'README.md'
    readme.write_text('# mine\n')
    code, err = run_tool('table1', ['--from-results', '--publish', str(readme), '--work-dir',
                                    str(tmp_path / 'wd')], capsys)
    assert code == 2 and f'--publish {readme}: a file' in err
    assert readme.read_text() == '# mine\n' and not (tmp_path / 'wd').exists()


def test_model_index_over_a_damaged_record_is_one_line(tmp_path, capsys):
    folder = tmp_path / 'results' / 'mini-shapes' / 'seed0' / 'retinanet'
    folder.mkdir(parents=True)
    (folder / 'run.json').write_text('{"status": "fini')
    code, err = run_tool('model_index', ['--check', '--results', str(tmp_path / 'results')],
                         capsys)
    assert_one_line(code, err, str(folder / 'run.json'), 'not valid JSON')


def _snapshot(root):
    return {osp.relpath(osp.join(d, f), root): open(osp.join(d, f), 'rb').read()
            for d, _, files in os.walk(root) for f in files}


def _trained_work_dir(work_dir, dataset, precision):
    """A finished run's record with the settings ``train.py`` gives the mini RetinaNet on
    ``dataset`` at ``precision``, and mmengine's copy of its config."""
    from mmdet_imbalance.config_builder import build_runner_config
    from mmdet_imbalance.engine.run_record import run_settings
    from mmdet_imbalance.testing import fake_work_dir
    cfg = build_runner_config(RETINANET, work_dir=str(work_dir), dataset=dataset,
                              precision=precision, check_files=False)
    fake_work_dir(str(work_dir), run_settings(cfg), 55.3, iters=600)


def test_a_refused_run_changes_nothing_in_the_work_dir(tmp_path, capsys):
    """Before: mmengine rewrote the work dir's config copy (and added a log folder) before the
    hook refused the run, so exporting that work dir shipped the refused run's config."""
    work_dir = tmp_path / 'retinanet_mini'
    _trained_work_dir(work_dir, 'trees', 'fp32')
    before = _snapshot(work_dir)
    code, err = run_tool('train', [RETINANET, '--dataset', 'shapes', '--precision', 'fp32',
                                   '--work-dir', str(work_dir)], capsys)
    assert_one_line(code, err, f'{work_dir} holds a finished run of other settings',
                    'dataset: trees -> shapes', '--overwrite')
    assert _snapshot(work_dir) == before


def test_the_guard_before_the_runner_agrees_with_the_hook(tmp_path):
    """The guard of train.py reads the settings the hook records: the same run (a resume) in
    the same work dir passes it."""
    from mmdet_imbalance.config_builder import build_runner_config, refuse_other_runs
    _trained_work_dir(tmp_path / 'wd', 'shapes', 'fp32')
    cfg = build_runner_config(RETINANET, work_dir=str(tmp_path / 'wd'), dataset='shapes',
                              precision='fp32', resume='auto', check_files=False)
    refuse_other_runs(cfg)
    cfg.merge_from_dict({'randomness.seed': 1})
    with pytest.raises(RuntimeError, match='seed: 0 -> 1'):
        refuse_other_runs(cfg)


@pytest.fixture
def tiny_shapes(tmp_path, monkeypatch):
    """A 3 + 2 canvas ``shapes`` set at ``<tmp>/data/shapes``, the mini configs' relative
    data root, with the working folder at ``<tmp>``."""
    from mmdet_imbalance.datasets import embedded, shapes
    spec = dict(embedded.EMBEDDED['shapes'],
                build=functools.partial(shapes.build, num_train=3, num_val=2))
    monkeypatch.setitem(embedded.EMBEDDED, 'shapes', spec)
    embedded.prepare('shapes', str(tmp_path / 'data' / 'shapes'))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_test_evaluates_a_bf16_run_without_touching_its_record(tiny_shapes, capsys):
    """Before: after a bf16 training (``--precision auto`` on a bf16 CPU), the README's
    ``tools/test.py`` refused the work dir as 'a finished run of other settings (precision: bf16
    -> fp32) ... pass --overwrite', with a traceback, and test.py has no --overwrite."""
    import torch

    from mmdet_imbalance.testing import build_detector
    work_dir = tiny_shapes / 'work_dirs' / 'retinanet_mini_shapes'
    _trained_work_dir(work_dir, 'shapes', 'bf16')
    model = build_detector(RETINANET, shrink=False)
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('circle', 'square', 'triangle'))),
                    state_dict=model.state_dict()), work_dir / 'iter_600.pth')
    before = _snapshot(work_dir)
    code, err = run_tool('test', [RETINANET, str(work_dir / 'iter_600.pth'), '--dataset',
                                  'shapes'], capsys)
    assert code == 0, err
    after = _snapshot(work_dir)
    assert {k: v for k, v in after.items() if not k.startswith('test/')} == before
    logs = [k for k in after if k.startswith('test/') and k.endswith('.log')]
    # Both val canvases were evaluated (an untrained model detects nothing: no AP line).
    assert logs and any(b'Iter(test) [2/2]' in after[k] for k in logs), sorted(after)
    record = json.loads(before[osp.join('imbalance', 'run.json')])
    assert record['settings']['precision'] == 'bf16'

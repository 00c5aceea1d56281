"""Bad input stops early with a message naming the file, key or value at fault and what to do.

The other cases of the list live next to the code they guard and are asserted on their message
too: an unknown dataset or a missing annotation file (tests/test_runner.py), deepforest not
installed (tests/datasets/test_embedded_data.py), a sigmoid-only loss on a softmax head
(tests/test_runner.py), and ``prior_prob='auto'`` without statistics
(tests/models/dense_heads/test_sampling_free_heads.py, tests/analysis/test_imbalance_stats.py).
"""
import importlib.util
import os
import signal

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    path = os.path.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'{name}_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _run(name, *args, capsys, errors=None):
    """Run a tool's ``main`` in this process as its ``__main__`` does (the tool's own code path,
    without the seconds of interpreter and mmdet start-up); return (exit code, its stderr)."""
    tool = _tool(name)
    sigterm = signal.getsignal(signal.SIGTERM)  # table1's main() installs its own handler
    kwargs = {} if errors is None else dict(errors=errors)
    try:
        code = tool.cli.run(tool.main, f'{name}.py', list(args), **kwargs)
    except SystemExit as err:  # argparse: usage error, exit 2
        code = err.code
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return code, capsys.readouterr().err


def _table1(*args, capsys):
    return _run('table1', *args, capsys=capsys)


def test_unknown_row_name_lists_the_valid_names(tmp_path, capsys):
    code, message = _table1('--rows', 'ohem,focal-loss-v2', '--work-dir', str(tmp_path),
                            capsys=capsys)
    assert code != 0
    assert 'focal-loss-v2' in message and 'ohem' in message
    assert 'sampling-free-retinanet' in message  # the valid names are listed
    assert not os.listdir(tmp_path)  # nothing was trained or written


@pytest.mark.parametrize('data_root', [None, 'missing-coco'])
def test_coco_benchmark_without_coco_fails_before_training(tmp_path, data_root, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --data-root, data/coco, is relative
    args = ['--benchmark', 'coco', '--rows', 'baselines', '--work-dir', str(tmp_path / 'wd')]
    if data_root:
        args += ['--data-root', str(tmp_path / data_root)]
    code, message = _table1(*args, capsys=capsys)
    assert code != 0
    assert '--data-root' in message and 'COCO 2017' in message
    assert 'instances_train2017.json' in message
    assert not (tmp_path / 'wd').exists() or not any((tmp_path / 'wd').rglob('*.pth'))


def test_missing_dataset_folder_is_named(tmp_path):
    from mmdet_imbalance.config_builder import build_runner_config
    cfg_file = tmp_path / 'voc.py'
    cfg_file.write_text(
        "_base_ = '" + os.path.join(REPO, 'configs/table1/retinanet_r50_fpn_1x_coco.py') + "'\n"
        f"train_dataloader = dict(dataset=dict(data_root='{tmp_path}/nowhere/'))\n")
    with pytest.raises(FileNotFoundError, match=r'train_dataloader.dataset.ann_file: .*nowhere'):
        build_runner_config(str(cfg_file))


def test_cfg_options_without_key_value_fail_before_any_run(tmp_path, capsys):
    code, message = _table1('--rows', 'retinanet', '--work-dir', str(tmp_path / 'wd'),
                            '--cfg-options', 'foo', capsys=capsys)
    assert code == 2 and '--cfg-options foo' in message and 'key=value' in message
    assert not (tmp_path / 'wd').exists()
    from mmdet_imbalance.config_builder import CfgOptionsAction
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', 'a=1', 'foo'])
    assert "--cfg-options foo: each option must be key=value" in capsys.readouterr().err


@pytest.mark.parametrize('blocker', ['file', 'unwritable'])
def test_an_impossible_work_dir_fails_at_once_in_one_line(tmp_path, capsys, blocker):
    from mmdet_imbalance.config_builder import check_work_dir
    if blocker == 'file':
        (tmp_path / 'f').write_text('x')
        work_dir, expected = tmp_path / 'f' / 'run', 'is a file, not a folder'
    else:
        # /proc takes no new folders, even from root (who may write into a 0o500 folder).
        work_dir, expected = '/proc/mmdet_imbalance_run', 'cannot create /proc/mmdet_imbalance_run'
    with pytest.raises(OSError, match=expected):
        check_work_dir(str(work_dir))
    code, message = _table1('--rows', 'retinanet', '--work-dir', str(work_dir), capsys=capsys)
    assert code == 2 and expected in message and '\n' not in message.strip()

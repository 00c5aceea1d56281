"""A non-editable install works as an OpenMMLab package, from a folder outside the checkout:
``mim search`` lists the rows, a ``mmdet_imbalance::`` base resolves and builds, and
``mim train mmdet_imbalance`` runs a one-line config that inherits a row.

The package is installed with pip into a fresh virtual environment that sees this environment's
packages through a ``.pth`` file, with ``--no-index --no-deps --no-build-isolation``: nothing is
downloaded or compiled. The build runs on a copy of the source, so the checkout gets no build
folder.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SOURCE_ENTRIES = ('setup.py', 'setup.cfg', 'MANIFEST.in', 'README.md', 'model-index.yml',
                  'mmdet_imbalance', 'configs', 'tools', 'checkpoints')
USER_CONFIG = "_base_ = 'mmdet_imbalance::mini/retinanet_mini_ap-loss.py'\n"
CHECK_SCOPE = """
import mmdet_imbalance
from mmengine.config import Config
from mmengine.registry import HOOKS, init_default_scope
print('package', mmdet_imbalance.__file__)
cfg = Config.fromfile('my_ap_loss.py')
assert cfg.model.bbox_head.loss_cls.type == 'APLoss', cfg.model.bbox_head
# Inherited dicts without a scope get 'mmdet_imbalance' (mmdet_imbalance/registry.py).
hook = cfg.custom_hooks[0]
assert hook._scope_ == 'mmdet_imbalance', hook
init_default_scope('mmdet')
print('built', type(HOOKS.build(hook)).__name__)
"""


def run(args, cwd, env, timeout=600):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}'
    return proc.stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(python of the fresh environment, a folder outside the checkout, its environment)."""
    tmp = tmp_path_factory.mktemp('mim_install')
    source = tmp / 'source'
    source.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.py[cod]', '.mim', '*.egg-info')
    for name in SOURCE_ENTRIES:
        src = osp.join(REPO, name)
        if osp.isdir(src):
            shutil.copytree(src, source / name, ignore=ignore)
        else:
            shutil.copyfile(src, source / name)
    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    purelib = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                              '["purelib"])'], check=True, capture_output=True,
                             text=True).stdout.strip()
    # This environment's packages (torch, mmcv, mmdet, mim, pip, setuptools) come after the
    # fresh environment's own, so the package installed there is the one imported.
    with open(osp.join(purelib, '_parent_environment.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env['PYTHONWARNINGS'] = 'ignore'
    # --ignore-installed: never touch the install this environment has (an editable one).
    run([python, '-m', 'pip', 'install', '--quiet', '--no-index', '--no-deps',
         '--no-build-isolation', '--ignore-installed', '--no-compile', str(source)],
        cwd=str(tmp), env=env)
    elsewhere = tmp / 'elsewhere'
    elsewhere.mkdir()
    # The embedded data the checkout has prepared already, so the mim train check below does
    # not generate it again; without it, it is generated there on first use.
    if osp.isdir(osp.join(REPO, 'data', 'shapes')):
        (elsewhere / 'data').mkdir()
        os.symlink(osp.join(REPO, 'data', 'shapes'), elsewhere / 'data' / 'shapes')
    (elsewhere / 'my_ap_loss.py').write_text(USER_CONFIG)
    return python, str(elsewhere), env, purelib


@pytest.mark.slow
def test_install_carries_the_mim_files(installed):
    python, cwd, env, purelib = installed
    mim_dir = osp.join(purelib, 'mmdet_imbalance', '.mim')
    for name in ('model-index.yml', 'configs/mini/retinanet_mini_ap-loss.py', 'tools/train.py',
                 'configs/ap-loss/metafile.yml'):
        assert osp.isfile(osp.join(mim_dir, name)), name
    out = run([python, '-c', 'from mmdet_imbalance import config_paths as c; '
               'print(c.configs_root())'], cwd, env)
    assert out.strip() == osp.join(mim_dir, 'configs')


@pytest.mark.slow
def test_mim_search_lists_every_row(installed):
    import yaml
    python, cwd, env, _ = installed
    out = run([python, '-m', 'mim', 'search', 'mmdet_imbalance'], cwd, env)
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    names = [m['Name'] for path in index['Import']
             for m in yaml.safe_load(open(osp.join(REPO, path)))['Models']]
    for name in names:
        assert f'config id: {name}\n' in out, name
    assert 'coco/box_ap' in out and 'hyper-parameters' in out
    out = run([python, '-m', 'mim', 'search', 'mmdet_imbalance', '--model', 'AP Loss'], cwd, env)
    assert 'config id: retinanet_mini_ap-loss\n' in out
    assert 'config id: retinanet_mini\n' not in out


@pytest.mark.slow
def test_package_scoped_base_resolves_and_builds(installed):
    python, cwd, env, purelib = installed
    out = run([python, '-c', CHECK_SCOPE], cwd, env)
    assert f'package {osp.join(purelib, "mmdet_imbalance", "__init__.py")}' in out
    assert 'built ImbalanceTableHook' in out


@pytest.mark.slow
def test_mim_train_runs_a_one_line_config(installed):
    python, cwd, env, _ = installed
    # Zero iterations: the whole path (mim finds the package's train script, the config and its
    # package-scoped base, the Runner builds model, data, optimizer and hooks) without training.
    out = run([python, '-m', 'mim', 'train', 'mmdet_imbalance', 'my_ap_loss.py', '--work-dir',
               'work', '--precision', 'fp32', '--cfg-options', 'train_cfg.max_iters=0'],
              cwd, env)
    assert 'Training finished successfully' in out
    assert osp.isfile(osp.join(cwd, 'work', 'my_ap_loss.py'))

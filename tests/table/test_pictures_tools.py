"""The pictures drawn from a results tree, on a synthetic tree: tools/plot_curves.py overlays each
row's curves on its baseline's and picks the published baselines and the rows whose ΔAP is
outside the noise; every picture records the hash of its inputs, which says when it is stale."""
import importlib.util
import os.path as osp
import signal

import pytest

from mmdet_imbalance.engine.run_record import RunRecord
from mmdet_imbalance.table import pictures, results
from mmdet_imbalance.table.published import expected_settings
from mmdet_imbalance.testing import fake_work_dir

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: AP per seed: GHM-C loses about 30 AP on every seed (outside the noise), AP Loss moves by less
#: than the seeds spread (noise).
APS = {'retinanet': (50.0, 52.0, 51.0), 'ghm-c': (20.0, 21.0, 22.0),
       'ap-loss': (51.0, 51.5, 51.6)}


def add_run(root, key, seed, ap, loss=1.0):
    probe = RunRecord(settings=dict(precision='fp32'))
    settings = expected_settings('mini', 'shapes', key, seed, probe)
    work = osp.join(osp.dirname(root), 'work', f'{key}-{seed}')
    fake_work_dir(work, settings, ap, iters=30, loss=loss)
    results.export_run(work, results.run_dir(root, 'mini', 'shapes', seed, key))


@pytest.fixture(scope='module')
def master_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tree') / 'results')
    for key, aps in APS.items():
        for seed, ap in enumerate(aps):
            add_run(root, key, seed, ap, loss=3.0 if key == 'ghm-c' else 1.0)
    return root


@pytest.fixture
def tree(master_tree, tmp_path):
    """A copy of the synthetic tree that a test may change."""
    import shutil
    root = str(tmp_path / 'results')
    shutil.copytree(master_tree, root)
    return root


def tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plot_curves_draws_the_published_baselines_and_the_outliers(tree, tmp_path, capsys):
    out = str(tmp_path / 'docs' / 'curves.png')  # a folder that does not exist yet
    assert tool('plot_curves').main(['--results', tree, '--out', out]) == 0
    printed = capsys.readouterr().out
    assert 'retinanet: retinanet (3 seed(s)), ghm-c (3 seed(s))' in printed
    assert 'ap-loss' not in printed  # its ΔAP is noise: not drawn by default
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert pictures.problems(out) == []
    # Rows named explicitly are drawn whatever their ΔAP, with their baseline.
    assert tool('plot_curves').main(['--results', tree, '--out', out, '--rows', 'ap-loss',
                                     '--seeds', '0', '1']) == 0
    assert 'retinanet: retinanet (2 seed(s)), ap-loss (2 seed(s))' in capsys.readouterr().out


def test_a_picture_is_stale_once_its_inputs_change(tree, tmp_path):
    out = str(tmp_path / 'curves.png')
    open(out, 'wb').write(b'png')
    base = osp.dirname(tree)
    patterns = ['results/mini-shapes/seed*/*/run.json', 'results/mini-shapes/seed*/*/scalars.json']
    pictures.write_inputs(out, base, patterns, 'python tools/plot_curves.py')
    assert pictures.problems(out) == []
    add_run(tree, 'ap-loss', 3, 52.0)
    stale = pictures.problems(out)
    assert len(stale) == 1 and '2 input file(s) new' in stale[0]
    assert 'seed3/ap-loss' in stale[0] and 'rerun: python tools/plot_curves.py' in stale[0]
    pictures.write_inputs(out, base, patterns, 'python tools/plot_curves.py')
    curve = osp.join(results.run_dir(tree, 'mini', 'shapes', 0, 'ghm-c'), 'scalars.json')
    open(curve, 'a').write('\n')
    assert '1 input file(s) changed' in pictures.problems(out)[0]


def test_plot_curves_without_curves_says_how_to_get_them(tree, tmp_path, capsys):
    import glob
    import json
    import os
    for path in glob.glob(osp.join(tree, '*', '*', '*', 'run.json')):
        os.remove(osp.join(osp.dirname(path), 'scalars.json'))
        data = json.load(open(path))
        del data['curve']
        json.dump(data, open(path, 'w'))
    plot = tool('plot_curves')
    sigterm = signal.getsignal(signal.SIGTERM)
    code = plot.cli.run(plot.main, 'plot_curves.py', ['--results', tree, '--out',
                                                      str(tmp_path / 'c.png')])
    signal.signal(signal.SIGTERM, sigterm)
    assert code == 2 and 'tools/export_curves.py adds them' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'c.png')


def test_the_published_table_plot_records_its_inputs(tree, tmp_path):
    docs = tmp_path / 'docs'
    table1 = tool('table1')
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        code = table1.main(['--from-results', '--rows', 'ghm-c,ap-loss', '--results', tree,
                            '--work-dir', str(tmp_path / 'wd'), '--publish', str(docs)])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    picture = str(docs / 'table1.png')
    assert code == 0 and pictures.problems(picture) == []
    add_run(tree, 'retinanet', 3, 49.0)
    assert '1 input file(s) new' in pictures.problems(picture)[0]

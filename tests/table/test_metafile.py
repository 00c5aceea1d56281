"""The OpenMMLab model index: every config has an entry, every entry a config, the numbers are
those of the results tree (or the published ones, named), and the committed files are current."""
import os
import os.path as osp

import pytest
import yaml

from mmdet_imbalance.engine.run_record import RunRecord
from mmdet_imbalance.table import metafile, results
from mmdet_imbalance.table.published import expected_settings
from mmdet_imbalance.table.rows import ROWS, get_row
from mmdet_imbalance.testing import fake_work_dir

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def committed_models():
    """{config: model entry} of the committed model index, through its imports."""
    index = yaml.safe_load(open(osp.join(REPO, metafile.INDEX_FILE)))
    models = {}
    for path in index['Import']:
        content = yaml.safe_load(open(osp.join(REPO, path)))
        names = {c['Name'] for c in content['Collections']}
        for model in content['Models']:
            assert model['In Collection'] in names, (path, model['Name'])
            assert model['Config'] not in models, f'{model["Config"]} listed twice'
            models[model['Config']] = model
    return models


def test_every_config_has_an_entry_and_every_entry_a_config():
    models = committed_models()
    configs = metafile.config_names(osp.join(REPO, 'configs'))
    assert sorted(models) == configs
    for rel, model in models.items():
        assert osp.isfile(osp.join(REPO, rel))
        # mim selects models by their lower-cased name, and mim train finds configs by it.
        assert model['Name'] == metafile.config_stem(rel) == model['Name'].lower()


def test_every_row_belongs_to_a_method():
    for row in ROWS:
        assert row.name in metafile.method_of(row).row_names
    slugs = [m.slug for m in metafile.METHODS]
    assert len(slugs) == len(set(slugs))


def test_mim_reads_the_committed_index():
    from mim.commands.search import convert2df, filter_by_models
    from modelindex.load_model_index import load
    frame = convert2df(load(osp.join(REPO, metafile.INDEX_FILE)))
    assert set(frame.index) == {m['Name'] for m in committed_models().values()}
    assert {'coco/box_ap', 'hyper-parameters', 'model', 'training_data'} <= set(frame.columns)
    ap_loss = filter_by_models(frame, ['AP Loss'])
    assert set(ap_loss.index) >= {'retinanet_mini_ap-loss', 'retinanet_r50_fpn_1x_coco_ap-loss'}


def write_record(root, dataset, seed, key, settings, ap, seconds, memory=600.):
    work = osp.join(str(root), os.pardir, 'work', f'{dataset}-{seed}-{key}')
    fake_work_dir(work, settings, ap, seconds, memory=memory)
    results.export_run(work, results.run_dir(str(root), 'mini', dataset, seed, key))


def test_numbers_are_those_of_the_results_tree(tmp_path, monkeypatch):
    # Three rows keep the test short; the generator reads the registry the same way for all.
    monkeypatch.setattr(metafile, 'ROWS', tuple(get_row(k)
                                                for k in ('retinanet', 'ap-loss', 'dr-loss')))
    root = tmp_path / 'results'
    probe = RunRecord(settings=dict(precision='bf16'))

    def settings(key, seed):
        return expected_settings('mini', 'shapes', key, seed, probe)

    aps = {('retinanet', 0): 30.0, ('retinanet', 1): 31.0, ('ap-loss', 0): 33.04,
           ('ap-loss', 1): 35.0}
    for (key, seed), ap in aps.items():
        write_record(root, 'shapes', seed, key, settings(key, seed), ap,
                     seconds=0.2 if key == 'retinanet' else 0.3)
    # A record of another recipe version is stale: left out, never published.
    stale = dict(settings('dr-loss', 0), recipe_version=-1)
    write_record(root, 'shapes', 0, 'dr-loss', stale, 99.0, 0.3)

    files, left_out = metafile.build_index(str(root), REPO)
    assert len(left_out) == 1 and 'dr-loss' in left_out[0]
    models = {m['Name']: m for path, content in files.items() if path != metafile.INDEX_FILE
              for m in content['Models']}
    ap_loss = models['retinanet_mini_ap-loss']
    assert ap_loss['Results'] == [{'Task': 'Object Detection', 'Dataset': 'mini-shapes',
                                   'Metrics': {'box AP': round((33.04 + 35.0) / 2, 1)}}]
    meta = ap_loss['Metadata']
    assert meta['Seeds'] == 2 and meta['Baseline'] == 'retinanet_mini'
    assert meta['Training Time Ratio'] == pytest.approx(1.5)  # paired: 0.3 / 0.2 per seed
    assert meta['Training Speed'] == 'slower'
    assert meta['Training Time (s/iter)'] == pytest.approx(0.3)
    assert meta['Training Memory (GB)'] == round(600 / 1024, 2)
    assert meta['Hyper-parameters'] == 2
    assert models['retinanet_mini']['Results'][0]['Metrics'] == {'box AP': 30.5}
    assert 'Training Time Ratio' not in models['retinanet_mini']['Metadata']
    # No usable record: no number, and the entry says so.
    assert 'Results' not in models['retinanet_mini_dr-loss']
    assert models['retinanet_mini_dr-loss']['Metadata']['Result Source'] == 'not run'
    # COCO: the published number, with its source, until a COCO run exists.
    coco = models['retinanet_r50_fpn_1x_coco_ap-loss']
    assert coco['Results'][0]['Metrics'] == {'box AP': get_row('ap-loss').published.ap}
    assert coco['Metadata']['Result Source'].startswith('published (')
    # The paper's own recipe is another recipe: the row's numbers are not its own.
    variant = models['retinanet_r50_fpn_ssd512-100e_coco_ap-loss']
    assert 'Results' not in variant and variant['Metadata']['Result Source'] == 'not run'


@pytest.mark.slow
def test_committed_model_index_is_current():
    # Fails when rows.py, a config or results/ changed without `python tools/model_index.py`.
    problems = metafile.check(REPO, osp.join(REPO, 'results'))
    assert not problems, '\n'.join(problems + ['run: python tools/model_index.py'])


def test_configs_of_the_index_resolve_in_the_checkout():
    from mmdet_imbalance import config_paths
    for rel in committed_models():
        assert osp.samefile(config_paths.resolve(rel), osp.join(REPO, rel))
    name = 'mmdet_imbalance::mini/retinanet_mini.py'
    assert config_paths.resolve(name).endswith(os.sep.join(['mini', 'retinanet_mini.py']))
    with pytest.raises(FileNotFoundError, match='not found'):
        config_paths.resolve('configs/mini/no_such_row.py')

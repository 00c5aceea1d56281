"""The committed results tree is evidence: nothing reaches it or leaves it unannounced.

Regression tests of issue 22's results-tree cases (docs/reliability.md, "The results tree is
evidence"): a run of other settings is exported nowhere, a run of another precision goes to a tree
of its own, a damaged or self-contradicting record stops the build naming the file and the check
(the model index reads through the same checks), and the seeds a row's ΔAP pairs are accounted
for. Training is stood in for by ``fake_work_dir``, which writes what a finished run leaves.
"""
import json
import os
import os.path as osp
import re

import pytest

from mmdet_imbalance.table import plan, results, runs
from mmdet_imbalance.table.published import load_results
from mmdet_imbalance.table.rows import get_row
from mmdet_imbalance.table.verify import RecordError, verify_folder
from mmdet_imbalance.testing import fake_work_dir, table_request

SMOKE = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2']


def request(tmp_path, **kwargs):
    """A table request of this file's defaults (:func:`mmdet_imbalance.testing.table_request`)."""
    return table_request(tmp_path, **dict(dict(precision='fp32'), **kwargs))


def publish(args, key, seed, ap, precision=None, **kwargs):
    """A committed record of ``key`` / ``seed`` with the settings of the row's config."""
    work = osp.join(osp.dirname(args.results), 'published', f'{key}-{seed}-{precision}')
    settings = plan.requested_settings(args, get_row(key), seed, precision=precision)
    fake_work_dir(work, settings, ap, **kwargs)
    dest = results.run_dir(args.results, 'mini', args.dataset, seed, key)
    results.export_run(work, dest)
    return dest


def snapshot(root):
    return {osp.relpath(osp.join(d, f), root): open(osp.join(d, f), 'rb').read()
            for d, _, files in os.walk(root) for f in files}


def trainer(monkeypatch, ap=10.0, environment=None, world_size=1):
    """Stands in for train_run: the run finishes with the settings the request gives it."""
    trained = []

    def train(args, row, seed, progress, label):
        trained.append((row.key, seed))
        work_dir = args.run_dir(row, seed)
        record = fake_work_dir(work_dir, plan.requested_settings(args, row, seed), ap,
                               environment=environment)
        record.world_size = world_size
        record.write(work_dir)
        return 0, 'train_stdout.log', False

    monkeypatch.setattr(runs, 'train_run', train)
    return trained


@pytest.mark.parametrize('smoke', [dict(cfg_options=SMOKE), dict(max_iters=2)],
                         ids=['cfg-options', 'max-iters'])
def test_a_run_of_other_settings_is_exported_nowhere(tmp_path, monkeypatch, capsys, smoke):
    """Before: ``--cfg-options train_cfg.max_iters=2`` rewrote the committed record with a
    2-iteration run of AP 0.0, which --from-results then published under 'recipe v4'."""
    args = request(tmp_path, **smoke)
    publish(args, 'retinanet', 0, ap=55.3)
    before = snapshot(args.results)
    trainer(monkeypatch, ap=0.0)
    paths, failures = runs.run_table(args)
    assert not failures and snapshot(args.results) == before
    out = capsys.readouterr().out
    assert 'not exported: retinanet seed 0' in out and re.search(r'max_iters: 2 -> \d+', out)
    assert 'stays in its work dir only' in out
    # The request's own table is still the table of what it trained.
    row = json.load(open(paths['json']))['rows'][0]
    assert row['ap_mean'] == 0.0 and row['seeds'] == 1
    assert ', 2 iterations' in open(paths['md']).read()  # not passed off as the recipe's


def test_a_run_of_another_precision_goes_to_a_tree_of_its_own(tmp_path, monkeypatch, capsys):
    """Before: ``make demo`` on a bf16 CPU exported its bf16 baselines over the committed fp32
    records; the tree then held two precisions and --from-results refused the whole table."""
    published = request(tmp_path, precision='fp32')
    publish(published, 'retinanet', 0, ap=55.3, precision='fp32')
    before = snapshot(published.results)
    demo = request(tmp_path, precision='bf16')
    trainer(monkeypatch, ap=48.0)
    paths, failures = runs.run_table(demo)
    assert not failures
    assert json.load(open(paths['json']))['rows'][0]['ap_mean'] == pytest.approx(48.0)
    own = results.run_dir(osp.join(demo.results, 'bf16-cpu'), 'mini', 'shapes', 0, 'retinanet')
    assert f'exported to {own}, a tree of its own: this run is bf16-cpu' in capsys.readouterr().out
    assert snapshot(published.results) == dict(before, **{
        osp.relpath(osp.join(own, f), published.results): open(osp.join(own, f), 'rb').read()
        for f in os.listdir(own)})
    # Both trees still build their table, each of one precision.
    for root, ap in ((published.results, 55.3), (osp.join(demo.results, 'bf16-cpu'), 48.0)):
        args = request(tmp_path, from_results=True, results=root, work_dir=str(tmp_path / str(ap)))
        paths, _ = runs.run_table(args)
        assert json.load(open(paths['json']))['rows'][0]['ap_mean'] == pytest.approx(ap)


def test_a_distributed_run_goes_to_a_tree_of_its_own(tmp_path, monkeypatch, capsys):
    """Two CPU ranks each take the config's batch: the run trained twice the batch of the
    published single-process runs, under the same settings."""
    args = request(tmp_path)
    publish(args, 'retinanet', 0, ap=55.3)
    before = snapshot(args.results)
    trainer(monkeypatch, ap=50.0, world_size=2)
    runs.run_table(args)
    own = results.run_dir(osp.join(args.results, 'fp32-cpu-2ranks'), 'mini', 'shapes', 0,
                          'retinanet')
    assert f'exported to {own}, a tree of its own' in capsys.readouterr().out
    assert {k: v for k, v in snapshot(args.results).items()
            if not k.startswith('fp32-cpu-2ranks')} == before


def test_a_run_of_the_published_kind_replaces_its_seed(tmp_path, monkeypatch, capsys):
    """Adding seeds and refilling the tree under a new recipe still goes to the published tree:
    here a record of an older recipe version (not current) is replaced."""
    args = request(tmp_path)
    dest = results.run_dir(args.results, 'mini', 'shapes', 0, 'retinanet')
    old = plan.requested_settings(args, get_row('retinanet'), 0)
    fake_work_dir(str(tmp_path / 'old'), dict(old, recipe_version=-1), 30.0,
                  environment=dict(gpu='Some GPU'))
    results.export_run(str(tmp_path / 'old'), dest)
    trainer(monkeypatch, ap=50.0)
    runs.run_table(args)
    assert f'exported: retinanet seed 0 -> {dest}' in capsys.readouterr().out
    assert verify_folder(dest).ap == pytest.approx(50.0)


def _damage(folder, how):
    path = osp.join(folder, 'run.json')
    text = open(path).read()
    data = json.loads(text)
    if how == 'cut in half':
        open(path, 'w').write(text[:len(text) // 2])
        return 'not valid JSON'
    if how == 'schema 1':
        data['schema'] = 1
        expected = 'schema 1, where the run-record schema is 2'
    elif how == 'ap edited':
        data['ap'] = 99.9
        expected = "ap 99.9 differs from the last evaluation's ap"
    elif how == 'metric and evaluation edited':
        data['ap'] = data['evaluations'][-1]['ap'] = 99.9
        expected = "ap 99.9 is not 100 x its own final_metrics['coco/bbox_mAP']"
    elif how == 'eval.log edited':
        log = osp.join(folder, 'eval.log')
        edited = open(log).read().replace('coco/bbox_mAP: 0.6130', 'coco/bbox_mAP: 0.9990')
        open(log, 'w').write(edited)
        return 'last coco/bbox_mAP 0.999 differs from the record\'s 0.613'
    elif how == 'curve edited':
        curve = osp.join(folder, 'scalars.json')
        open(curve, 'a').write('{"loss": 0.1, "step": 10}\n')
        return 'scalars.json: its sha256 differs'
    elif how == 'run.json deleted':
        os.remove(path)
        return 'run.json: cannot be read'
    open(path, 'w').write(json.dumps(data))
    return expected


@pytest.mark.parametrize('how', ['cut in half', 'schema 1', 'ap edited',
                                 'metric and evaluation edited', 'eval.log edited',
                                 'curve edited', 'run.json deleted'])
def test_a_damaged_or_edited_record_stops_the_build_naming_it(tmp_path, how):
    """Before: a cut or schema-1 record was dropped without a word (AP Loss moved, the header
    still said 'Seeds: 0; 1; 2'), and an edited ``"ap": 99.9`` was published, also into the
    model index."""
    args = request(tmp_path, from_results=True, rows='ap-loss')
    for seed in (0, 1):
        publish(args, 'retinanet', seed, ap=50.0 + seed)
        publish(args, 'ap-loss', seed, ap=61.3 if seed == 0 else 59.9)
    damaged = results.run_dir(args.results, 'mini', 'shapes', 0, 'ap-loss')
    expected = _damage(damaged, how)
    with pytest.raises(SystemExit, match='error: .*' + expected.replace('(', r'\(')
                       .replace(')', r'\)').replace('[', r'\[').replace(']', r'\]')) as info:
        runs.run_table(args)
    assert damaged in str(info.value.code)
    # The model index reads the tree through the same checks.
    with pytest.raises(RecordError, match=expected.replace('(', r'\(').replace(')', r'\)')
                       .replace('[', r'\[').replace(']', r'\]')):
        load_results(args.results, 'mini', ['retinanet', 'ap-loss'])


def test_the_committed_tree_passes_verification(repo_root):
    """Every folder of the committed tree is whole and agrees with itself."""
    folders = [d for d, _, files in os.walk(osp.join(repo_root, 'results')) if 'run.json' in files]
    for folder in folders:
        verify_folder(folder)


def test_seed_accounting_names_a_missing_baseline_seed(tmp_path, capsys):
    """Before: with baseline seed 2 deleted the header still listed seeds 0-2, and table1.json
    gave AP Loss 'seeds: 3' while its ΔAP used 2 pairs."""
    args = request(tmp_path, from_results=True, rows='ap-loss')
    for seed in range(3):
        if seed < 2:
            publish(args, 'retinanet', seed, ap=50.0 + seed)
        publish(args, 'ap-loss', seed, ap=60.0 + seed)
    paths, _ = runs.run_table(args)
    out = capsys.readouterr().out
    assert ('warning: baseline retinanet has no finished seed 2, which ap-loss has: the ΔAP of '
            'ap-loss uses 2 pair(s) (seeds 0-1) of its 3 seed(s)') in out
    rows = {r['key']: r for r in json.load(open(paths['json']))['rows']}
    assert rows['ap-loss']['seeds'] == 3 and rows['ap-loss']['seed_list'] == [0, 1, 2]
    assert rows['ap-loss']['delta_ap_pairs'] == 2 and rows['ap-loss']['delta_ap_seeds'] == [0, 1]
    assert rows['ap-loss']['baseline_missing_seeds'] == [2]
    assert rows['retinanet']['seed_list'] == [0, 1]
    md = open(paths['md']).read()
    assert 'Seeds per row: 0-1 (retinanet); 0-2 (ap-loss); ΔAP pairs: ap-loss 2 of 3 (baseline ' \
           'lacks seed 2)' in md
    csv_row = open(paths['csv']).read().splitlines()[2]
    assert ',0 1 2,2,0 1,2,' in csv_row


def test_a_work_dir_whose_config_copy_was_rewritten_is_not_exported(tmp_path, monkeypatch,
                                                                     capsys):
    """Before: a run refused in the same work dir (through mim train, which builds its Runner
    before the hook refuses) rewrote mmengine's config copy, and the export shipped it."""
    args = request(tmp_path)
    trainer(monkeypatch, ap=50.0)
    original = runs.train_run

    def train_then_rewrite(args, row, seed, *rest):
        out = original(args, row, seed, *rest)
        copy = osp.join(args.run_dir(row, seed), 'retinanet_mini.py')
        with open(copy, 'w') as f:
            f.write('model = dict(type="another run")\n')
        return out

    monkeypatch.setattr(runs, 'train_run', train_then_rewrite)
    runs.run_table(args)
    out = capsys.readouterr().out
    assert 'not exported: ' in out and 'retinanet_mini.py: rewritten after the run ended' in out
    assert not osp.exists(results.run_dir(args.results, 'mini', 'shapes', 0, 'retinanet'))

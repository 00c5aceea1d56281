"""Bad data and bad checkpoints are refused or reported, never turned into a silently wrong result.

Each test's docstring names the behaviour it pins and what happened before (docs/reliability.md,
"Bad data is refused or reported").
"""
import copy
import functools
import importlib.util
import json
import logging
import os
import re
import subprocess
from types import SimpleNamespace

import pytest

from mmdet_imbalance.datasets import embedded, shapes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = ('circle', 'square', 'triangle')


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def log_records():
    """The records of mmengine's current logger, where ``print_log(logger='current')`` writes."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def _coco_file(path, annotations, categories=None):
    images = [dict(id=1, file_name='a.png', width=100, height=80),
              dict(id=2, file_name='b.png', width=100, height=80)]
    categories = categories or [dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    anns = [dict(dict(id=i + 1, iscrowd=0, area=100.0), **a) for i, a in enumerate(annotations)]
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=categories)))
    return path


def _checked(ann_file, **kwargs):
    from mmdet.registry import DATASETS
    return DATASETS.build(dict(type='CheckedCocoDataset', ann_file=str(ann_file),
                               data_prefix=dict(img=''), metainfo=dict(classes=CLASSES),
                               pipeline=[], **kwargs))


def test_dropped_boxes_are_counted_per_reason_and_reported_once(tmp_path, log_records):
    """Pins: every box mmdet's loader would drop is counted per reason and reported in one warning
    per annotation file that names it; a box with an infinite width is dropped too.

    Before: ``CocoDataset`` dropped negative-width, NaN, outside-the-image and unknown-category
    boxes without a word (image 2 below trained as pure background) and kept the +inf-wide box.
    """
    ann_file = _coco_file(tmp_path / 'train.json', [
        dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20]),           # kept
        dict(image_id=1, category_id=2, bbox=[10, 10, 1e308 * 10, 20]),   # +inf width
        dict(image_id=2, category_id=1, bbox=[30, 10, -20, 20]),          # negative width
        dict(image_id=2, category_id=1, bbox=[float('nan'), 10, 20, 20]),
        dict(image_id=2, category_id=3, bbox=[150, 10, 20, 20]),          # right of the image
        dict(image_id=2, category_id=9, bbox=[10, 10, 20, 20]),           # unknown category_id
    ])
    dataset = _checked(ann_file)
    boxes = [i['bbox'] for k in range(len(dataset)) for i in dataset.get_data_info(k)['instances']]
    assert boxes == [[10, 10, 30, 30]]
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0]
    assert str(ann_file) in message and 'dropped 5 of 6 boxes' in message
    for count, reason in ((2, 'non-finite or malformed coordinates'),
                          (1, 'non-positive width or height'), (1, 'outside the image'),
                          (1, "category_id not in the file's categories")):
        assert f'{count} {reason}' in message
    assert "id 9" in message and '1 images lost every box' in message
    _checked(ann_file, test_mode=True)  # the val/test loaders of the same file stay quiet
    assert len([r for r in log_records if r.levelno == logging.WARNING]) == 1


def test_misspelled_class_is_reported(tmp_path, log_records):
    """Pins: boxes whose category is not among the configured classes (a misspelled class in
    ``metainfo``) are reported with the category's name. Before: they were dropped in silence."""
    ann_file = _coco_file(tmp_path / 'val.json', [
        dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20]),
        dict(image_id=1, category_id=2, bbox=[40, 10, 20, 20])])
    from mmdet.registry import DATASETS
    DATASETS.build(dict(type='CheckedCocoDataset', ann_file=str(ann_file), data_prefix=dict(img=''),
                        metainfo=dict(classes=('circle', 'sqaure', 'triangle')), pipeline=[]))
    message, = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert "1 category not among the dataset's classes" in message and "'square'" in message


def _perfect_score(ann_file, checked=True):
    """``coco/bbox_mAP`` of predictions equal to every box the loader keeps, by ``CocoMetric``
    as a run's ``ImbalanceTableHook`` leaves it (or as mmdet ships it: ``checked=False``)."""
    import torch
    from mmdet.evaluation.metrics import CocoMetric
    from mmengine.config import Config
    from mmengine.runner import ValLoop

    from mmdet_imbalance.datasets.checked_coco import drop_reason
    from mmdet_imbalance.engine import ImbalanceTableHook
    metric = CocoMetric(ann_file=str(ann_file), metric='bbox')
    if checked:
        # A test run starting (mim test, tools/test.py): the hook meets the built val loop.
        loop = ValLoop.__new__(ValLoop)
        loop.evaluator = SimpleNamespace(metrics=[metric])
        runner = SimpleNamespace(
            _val_loop=loop, _test_loop=None, _train_loop=None, world_size=1,
            work_dir=str(ann_file.parent / 'work'), cfg=Config(dict(
                val_evaluator=dict(type='CocoMetric', ann_file=str(ann_file)))))
        ImbalanceTableHook().before_run(runner)
    metric.dataset_meta = dict(classes=CLASSES)
    coco = json.loads(ann_file.read_text())
    cat_ids = {c['id'] for c in coco['categories']}
    samples = []
    for image in coco['images']:
        kept = [a for a in coco['annotations'] if a['image_id'] == image['id']
                and drop_reason(a, image['width'], image['height'], cat_ids, cat_ids) is None]
        samples.append(dict(img_id=image['id'], ori_shape=(image['height'], image['width']),
                            pred_instances=dict(
                                bboxes=torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                                                     (a['bbox'] for a in kept)]).reshape(-1, 4),
                                scores=torch.ones(len(kept)),
                                labels=torch.tensor([a['category_id'] - 1 for a in kept]))))
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)['bbox_mAP']


def test_the_evaluation_scores_the_boxes_the_loader_keeps(tmp_path, log_records):
    """Pins: corrupt boxes of a val file (negative width, NaN, outside the image, unknown
    ``category_id``) leave the metric's ground truth as they leave the loader's, so perfect
    predictions of the intact boxes score 1.000, and the warning names the file. Before:
    ``CocoMetric`` read the raw file and scored them as ground truth no prediction can match
    (0.980 on ``trees`` val with 4 such boxes)."""
    intact = [dict(image_id=i, category_id=c, bbox=[5 + 30 * c, 5 + 20 * i, 20, 15])
              for i in (1, 2) for c in (1, 2, 3)]
    ann_file = _coco_file(tmp_path / 'val.json', intact + [
        dict(image_id=1, category_id=1, bbox=[30, 10, -20, 20]),
        dict(image_id=1, category_id=2, bbox=[float('nan'), 10, 20, 20]),
        dict(image_id=2, category_id=3, bbox=[150, 10, 20, 20]),
        dict(image_id=2, category_id=99, bbox=[10, 10, 20, 20])])
    assert _perfect_score(ann_file, checked=False) < 0.9
    assert _perfect_score(ann_file) == 1.0
    message, = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert str(ann_file) in message and 'leaves out 4 ground-truth boxes' in message


def test_a_clean_file_is_scored_as_pycocotools_scores_it(tmp_path):
    """A legal COCO box under 1 px stays ground truth, as in the official evaluation: no
    prediction matches it here, and both metrics give the same AP below 1."""
    ann_file = _coco_file(tmp_path / 'val.json', [
        dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20]),
        dict(image_id=2, category_id=2, bbox=[40, 10, 0.5, 20])])
    assert _perfect_score(ann_file) == _perfect_score(ann_file, checked=False) < 1.0


@pytest.mark.parametrize('content,error', [('', 'JSONDecodeError'),
                                           ('{"images": [], "annotations": [', 'JSONDecodeError'),
                                           ('{"images": [], "annotations": []}', 'categories')])
def test_unreadable_annotation_file_is_named(tmp_path, content, error):
    """Pins: an empty, truncated or category-less annotation file is a ValueError that names the
    file. Before: ``JSONDecodeError: Expecting value: line 1 column 1 (char 0)`` or
    ``KeyError: 'categories'``, naming no file."""
    ann_file = tmp_path / 'instances_train.json'
    ann_file.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(ann_file))) as info:
        _checked(ann_file)
    assert error in str(info.value) and 'Fix or regenerate' in str(info.value)


@pytest.fixture
def small_shapes(tmp_path, monkeypatch):
    """A 3 + 2 image ``shapes`` set prepared under tmp_path (the real one has 1,500 images)."""
    spec = dict(embedded.EMBEDDED['shapes'],
                build=functools.partial(shapes.build, num_train=3, num_val=2))
    monkeypatch.setitem(embedded.EMBEDDED, 'shapes', spec)
    root = tmp_path / 'shapes'
    embedded.prepare('shapes', str(root))
    return root


def _edit_first_box(root, split='train', **changes):
    path = root / 'annotations' / f'instances_{split}.json'
    coco = json.loads(path.read_text())
    coco['annotations'][0].update(changes)
    path.write_text(json.dumps(coco))
    return path


def _embedded_dataset(root, split='train'):
    from mmdet.registry import DATASETS
    return DATASETS.build(dict(type='EmbeddedCocoDataset', embedded='shapes',
                               data_root=f'{root}/', ann_file=f'annotations/instances_{split}.json',
                               data_prefix=dict(img='images/'), metainfo=dict(classes=CLASSES),
                               pipeline=[]))


def test_edited_embedded_annotations_are_refused_not_rebuilt(small_shapes):
    """Pins: an embedded annotation file edited after preparation (here a negative width) is
    refused by ``prepare`` and by ``EmbeddedCocoDataset``, with a message naming the file and the
    ``prepare_data.py --force`` command; the edit is kept until that command rebuilds the set.
    Before: the edited file was used, mmdet dropped the box in silence, and prepare_data.py still
    reported the manifest's box count and self-AP 1.0."""
    edited = _edit_first_box(small_shapes, bbox=[30, 10, -20, 20])
    command = f'python tools/prepare_data.py shapes --force --root {small_shapes.parent}'
    for use in (lambda: embedded.prepare('shapes', str(small_shapes)),
                lambda: _embedded_dataset(small_shapes)):
        with pytest.raises(RuntimeError, match=re.escape(str(edited))) as info:
            use()
        assert command in str(info.value) and 'never rebuilt silently' in str(info.value)
    assert json.loads(edited.read_text())['annotations'][0]['bbox'] == [30, 10, -20, 20]
    embedded.prepare('shapes', str(small_shapes), force=True)
    assert json.loads(edited.read_text())['annotations'][0]['bbox'][2] > 0
    assert len(_embedded_dataset(small_shapes)) == 3


def test_changed_image_folder_is_refused(small_shapes):
    """Pins: a missing or replaced image in an embedded set is refused, naming ``images/``.
    Before: mmdet failed only when the loader reached the image, mid-training."""
    (small_shapes / 'images' / 'val_00001.png').write_bytes(b'not a png')
    with pytest.raises(RuntimeError, match=re.escape(f'{small_shapes}/images/')):
        embedded.prepare('shapes', str(small_shapes))


def test_prepare_data_tool_refuses_edited_data(small_shapes, monkeypatch, capsys):
    """Pins: ``tools/prepare_data.py`` exits 2 with the message on one line instead of printing the
    manifest's counts and self-AP over an edited file. Before: it printed them and exited 0."""
    _edit_first_box(small_shapes, split='val', category_id=7)
    spec = importlib.util.spec_from_file_location('prepare_tool',
                                                  os.path.join(REPO, 'tools', 'prepare_data.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr('sys.argv', ['prepare_data.py', 'shapes', '--root',
                                     str(small_shapes.parent)])
    assert tool.cli.run(tool.main, 'prepare_data.py') == 2
    err = capsys.readouterr().err
    assert 'instances_val.json' in err and 'prepare_data.py shapes --force' in err
    assert len(err.strip().splitlines()) == 1


def _legacy(root):
    """Turn a prepared set into one prepared by the code before manifests kept hashes."""
    path = root / 'manifest.json'
    manifest = json.loads(path.read_text())
    manifest.pop('integrity', None)  # absent where the code predates it
    path.write_text(json.dumps(manifest))
    return manifest


@pytest.mark.parametrize('change', [None, dict(bbox=[1, 1, 30, 30]),
                                    dict(bbox=[float('nan'), 10, 20, 20])],
                         ids=['untouched', 'plausible edit', 'corrupted box'])
def test_manifest_without_its_integrity_block_is_refused(small_shapes, change):
    """Pins: a manifest whose integrity block was deleted is refused, naming it and the rebuild
    command, and nothing is re-hashed: the files cannot be told apart from edited ones. Before:
    its files were checked only for counts and box validity, then re-hashed, so a plausible
    edited box was accepted as genuine from then on."""
    _legacy(small_shapes)
    if change:
        _edit_first_box(small_shapes, **change)
    before = {p: p.read_bytes() for p in small_shapes.rglob('*.json')}
    command = f'python tools/prepare_data.py shapes --force --root {small_shapes.parent}'
    for use in (lambda: embedded.prepare('shapes', str(small_shapes)),
                lambda: _embedded_dataset(small_shapes)):
        with pytest.raises(RuntimeError, match=re.escape(str(small_shapes / 'manifest.json'))
                           + ".*has no 'integrity' block") as info:
            use()
        assert command in str(info.value)
    assert {p: p.read_bytes() for p in small_shapes.rglob('*.json')} == before
    embedded.prepare('shapes', str(small_shapes), force=True)
    assert 'integrity' in json.loads((small_shapes / 'manifest.json').read_text())


def test_malformed_manifest_is_named(small_shapes):
    """Pins: an empty manifest.json is an error naming it. Before: ``JSONDecodeError ... char 0``
    with no file name."""
    (small_shapes / 'manifest.json').write_text('')
    with pytest.raises(RuntimeError, match=re.escape(str(small_shapes / 'manifest.json'))):
        embedded.prepare('shapes', str(small_shapes))


def _test_tool():
    spec = importlib.util.spec_from_file_location('test_tool',
                                                  os.path.join(REPO, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture
def tested(monkeypatch):
    """Stands in for ``Runner.test`` (a full evaluation): records that it was reached."""
    from mmengine.runner import Runner
    calls = []
    monkeypatch.setattr(Runner, 'test', lambda self: calls.append(self.cfg.load_from))
    return calls


def _checkpoint(tmp_path, config):
    import torch

    from mmdet_imbalance.testing import build_detector
    path = tmp_path / f'{os.path.basename(config)}.pth'
    model = build_detector(os.path.join(REPO, 'configs', 'mini', config))
    torch.save(dict(meta={}, state_dict=copy.deepcopy(model.state_dict())), path)
    return str(path)


def test_checkpoint_of_another_model_is_refused(tmp_path, tested, capsys):
    """Pins: ``tools/test.py <RetinaNet config> <Faster R-CNN checkpoint>`` exits 2 before testing,
    naming the missing and unexpected key counts with examples. Before: mmengine loaded it
    non-strictly, warned mid-log, scored random weights (AP 0.000) and exited 0."""
    from mmdet_imbalance import cli
    ckpt = _checkpoint(tmp_path, 'faster-rcnn_mini.py')
    code = cli.run(_test_tool().main, 'test.py', [
        os.path.join(REPO, 'configs', 'mini', 'retinanet_mini.py'), ckpt, '--work-dir',
        str(tmp_path / 'wd')], errors=())
    assert code == 2 and not tested
    err = capsys.readouterr().err
    assert re.search(r'\d+ missing keys \(e\.g\. bbox_head\.', err), err
    assert re.search(r'\d+ unexpected keys \(e\.g\. [a-z_]+\.', err) and ckpt in err


def test_checkpoint_of_the_same_model_is_tested(tmp_path, tested):
    """The check lets a fitting checkpoint through (also with DDP's ``module.`` prefix)."""
    import torch
    ckpt = _checkpoint(tmp_path, 'retinanet_mini.py')
    _test_tool().main([os.path.join(REPO, 'configs', 'mini', 'retinanet_mini.py'), ckpt,
                       '--work-dir', str(tmp_path / 'wd')])
    assert tested == [ckpt]
    state = torch.load(ckpt, weights_only=False)['state_dict']
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()}), ckpt)
    from mmdet_imbalance.engine.checkpoint_loading import check_checkpoint_fits
    from mmdet_imbalance.testing import build_detector
    model = build_detector(os.path.join(REPO, 'configs', 'mini', 'retinanet_mini.py'))
    check_checkpoint_fits(model, ckpt)
    # torch's legacy format cannot be memory-mapped: the check reads it in full instead
    torch.save(dict(state_dict=state), ckpt, _use_new_zipfile_serialization=False)
    check_checkpoint_fits(model, ckpt)
    (tmp_path / 'broken.pth').write_bytes(b'')
    with pytest.raises(ValueError, match='broken.pth cannot be loaded'):
        check_checkpoint_fits(model, str(tmp_path / 'broken.pth'))


@pytest.mark.parametrize('args', [[], ['configs/table1/retinanet_r50_fpn_1x_coco.py'],
                                  ['configs/table1/retinanet_r50_fpn_1x_coco.py', 'eight']])
def test_dist_train_without_arguments_prints_usage(args):
    """Pins: ``bash tools/dist_train.sh`` with missing or bad arguments prints a usage line and
    exits 2 before starting anything. Before: ``$1: unbound variable`` (or torchrun's error)."""
    done = subprocess.run(['bash', os.path.join(REPO, 'tools', 'dist_train.sh'), *args],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith('usage: bash tools/dist_train.sh CONFIG GPUS')
    assert 'unbound' not in done.stderr

"""Building a checked mmengine Runner config from a row config plus command-line choices.

Shared by ``tools/train.py``, ``tools/test.py`` and the Table 1 tool, so every entry point applies
the embedded-dataset switch, the COCO data root and the input checks the same way, and fails with
a message that names the file or key at fault before any model is built.
"""
import os
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.config import Config, ConfigDict, DictAction

from mmdet_imbalance import config_paths
from mmdet_imbalance.datasets.wrappers import innermost_dataset

MINI_DATASET_DIR = osp.join(config_paths.configs_root(), 'mini', '_base_', 'datasets')
#: What a COCO 2017 root holds.
COCO_FILES = ('annotations/instances_train2017.json', 'annotations/instances_val2017.json',
              'train2017', 'val2017')
DATA_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
             'test_evaluator')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options`` that rejects an item without ``key=value``
    with a usage error naming it, instead of a traceback from inside argparse."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [v for v in values if '=' not in v or v.startswith('=')]
        if bad:
            parser.error(f'{option_string} {" ".join(bad)}: each option must be key=value, '
                         'e.g. train_cfg.max_iters=20')
        super().__call__(parser, namespace, values, option_string)


def parse_cfg_options(options) -> Dict[str, Any]:
    """``key=value`` strings as ``--cfg-options`` parses them (mmengine's ``DictAction``)."""
    parsed: Dict[str, Any] = {}
    for option in options:
        key, value = option.split('=', maxsplit=1)
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


def add_precision_argument(parser) -> None:
    """``--precision``, as every training entry point takes it."""
    from mmdet_imbalance.engine.precision import PRECISIONS
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help='auto: bf16 autocast on CUDA and on CPUs with native bfloat16 whose '
                             'bf16 matrix product is at least twice as fast as fp32, fp32 '
                             'elsewhere (default)')


def check_work_dir(work_dir: str) -> str:
    """Create ``work_dir`` (or fail at once, in one line, naming what is in the way)."""
    path = osp.abspath(work_dir)
    blocker = path
    while not osp.exists(blocker):
        blocker = osp.dirname(blocker)
    if not osp.isdir(blocker):
        raise NotADirectoryError(f'--work-dir {work_dir}: {blocker} is a file, not a folder')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise PermissionError(f'--work-dir {work_dir}: cannot create {path} '
                              f'({err.strerror or err})') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f'--work-dir {work_dir}: {path} is not writable')
    return path


def refuse_other_runs(cfg: Config) -> None:
    """The work-dir guard of ``ImbalanceTableHook``, applied before the Runner exists: mmengine
    writes its config copy and a log folder into the work dir while the Runner is built, so a run
    that the hook refuses would already have changed the folder it was refused. Raises
    RuntimeError naming the work dir and the differing settings, or the process training it."""
    from mmdet_imbalance.engine.run_record import (WorkDirLock, read_record, run_settings,
                                                   settings_diff)
    record = read_record(cfg.work_dir)
    if record is not None and not cfg.get('overwrite_work_dir', False):
        diff = settings_diff(record.settings, run_settings(cfg))
        if diff:
            raise RuntimeError(f'{cfg.work_dir} holds a {record.status} run of other settings ('
                               + '; '.join(diff) + '); nothing was written there. Train into '
                               'another --work-dir, or pass --overwrite to replace it.')
    # One process per run: ranks of a distributed run start together, and rank 0's hook holds
    # the lock while the others would check it.
    if cfg.get('launcher', 'none') == 'none':
        lock = WorkDirLock(cfg.work_dir)
        lock.acquire()
        lock.release()


def embedded_data_roots(cfg: Config):
    """Absolute folders of the embedded datasets the config trains and evaluates on (prepared
    there on first use), so that the tools can say where they go."""
    roots = []
    for key in ('train_dataloader', 'val_dataloader'):
        dataset = _dataset_of(cfg[key]) if cfg.get(key) else {}
        if dataset.get('type') == 'EmbeddedCocoDataset':
            root = osp.abspath(dataset.get('data_root') or osp.join('data', dataset.embedded))
            if root not in roots:
                roots.append(root)
    return roots


def load_config(path: str) -> Config:
    """A row config by path, or by name inside the package's configs (``mini/retinanet_mini.py``,
    ``mmdet_imbalance::mini/retinanet_mini.py``)."""
    if not osp.isfile(path):
        try:
            path = config_paths.resolve(path)
        except FileNotFoundError:
            raise FileNotFoundError(f'config file not found: {path}') from None
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        # mmengine's message names no file when the error is in the config itself.
        where = f', line {err.lineno}' if err.lineno and str(path) not in str(err) else ''
        raise SyntaxError(f'{path}: syntax errors in config file ({err.msg or err}{where})') \
            from err


def mini_dataset_names():
    if not osp.isdir(MINI_DATASET_DIR):
        return []
    return sorted(f[:-3] for f in os.listdir(MINI_DATASET_DIR) if f.endswith('.py'))


def set_num_classes(node: Any, num_classes: int) -> int:
    """Set every ``num_classes`` key in a (nested) model config; returns how many were set."""
    count = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes':
                node[key] = num_classes
                count += 1
            else:
                count += set_num_classes(value, num_classes)
    elif isinstance(node, (list, tuple)):
        count += sum(set_num_classes(v, num_classes) for v in node)
    return count


def use_mini_dataset(cfg: Config, name: str) -> Config:
    """Switch a mini config to another embedded dataset (``configs/mini/_base_/datasets/*.py``).

    The dataloaders and evaluators are replaced whole, and every ``num_classes`` of the model
    follows the new dataset's classes, so one row config serves every embedded dataset.
    """
    names = mini_dataset_names()
    if name not in names:
        raise ValueError(f"--dataset '{name}' is not an embedded dataset; choose one of {names} "
                         f'(files in {MINI_DATASET_DIR})')
    dataset_type = cfg.get('train_dataloader', {}).get('dataset', {}).get('type')
    if dataset_type != 'EmbeddedCocoDataset':
        raise ValueError(f'--dataset applies to mini configs on embedded data; {cfg.filename} '
                         f'trains on {dataset_type!r}. Use --data-root for COCO configs.')
    data_cfg = Config.fromfile(osp.join(MINI_DATASET_DIR, f'{name}.py'))
    for key in DATA_KEYS:
        cfg[key] = data_cfg[key]
    set_num_classes(cfg.model, len(data_cfg.metainfo['classes']))
    return cfg


def missing_coco_files(data_root: str):
    """The files of a COCO 2017 root that ``data_root`` lacks."""
    return [p for p in COCO_FILES if not osp.exists(osp.join(data_root, p))]


def use_coco_root(cfg: Config, data_root: str) -> Config:
    """Point a COCO config's datasets and evaluators at ``data_root`` and check the files exist."""
    data_root = data_root.rstrip('/') + '/'
    missing = missing_coco_files(data_root)
    if missing:
        raise FileNotFoundError(
            f'--data-root {data_root} is not a COCO 2017 root: missing {missing}. It must hold '
            'annotations/instances_{train,val}2017.json and the train2017/ and val2017/ folders.')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        _dataset_of(cfg[key]).data_root = data_root
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key) and 'ann_file' in cfg[key]:
            cfg[key].ann_file = osp.join(data_root, osp.relpath(
                cfg[key].ann_file, cfg[key].ann_file.split('annotations/')[0]))
    return cfg


def _dataset_of(loader: ConfigDict) -> ConfigDict:
    return innermost_dataset(loader.dataset)


def check_data_files(cfg: Config) -> None:
    """Fail early, naming the config key and path, when a non-embedded dataset lacks its files."""
    for key in ('train_dataloader', 'val_dataloader'):
        if not cfg.get(key):
            continue
        dataset = _dataset_of(cfg[key])
        if dataset.get('type') == 'EmbeddedCocoDataset':
            continue  # prepared on first use
        root = dataset.get('data_root', '') or ''
        ann = osp.join(root, dataset.get('ann_file', ''))
        if not osp.isfile(ann):
            raise FileNotFoundError(
                f'{key}.dataset.ann_file: {ann} does not exist (config {cfg.filename}). For the '
                'COCO rows pass --data-root /path/to/coco; for CPU runs use configs/mini/.')
        img_dir = osp.join(root, (dataset.get('data_prefix') or {}).get('img', ''))
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'{key}.dataset.data_prefix.img: folder {img_dir} does not '
                                    f'exist (config {cfg.filename}).')


# Losses defined on per-class sigmoid logits (a binary decision per class, no background column).
SIGMOID_ONLY_LOSSES = ('FocalLoss', 'GHMC', 'APLoss', 'DRLoss', 'ResObjLoss')
# Heads whose classifier is a softmax over C+1 classes unless their loss says use_sigmoid=True.
SOFTMAX_HEADS = ('BBoxHead', 'ConvFCBBoxHead', 'Shared2FCBBoxHead', 'Shared4Conv1FCBBoxHead',
                 'SamplingFreeBBoxHead')


def check_loss_head_compat(node: Any, path: str = 'model') -> None:
    """Reject a sigmoid-only classification loss on a softmax head, naming the config key.

    Such a config would otherwise build, then fail deep inside the loss with a shape error (or,
    worse, train on the wrong logits).
    """
    if isinstance(node, dict):
        loss = node.get('loss_cls')
        if isinstance(loss, dict) and loss.get('type') in SIGMOID_ONLY_LOSSES:
            softmax_head = node.get('type') in SOFTMAX_HEADS
            if softmax_head or loss.get('use_sigmoid') is False:
                raise ValueError(
                    f"{path}.loss_cls: {loss['type']} expects per-class sigmoid logits, but "
                    f"{path} ({node.get('type')}) "
                    + ('is a softmax classifier. ' if softmax_head else 'sets use_sigmoid=False. ')
                    + 'Use it in a sigmoid head (e.g. RetinaHead) or pick a softmax loss such as '
                    "CrossEntropyLoss(use_sigmoid=False).")
        for key, value in node.items():
            check_loss_head_compat(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            check_loss_head_compat(value, f'{path}[{index}]')


def build_runner_config(config: str,
                        work_dir: Optional[str] = None,
                        dataset: Optional[str] = None,
                        data_root: Optional[str] = None,
                        cfg_options: Optional[Dict[str, Any]] = None,
                        launcher: str = 'none',
                        resume: Optional[str] = None,
                        precision: Optional[str] = None,
                        auto_scale_lr: bool = False,
                        overwrite: bool = False,
                        check_files: bool = True) -> Config:
    """The Runner config for ``config`` with the command-line choices applied and checked.

    ``precision`` is 'auto', 'fp32' or 'bf16' (:func:`~mmdet_imbalance.engine.resolve_precision`);
    None leaves the config's own optim wrapper and loops as they are.
    """
    import mmdet_imbalance  # noqa: F401  (registers modules before the config is built)
    cfg = load_config(config)
    if dataset:
        use_mini_dataset(cfg, dataset)
    if data_root:
        use_coco_root(cfg, data_root)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_loss_head_compat(cfg.model)
    if check_files:
        check_data_files(cfg)
    if overwrite:
        cfg.overwrite_work_dir = True
    cfg.launcher = launcher
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        # The dataset is part of the default folder, so that one config trained on two embedded
        # datasets keeps two runs instead of overwriting one with the other.
        stem = osp.splitext(osp.basename(config))[0]
        embedded = _dataset_of(cfg.train_dataloader).get('embedded') \
            if cfg.get('train_dataloader') else None
        cfg.work_dir = osp.join('./work_dirs', f'{stem}_{embedded}' if embedded else stem)
    if precision == 'auto' and resume:
        # A resumed run keeps the precision it was started in: ``auto`` measures the machine
        # again, and near the bf16 threshold two measurements can choose differently.
        from mmdet_imbalance.engine.run_record import read_record
        record = read_record(cfg.work_dir)
        precision = ((record.settings or {}).get('precision') if record else None) or precision
    if precision is not None:
        from mmdet_imbalance.engine.precision import use_precision
        use_precision(cfg, precision)
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError(f'{config}: --auto-scale-lr needs auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume {resume}: no such checkpoint')
        cfg.resume, cfg.load_from = True, resume
    return cfg

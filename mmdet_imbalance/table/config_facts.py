"""What the model index says of a row config: its training data, schedule, architecture,
training techniques and the source of its method's code (:mod:`.metafile`)."""
import os
import os.path as osp
from typing import Dict, List, Optional

from .rows import Row

MMDET_CODE_URL = 'https://github.com/open-mmlab/mmdetection/blob/v{version}/{path}'

_CONFIGS: Dict[str, object] = {}


def cached_config(rel: str):
    """The merged config of a repository-relative config name (cached: loading is slow)."""
    if rel not in _CONFIGS:
        from mmdet_imbalance.config_builder import load_config
        _CONFIGS[rel] = load_config(rel)
    return _CONFIGS[rel]


def _type_name(node) -> Optional[str]:
    kind = node.get('type') if hasattr(node, 'get') else None
    return kind if isinstance(kind, str) else getattr(kind, '__name__', None)


def _method_nodes(row: Row, cfg) -> List[dict]:
    from .hyperparams import get_by_dotted_key
    return [get_by_dotted_key(cfg, key) for key in row.method_cfg_keys]


def training_data(cfg) -> str:
    """'COCO' or the embedded dataset a config trains on by default."""
    from mmdet_imbalance.datasets.wrappers import train_dataset
    dataset = train_dataset(cfg)
    if dataset.get('type') == 'EmbeddedCocoDataset':
        return dataset.get('embedded')
    return 'COCO'


def schedule(cfg) -> Dict[str, int]:
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' in train_cfg:
        return {'Epochs': int(train_cfg['max_epochs'])}
    return {'Iterations': int(train_cfg['max_iters'])}


def architecture(row: Row, cfg) -> List[str]:
    model = cfg.model
    names = [_type_name(model), _type_name(model.get('backbone') or {}),
             _type_name(model.get('neck') or {})]
    names += [_type_name(node) for node in _method_nodes(row, cfg)]
    return [n for n in names if n]


def training_techniques(cfg) -> List[str]:
    wrapper = cfg.get('optim_wrapper') or {}
    optimizer = wrapper.get('optimizer') or {}
    kind = _type_name(optimizer)
    out = ['SGD with Momentum' if kind == 'SGD' and optimizer.get('momentum') else kind]
    if optimizer.get('weight_decay'):
        out.append('Weight Decay')
    if wrapper.get('clip_grad'):
        out.append('Gradient Clipping')
    return [t for t in out if t]


def code_of(method, row: Row, cfg) -> Dict[str, str]:
    """The source file of the method's class (``method.code``, or the row's method modules): this
    package's, by repository path, or mmdet's, by its GitHub URL at the installed version."""
    import inspect

    import mmdet

    from mmdet_imbalance.version import __version__
    from .hyperparams import resolve_type
    kinds = [_type_name(node) for node in _method_nodes(row, cfg)]
    classes = [resolve_type(k) for k in ([method.code] if method.code else kinds) if k]
    ours = [c for c in classes if c.__module__.startswith('mmdet_imbalance.')]
    cls = (ours or classes)[-1]
    path = inspect.getsourcefile(cls)
    package = cls.__module__.split('.')[0]
    root = osp.dirname(osp.dirname(osp.abspath(__import__(package).__file__)))
    rel = osp.relpath(path, root).replace(os.sep, '/')
    if package == 'mmdet':
        return {'URL': MMDET_CODE_URL.format(version=mmdet.__version__, path=rel),
                'Version': f'v{mmdet.__version__}'}
    return {'URL': rel, 'Version': f'v{__version__}'}

"""Count the hyper-parameters a Table 1 row's method introduces, from code.

The review's "Parameters" column is a number typed by its authors. Here it is derived from the
row's merged config and the constructor signatures of the modules it names, so that it cannot
drift from the code. The rule, applied to each of the row's ``method_cfg_keys``:

1. Take the config dict found at that dotted key of the row's merged config (a missing key is an
   error: the registry and the config disagree).
2. A dict with a ``type`` is a module. Look the class up in mmdet's registries (``MODELS``, then
   ``TASK_UTILS``) and list its constructor parameters with :func:`inspect.signature`, following
   ``**kwargs`` up the class hierarchy (``CombinedSampler(**kwargs)`` passes ``num`` and
   ``pos_fraction`` to ``BaseSampler``). Keys the config sets that no signature names are added
   (they reach the module through ``**kwargs``).

   * A stock mmdet module (and any module that does not derive from one) counts all of them.
   * A module of this package that subclasses stock mmdet modules counts only the parameters
     its stock ancestors do not already take: its own, non-stock keyword arguments. A
     ``RetinaHead`` subclass is therefore not charged for ``stacked_convs`` or its anchor
     generator, which the baseline has too.
3. Of those parameters, one counts when it is **declared numeric**: its signature default is a
   number or a bool (or a list/tuple of numbers), or it has no default (or is not in the
   signature at all) and the config sets it to one. The signature, the one place a method
   declares its hyper-parameters, decides, not the value a particular config happens to set:
   an argument defaulting to None or to a string selects a mode or is derived by the module
   (ResObj's ``cls_prior_prob=None`` -> 1/C, Sampling-Free's ``prior_prob='auto'`` -> from the
   dataset statistics), so it is not counted even where a config sets a number, and a row counts
   the same on every benchmark. Left out too: the :data:`BOOKKEEPING` arguments shared by every
   mmdet loss, sampler or head, and required arguments the caller supplies at build time (no
   default and absent from the config).
4. A value that is itself a dict with a ``type`` is a nested module: recurse, except for the
   parameters the parent passes down to it (a nested module's parameter with the same name as one
   of its parent's is the parent's, counted once there). A plain dict without ``type`` (e.g.
   ``train_cfg.rcnn.isr=dict(k=2, bias=0)``) counts its numeric keys, recursively.

Rows where this rule and the review disagree say why in ``Row.params_deviation``
(:mod:`mmdet_imbalance.table.rows`); ``docs/table1-method.md`` lists them.
"""
import inspect
from dataclasses import dataclass
from numbers import Number
from typing import Any, Dict, FrozenSet, List, Tuple

#: Constructor arguments shared by mmdet's losses, samplers and heads that are plumbing, not
#: method hyper-parameters: how a loss is weighted, reduced or activated, what a module is wired
#: to, how it is initialised, and the sampler options every mmdet sampler has.
BOOKKEEPING: FrozenSet[str] = frozenset({
    # losses
    'loss_weight', 'reduction', 'use_sigmoid', 'use_mask', 'activated', 'avg_non_ignore',
    'class_weight', 'ignore_index', 'loss_name', 'eps',
    # samplers
    'context', 'neg_pos_ub', 'add_gt_as_proposals', 'loss_key',
    # heads and modules
    'init_cfg', 'num_classes', 'in_channels', 'train_cfg', 'test_cfg', 'conv_cfg', 'norm_cfg',
    'act_cfg', 'feat_channels', 'stacked_convs',
})

_SKIP_KEYS = frozenset({'type', '_scope_', '_delete_'})


@dataclass(frozen=True)
class HyperParam:
    """One counted hyper-parameter: where it lives, which module takes it, and its value."""
    key: str
    name: str
    module: str
    value: Any


@dataclass(frozen=True)
class HyperParamCount:
    """The hyper-parameters found for one row."""
    row: str
    params: Tuple[HyperParam, ...]

    @property
    def count(self) -> int:
        return len(self.params)

    def to_dict(self) -> dict:
        return dict(row=self.row, count=self.count,
                    params=[dict(key=p.key, name=p.name, module=p.module, value=_jsonable(p.value))
                            for p in self.params])


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def get_by_dotted_key(cfg, key: str):
    """``cfg['a']['b']['c']`` for ``key='a.b.c'``; a KeyError names the missing part."""
    node = cfg
    walked = []
    for part in key.split('.'):
        walked.append(part)
        # mmengine's Config is no dict subclass but supports ``in`` and ``[]`` like one.
        if not hasattr(node, '__getitem__') or isinstance(node, (str, list, tuple)) \
                or part not in node:
            raise KeyError(f'config has no key {".".join(walked)!r} (looking up {key!r})')
        node = node[part]
    return node


def resolve_type(type_name):
    """The class a config ``type`` names, from mmdet's MODELS or TASK_UTILS registries."""
    if inspect.isclass(type_name):
        return type_name
    if not isinstance(type_name, str):
        raise TypeError(f'config type must be a class or a str, got {type_name!r}')
    from mmdet.registry import MODELS, TASK_UTILS
    import mmdet_imbalance  # noqa: F401  (registers this package's modules)
    for registry in (MODELS, TASK_UTILS):
        cls = registry.get(type_name)
        if cls is not None:
            return cls
    raise KeyError(f'{type_name!r} is not registered in mmdet\'s MODELS or TASK_UTILS')


def _is_stock(cls) -> bool:
    return cls.__module__.split('.')[0] == 'mmdet'


def _is_ours(cls) -> bool:
    return cls.__module__.split('.')[0] == 'mmdet_imbalance'


def constructor_params(cls) -> Dict[str, Any]:
    """Constructor parameters of ``cls`` (name -> default, ``inspect.Parameter.empty`` when
    required), following ``**kwargs`` to the base classes' constructors."""
    params: Dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object:
            break
        signature = inspect.signature(init)
        has_var_kw = False
        for name, p in list(signature.parameters.items())[1:]:
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
            elif p.kind is not p.VAR_POSITIONAL:
                params.setdefault(name, p.default)
        if not has_var_kw:
            break
    return params


def stock_params(cls) -> FrozenSet[str]:
    """Every constructor parameter name of the stock mmdet classes ``cls`` derives from."""
    names = set()
    for klass in cls.__mro__[1:]:
        if _is_stock(klass) and '__init__' in klass.__dict__:
            names.update(constructor_params(klass))
    return frozenset(names)


def _is_numeric(value) -> bool:
    if isinstance(value, (bool, Number)):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(_is_numeric(v) for v in value)
    return False


def count_module(cfg: dict, key: str, inherited: FrozenSet[str] = frozenset()) -> List[HyperParam]:
    """The hyper-parameters of the (possibly nested) module or plain dict ``cfg`` found at
    ``key``, by the rule in the module docstring. ``inherited`` names the parameters a parent
    module passes down."""
    if not isinstance(cfg, dict):
        raise TypeError(f'config key {key!r} holds {type(cfg).__name__} {cfg!r}, not a dict')
    if 'type' not in cfg:
        found = []
        for name, value in cfg.items():
            if name in _SKIP_KEYS or name in BOOKKEEPING or name in inherited:
                continue
            if isinstance(value, dict):
                found.extend(count_module(value, f'{key}.{name}'))
            elif _is_numeric(value):
                found.append(HyperParam(f'{key}.{name}', name, 'dict', value))
        return found
    cls = resolve_type(cfg['type'])
    params = constructor_params(cls)
    for name in cfg:
        if name not in _SKIP_KEYS:
            params.setdefault(name, inspect.Parameter.empty)
    excluded = set(BOOKKEEPING) | set(inherited)
    if _is_ours(cls):
        excluded |= stock_params(cls)
    found = []
    for name, default in params.items():
        if name in excluded:
            continue
        value = cfg.get(name, default)
        if value is inspect.Parameter.empty:
            continue
        if isinstance(value, dict) and 'type' in value:
            found.extend(count_module(value, f'{key}.{name}', frozenset(params)))
        elif isinstance(value, dict):
            found.extend(count_module(value, f'{key}.{name}'))
        elif _is_numeric(default if default is not inspect.Parameter.empty else value):
            found.append(HyperParam(f'{key}.{name}', name, cls.__name__, value))
    return found


def count_hyperparams(row, cfg) -> HyperParamCount:
    """Count ``row``'s hyper-parameters in its merged config ``cfg`` (an mmengine Config or dict).

    A parameter reached from two of the row's keys (a key nested in another) is counted once.
    """
    seen = {}
    for key in row.method_cfg_keys:
        node = get_by_dotted_key(cfg, key)
        for param in count_module(node, key):
            seen.setdefault(param.key, param)
    return HyperParamCount(row=row.key, params=tuple(seen.values()))

"""Flatten merged mmengine configs to dotted keys and diff them: the delta a Table 1 row adds.

Every row is a thin child of a baseline config, so the honest description of a row is the set of
leaf keys whose merged value differs from the baseline's. The tests assert that set is exactly the
heuristic under study, and the table tool prints it next to each row.

Flattening rules (chosen so that a delta reads like the config line that caused it):

* dicts recurse; the key path is joined with ``.`` (``model.train_cfg.rcnn.sampler.type``);
* lists and tuples that contain a dict, list or tuple recurse with the element index as the key
  (``custom_hooks.0.type``), because config lists of dicts (necks, hooks, pipelines, schedulers) are
  edited element by element;
* lists and tuples of plain values (``in_channels``, ``milestones``) stay one leaf, as a tuple, so a
  changed list is one entry of the delta instead of one entry per number;
* empty dicts and empty lists are leaves (``{}`` / ``()``), so that their presence still counts;
* a ``_delete_`` marker is dropped. Merged configs no longer contain it (mmengine consumes it
  while merging: the replaced dict's old keys are simply gone), but a raw, unmerged delta may.
  Either way a ``_delete_``-replaced dict shows up in :func:`config_delta` as its removed keys
  (new value :data:`MISSING`), its added keys (old value :data:`MISSING`) and its changed keys.
"""
import enum
from typing import Any, Dict, Iterable, Mapping, Tuple

__all__ = ['MISSING', 'config_delta', 'flatten_config']

DELETE_KEY = '_delete_'


class _Missing(enum.Enum):
    """Sentinel for a key present in only one of the two configs of a delta (an enum member: one
    instance, a readable repr, and it survives pickling and deep copies as itself)."""
    MISSING = '<missing>'

    def __repr__(self) -> str:
        return self.value


MISSING = _Missing.MISSING


def _as_mapping(cfg: Any, name: str) -> Mapping:
    """Return ``cfg`` as a plain mapping: mmengine ``Config``/``ConfigDict`` or ``dict``."""
    to_dict = getattr(cfg, 'to_dict', None)
    if callable(to_dict) and not isinstance(cfg, dict):
        cfg = to_dict()
    if not isinstance(cfg, Mapping):
        raise TypeError(f'{name} must be an mmengine Config, ConfigDict or dict, '
                        f'got {type(cfg).__name__}')
    return cfg


def _is_container(value: Any) -> bool:
    return isinstance(value, (Mapping, list, tuple))


def _flatten_into(out: Dict[str, Any], prefix: str, value: Any) -> None:
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items() if k != DELETE_KEY]
        if not items:
            out[prefix] = {}
        for key, child in items:
            if '.' in key:
                raise ValueError(f'config key {key!r} under {prefix or "<root>"!r} contains a '
                                 f"'.', which would make its dotted path ambiguous")
            _flatten_into(out, f'{prefix}.{key}' if prefix else key, child)
    elif isinstance(value, (list, tuple)) and any(_is_container(v) for v in value):
        for index, child in enumerate(value):
            _flatten_into(out, f'{prefix}.{index}' if prefix else str(index), child)
    elif isinstance(value, (list, tuple)):
        out[prefix] = tuple(value)
    else:
        out[prefix] = value


def _same(old: Any, new: Any) -> bool:
    """Leaf equality as a config reader means it: ``0 == 0.``, but ``True != 1``."""
    if isinstance(old, bool) != isinstance(new, bool):
        return False
    try:
        return bool(old == new)
    except (TypeError, ValueError, RuntimeError):
        # array-like leaves compare element-wise; fall back to their printed form
        return repr(old) == repr(new)


def flatten_config(cfg: Any) -> Dict[str, Any]:
    """Flatten a (merged) config to ``{'dotted.key.path': leaf_value}``.

    Args:
        cfg: an mmengine ``Config``, ``ConfigDict`` or plain ``dict``.

    Returns:
        One entry per leaf, following the rules in the module docstring.
    """
    return _flatten(cfg, 'cfg')


def _flatten(cfg: Any, name: str) -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    _flatten_into(flat, '', _as_mapping(cfg, name))
    flat.pop('', None)
    return flat


def config_delta(
    row_cfg: Any,
    base_cfg: Any,
    ignore: Iterable[str] = (),
    skip_names: Iterable[str] = ('_scope_', )
) -> Dict[str, Tuple[Any, Any]]:
    """The leaves where ``row_cfg`` differs from ``base_cfg``: ``{key: (base_value, row_value)}``.

    A key present in only one config has :data:`MISSING` on the other side, so a dict replaced
    with ``_delete_=True`` yields its removed, added and changed keys.

    Args:
        row_cfg: the row's merged config (``Config``, ``ConfigDict`` or ``dict``).
        base_cfg: the baseline's merged config.
        ignore: dotted key prefixes to leave out (``'work_dir'`` drops ``work_dir`` and
            ``work_dir.*``), e.g. for bookkeeping keys that differ between any two files.
        skip_names: leaf names to leave out wherever they occur. By default ``_scope_``, which
            mmengine stamps on dicts inherited through ``mmdet::`` bases (and not on configs
            loaded with ``mmengine.hub.get_config``); it names a registry, not a setting.

    Returns:
        The delta, sorted by key.
    """
    for name, value in (('ignore', ignore), ('skip_names', skip_names)):
        if isinstance(value, str):
            raise TypeError(f'{name} must be an iterable of strings, not the string {value!r}')
    prefixes, names = tuple(ignore), frozenset(skip_names)
    row, base = _flatten(row_cfg, 'row_cfg'), _flatten(base_cfg, 'base_cfg')

    def ignored(key: str) -> bool:
        return (key.rsplit('.', 1)[-1] in names
                or any(key == p or key.startswith(p + '.') for p in prefixes))

    delta = {}
    for key in sorted(set(row) | set(base)):
        old, new = base.get(key, MISSING), row.get(key, MISSING)
        if ignored(key) or _same(old, new):
            continue
        delta[key] = (old, new)
    return delta

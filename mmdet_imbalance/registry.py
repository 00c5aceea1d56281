"""Scope aliases: one empty child of each mmdet registry, with the scope ``mmdet_imbalance``.

Every module of this package registers into mmdet's own registries (see the package docstring);
nothing is ever registered here. These children exist for one reason: a config that inherits a
row through ``_base_ = 'mmdet_imbalance::mini/<row>.py'`` gets ``_scope_='mmdet_imbalance'`` on
each inherited dict that had no scope yet (mmengine's ``Config._dict_to_config_dict``), and
mmengine builds such a dict by importing ``mmdet_imbalance.registry`` and searching the registry
tree for that scope (``Registry.switch_scope_and_registry``). Without a registry of that scope
it would fall back to the root registry, which cannot see mmdet's classes. A child finds every
class of mmdet's registry (and of mmengine's above it) through its parent, so a row built
through the alias is built from exactly the same classes.
"""
from mmdet import registry as _mmdet_registry
from mmengine.registry import Registry

SCOPE = 'mmdet_imbalance'


def _alias(parent: Registry) -> Registry:
    # The parent's lazy-import locations, plus this package so its modules are registered too.
    locations = list(getattr(parent, '_locations', [])) + [SCOPE]
    return Registry(parent.name, parent=parent, scope=SCOPE, locations=locations)


# One alias per registry mmdet defines (20 in mmdet 3.3), found rather than listed so that the set
# follows mmdet's; mmdet.registry also imports mmengine's roots, which are not its own.
_ALIASES = {name: _alias(value) for name, value in vars(_mmdet_registry).items()
            if isinstance(value, Registry) and value.scope == 'mmdet'}
globals().update(_ALIASES)
__all__ = sorted(_ALIASES)

"""Where the row configs, the tools and the model index are, in a checkout and in an install.

A checkout keeps them at the repository root (``configs/``, ``tools/``, ``model-index.yml``). A
package built by ``setup.py`` carries them inside itself, in ``mmdet_imbalance/.mim/``, as every
OpenMMLab package does: that is where ``mim search``/``mim train`` and mmengine's
``mmdet_imbalance::`` bases look. An editable install makes ``.mim/`` entries symlinks to the
checkout's folders, so both routes reach the same files there.

Row configs are named relative to the repository root (``configs/mini/retinanet_mini.py``, the
form :data:`mmdet_imbalance.table.rows.ROWS` uses); :func:`resolve` turns such a name into a path
that exists in either layout.

Importing this module also lets mmengine resolve ``mmdet_imbalance::`` bases
(:func:`register_config_scope`).
"""
import os.path as osp
from typing import Optional

PACKAGE = 'mmdet_imbalance'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
MIM_DIR = osp.join(PACKAGE_DIR, '.mim')
#: The entries ``setup.py`` puts into ``.mim/`` (the names mim and mmengine look for).
MIM_ENTRIES = ('configs', 'tools', 'checkpoints', 'model-index.yml')


def checkout_root() -> Optional[str]:
    """The repository root when the package is imported from a checkout, else None."""
    root = osp.dirname(PACKAGE_DIR)
    if osp.isfile(osp.join(root, 'setup.py')) and osp.isdir(osp.join(root, 'configs')):
        return root
    return None


def data_root() -> str:
    """The folder that holds ``configs/``, ``tools/`` and ``model-index.yml``: the package's
    ``.mim/`` when it has its configs, else the checkout."""
    if osp.isdir(osp.join(MIM_DIR, 'configs')):
        return MIM_DIR
    root = checkout_root()
    if root is None:
        raise FileNotFoundError(
            f'{PACKAGE} finds no configs: neither {MIM_DIR}/configs (an install built by its '
            'setup.py) nor a checkout around the package. Reinstall it with pip from the '
            'repository or its source distribution.')
    return root


def configs_root() -> str:
    """The folder of the row configs (``mini/``, ``table1/``, ``zoo/``)."""
    return osp.join(data_root(), 'configs')


def tools_root() -> str:
    return osp.join(data_root(), 'tools')


def model_index_path() -> str:
    return osp.join(data_root(), 'model-index.yml')


def resolve(config: str) -> str:
    """An absolute path for a config given as a path (kept when it exists), a repository-relative
    ``configs/...`` name, a ``configs``-relative name (``mini/retinanet_mini.py``) or a
    ``mmdet_imbalance::`` name."""
    if osp.isfile(config):
        return osp.abspath(config)
    name = config.split('::', 1)[1] if config.startswith(f'{PACKAGE}::') else config
    if name.startswith('configs/'):
        name = name[len('configs/'):]
    path = osp.join(configs_root(), name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {config!r} not found (looked for {path})')
    return path


def register_config_scope() -> None:
    """Let mmengine resolve ``_base_ = 'mmdet_imbalance::<path under configs/>'``.

    mmengine 0.10.7 accepts a ``<package>::`` base only for the packages listed in its
    ``MODULE2PACKAGE`` table (``mmengine/config/utils.py``), which names OpenMMLab's own; it then
    finds the file under ``<installed package>/.mim/configs/``. Adding this package to the table
    is the only hook it offers, so it has to happen before such a config is parsed: importing
    ``mmdet_imbalance`` does it, and so do the tools.
    """
    from mmengine.config import utils
    utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)


register_config_scope()

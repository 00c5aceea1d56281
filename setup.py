# Kept for editable installs with the setuptools<82 pinned by the OpenMMLab stack (PEP 660 needs
# setuptools>=64, and openmim's dependency pins an older one). Metadata lives in setup.cfg.
import os
import os.path as osp
import shutil
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
PACKAGE = 'mmdet_imbalance'
# What OpenMMLab packages carry in <package>/.mim/: mim finds the model index and the tools there,
# and mmengine resolves 'mmdet_imbalance::' config bases under .mim/configs.
MIM_ENTRIES = ('configs', 'tools', 'checkpoints', 'model-index.yml')


def _remove(path):
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def add_mim_extension():
    """Editable installs: symlink the MIM entries into mmdet_imbalance/.mim (git-ignored), as
    mmdet's setup.py does, so that mim and mmengine see the checkout's files as they change."""
    if not any(command in sys.argv for command in ('develop', 'editable_wheel')):
        return
    mim_dir = osp.join(ROOT, PACKAGE, '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_ENTRIES:
        target = osp.join(mim_dir, name)
        _remove(target)
        os.symlink(osp.relpath(osp.join(ROOT, name), mim_dir), target)


class BuildPyWithMim(build_py):
    """Wheels: copy the MIM entries into the built package's .mim/.

    mmdet copies them into the source tree instead; copying into the build folder leaves no copy
    in a checkout that could go stale and shadow the configs being edited there.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim_dir = osp.join(self.build_lib, PACKAGE, '.mim')
        _remove(mim_dir)
        os.makedirs(mim_dir)
        for name in MIM_ENTRIES:
            source, target = osp.join(ROOT, name), osp.join(mim_dir, name)
            if osp.isdir(source):
                shutil.copytree(source, target,
                                ignore=shutil.ignore_patterns('__pycache__', '*.py[cod]'))
            elif osp.isfile(source):
                shutil.copyfile(source, target)
            else:
                raise FileNotFoundError(f'{source} is missing: mim needs it in {PACKAGE}/.mim')


if __name__ == '__main__':
    add_mim_extension()
    setup(cmdclass={'build_py': BuildPyWithMim})

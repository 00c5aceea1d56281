"""Loading the checkpoints a run of this package wrote, on torch >= 2.6.

mmengine 0.10.7 loads a checkpoint (``--resume``, ``load_from``, ``load_checkpoint``) with a plain
``torch.load``. From torch 2.6 that defaults to ``weights_only=True``, which rejects what mmengine
pickles next to the weights (the message hub's history buffers, numpy scalars), so resuming a run
or testing its checkpoint would fail. ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` makes such a call
unpickle in full, which can run code stored in the file; so it is set only around the loading of
the checkpoint a command names or resumes (:func:`own_checkpoint_loading`), never for the process:
a ``torch.load`` elsewhere keeps torch's default. :class:`OwnCheckpointRunner` is mmengine's
``Runner`` with that scope around its one loading step; ``tools/train.py`` and ``tools/test.py``
build it. A run started through mmdet's own script (``mim train``) uses mmengine's ``Runner``;
``--cfg-options runner_type=OwnCheckpointRunner`` gives it this one for ``--resume``.
"""
import os
from contextlib import contextmanager

from mmdet.registry import RUNNERS
from mmengine.runner import Runner

FULL_UNPICKLING = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


@contextmanager
def own_checkpoint_loading():
    """Inside, ``torch.load`` calls that leave ``weights_only`` unset unpickle in full, as
    mmengine's checkpoint loading needs; a value the environment already has is left as it is.
    Load only checkpoints you trust this way, as with any pickle."""
    if FULL_UNPICKLING in os.environ:
        yield
        return
    os.environ[FULL_UNPICKLING] = '1'
    try:
        yield
    finally:
        os.environ.pop(FULL_UNPICKLING, None)


@RUNNERS.register_module()
class OwnCheckpointRunner(Runner):
    """mmengine's ``Runner`` whose resume / ``load_from`` loading runs inside
    :func:`own_checkpoint_loading`; everything else is ``Runner``'s."""

    def load_or_resume(self) -> None:
        with own_checkpoint_loading():
            super().load_or_resume()

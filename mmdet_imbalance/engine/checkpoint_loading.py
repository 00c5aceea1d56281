"""Loading the checkpoints a run of this package wrote, on torch >= 2.6.

mmengine 0.10.7 loads a checkpoint (``--resume``, ``load_from``, ``load_checkpoint``) with a plain
``torch.load``. From torch 2.6 that defaults to ``weights_only=True``, which rejects what mmengine
pickles next to the weights (the message hub's history buffers, numpy scalars), so resuming a run
or testing its checkpoint would fail. ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` makes such a call
unpickle in full, which can run code stored in the file; so it is set only around the loading of
the checkpoint a command names or resumes (:func:`own_checkpoint_loading`), never for the process:
a ``torch.load`` elsewhere keeps torch's default. :class:`OwnCheckpointRunner` is mmengine's
``Runner`` with that scope around its one loading step; ``tools/train.py`` and ``tools/test.py``
build it, and every row config names it (``runner_type``), so that mmdet's own script
(``mim train mmdet <config> --resume``) builds it too.
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


def check_checkpoint_fits(model, checkpoint: str) -> None:
    """Raise ValueError unless ``checkpoint``'s weights have exactly ``model``'s keys and shapes.

    mmengine loads a checkpoint non-strictly and only warns, in the middle of the log, about keys
    that do not fit: another detector's checkpoint would be scored with random weights (AP 0.000,
    exit 0). The keys are compared as mmengine loads them (``module.`` prefix removed). The file
    is memory-mapped, so only its keys and shapes are read here and the Runner's own loading stays
    the one full read; a file in torch's legacy (non-zip) format is read in full.
    """
    import pickle

    import torch
    from mmengine.model import is_model_wrapper
    try:
        try:
            ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False, mmap=True)
        except RuntimeError as err:
            if 'zipfile' not in str(err):
                raise
            ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f'checkpoint {checkpoint} cannot be loaded ({err})') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    expected = (model.module if is_model_wrapper(model) else model).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state)
                        if tuple(getattr(state[k], 'shape', ())) != tuple(expected[k].shape))
    problems = [f'{len(keys)} {kind} keys (e.g. {", ".join(keys[:3])})'
                for kind, keys in (('missing', missing), ('unexpected', unexpected),
                                   ('shape-mismatched', mismatched)) if keys]
    if problems:
        raise ValueError(f'checkpoint {checkpoint} does not fit the model of this config: '
                         f'{"; ".join(problems)}. Was it trained with another config?')

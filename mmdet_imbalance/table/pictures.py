"""Every picture drawn from the results tree keeps, next to it, the hash of what it was drawn from.

``<picture>.inputs.json`` holds the command that drew it, the glob patterns of its input files
(relative to a base folder, itself stored relative to the picture's folder: the repository for
``docs/``), and the sha256 of every file they matched. :func:`problems` expands the patterns
again: a file that changed, appeared or went away since the picture was drawn makes it stale,
and the test-suite fails until its command is rerun (``tests/test_pictures.py``).
"""
import glob
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

SUFFIX = '.inputs.json'


def inputs_path(picture: str) -> str:
    return picture + SUFFIX


def save(fig, path: str) -> None:
    """Write a matplotlib figure to ``path``, creating its folder (``--out`` may name a new one),
    and close it."""
    import matplotlib.pyplot as plt
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def digest(base: str, patterns: Sequence[str]) -> Dict[str, str]:
    """{path relative to ``base``: sha256} of every file the patterns match under ``base``."""
    found = {}
    for pattern in patterns:
        for path in glob.glob(osp.join(base, pattern)):
            if osp.isfile(path):
                found[osp.relpath(path, base)] = _sha256(path)
    return dict(sorted(found.items()))


def write_inputs(picture: str, base: str, patterns: Sequence[str], command: str) -> str:
    """Record what ``picture`` was drawn from; returns the inputs file's path."""
    files = digest(base, patterns)
    if not files:
        raise ValueError(f'{picture}: none of its inputs exist under {base} ({list(patterns)})')
    path = inputs_path(picture)
    with open(path, 'w') as f:
        json.dump(dict(command=command,
                       base=osp.relpath(base, osp.dirname(osp.abspath(picture))),
                       patterns=list(patterns), files=files), f, indent=1)
        f.write('\n')
    return path


def problems(picture: str) -> List[str]:
    """Why ``picture`` is stale or unverifiable; [] when its inputs are the ones it was drawn
    from."""
    path = inputs_path(picture)
    if not osp.isfile(picture):
        return [f'{picture}: missing']
    if not osp.isfile(path):
        return [f'{picture}: no {osp.basename(path)} says what it was drawn from']
    with open(path) as f:
        recorded = json.load(f)
    base = osp.normpath(osp.join(osp.dirname(osp.abspath(picture)), recorded['base']))
    now = digest(base, recorded['patterns'])
    then = recorded['files']
    changed = sorted(k for k in set(then) & set(now) if then[k] != now[k])
    added, removed = sorted(set(now) - set(then)), sorted(set(then) - set(now))
    out = []
    for what, files in (('changed', changed), ('new', added), ('gone', removed)):
        if files:
            out.append(f'{picture}: {len(files)} input file(s) {what} since it was drawn (e.g. '
                       f'{os.path.join(base, files[0])}); rerun: {recorded["command"]}')
    return out

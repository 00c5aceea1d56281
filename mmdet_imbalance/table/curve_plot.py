"""``curves.png``: the training curves of table rows, each overlaid on its baseline's.

One figure row per baseline (Faster R-CNN, RetinaNet, FCOS, ...), one column per logged scalar
(by default ``loss``, ``loss_cls`` and ``grad_norm``). In each panel the baseline is black and
each of its method rows has its own colour; a line is the mean over the seeds at each logged
step, and where there are several seeds a band spans their minimum to maximum. Losses and
gradient norms are drawn on a log scale. mmengine logs ``grad_norm`` only where the config clips
gradients (GHM-C and FCOS here), so other rows show none; a panel says when a scalar was not
logged.
"""
from typing import Dict, List, Sequence

from . import curves, pictures
from .collect import RowResult, RunResult
from .rows import Row, get_row

DEFAULT_KEYS = ('loss', 'loss_cls', 'grad_norm')
LOG_SCALE = ('loss', 'grad_norm')


def seed_curves(runs: Dict[int, RunResult], key: str, seeds=None) -> Dict[int, Dict[int, float]]:
    """{seed: {step: value}} of one scalar over a row's runs (runs without it left out)."""
    out = {}
    for seed, run in sorted(runs.items()):
        if seeds is not None and seed not in seeds:
            continue
        steps, values = curves.series(curves.read(run.work_dir), key)
        if steps:
            out[seed] = dict(zip(steps, values))
    return out


def band(per_seed: Dict[int, Dict[int, float]]):
    """(steps, mean, low, high) over the seeds, at the steps every seed logged."""
    common = sorted(set.intersection(*(set(c) for c in per_seed.values())))
    values = [[per_seed[s][step] for s in per_seed] for step in common]
    return (common, [sum(v) / len(v) for v in values], [min(v) for v in values],
            [max(v) for v in values])


def draw(path: str, rows: Sequence[Row], runs: Dict[str, Dict[int, RunResult]],
         table: Dict[str, RowResult], keys: Sequence[str] = DEFAULT_KEYS, seeds=None,
         title: str = '') -> Dict[str, Dict[str, Dict[str, int]]]:
    """Draw ``rows`` (each baseline with its method rows among them) into ``path``; returns
    {baseline key: {scalar: {row key: seeds drawn}}}, what each panel shows."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    families: Dict[str, List[Row]] = {}
    for row in rows:
        base = row.key if row.is_baseline else row.baseline
        families.setdefault(base, [])
        if not row.is_baseline:
            families[base].append(row)
    shown: Dict[str, Dict[str, Dict[str, int]]] = {}
    fig, axes = plt.subplots(len(families), len(keys), squeeze=False, dpi=110,
                             figsize=(4.6 * len(keys), 3.1 * len(families)))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for axes_row, (base, methods) in zip(axes, families.items()):
        shown[base] = {}
        for ax, key in zip(axes_row, keys):
            shown[base][key] = {}
            members = [(get_row(base), 'black')] + [
                (row, colours[i % len(colours)]) for i, row in enumerate(methods)]
            for row, colour in members:
                per_seed = seed_curves(runs.get(row.key, {}), key, seeds)
                if not per_seed:
                    continue
                steps, mean, low, high = band(per_seed)
                res = table.get(row.key)
                delta = '' if row.is_baseline or res is None or res.delta_ap.mean is None \
                    else f', ΔAP {res.delta_ap.mean:+.1f}'
                ax.plot(steps, mean, color=colour, lw=1.2,
                        label=f'{row.display_name} ({len(per_seed)} seed'
                              f'{"s" if len(per_seed) > 1 else ""}{delta})')
                if len(per_seed) > 1:
                    ax.fill_between(steps, low, high, color=colour, alpha=0.2, lw=0)
                shown[base][key][row.key] = len(per_seed)
            if shown[base][key]:
                if key in LOG_SCALE:
                    ax.set_yscale('log')
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, f'{key} not logged by these runs', ha='center', va='center',
                        transform=ax.transAxes, fontsize=8, color='grey')
            ax.set_title(f'{get_row(base).display_name}: {key}', fontsize=9)
            ax.set_xlabel('iteration', fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle(title or 'training curves: mean over seeds, band = min-max', fontsize=10)
    fig.tight_layout()
    pictures.save(fig, path)
    return shown

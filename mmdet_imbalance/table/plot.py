"""``table1.png``: AP against the training time ratio, and every row's ΔAP with its interval.

Left panel: each row at (time ratio, AP), the table's own ratio (row s/iter ÷ baseline s/iter;
baselines hollow at 1, right is slower), coloured by the review's group, with the seed spread of
its AP (sample std) as the vertical bar and of its paired time ratio as the horizontal one. Rows
at the same place share one label; labels are then moved apart until no two overlap, with a
leader line to a moved label's point. Right panel: each method row's ΔAP against its baseline
with its paired 95 % Student-t interval (one seed: the point alone, hollow), and the review's
ΔAP as a cross. matplotlib runs with the Agg backend, so no display is needed.
"""
from typing import Dict, List, Sequence, Tuple

from . import pictures
from .collect import RowResult, t_interval
from .rows import GROUPS, Row

GROUP_STYLE = {
    'hard sampling': ('tab:blue', 'o'),
    'soft sampling': ('tab:orange', 's'),
    'ranking-based loss': ('tab:green', '^'),
    'unbiased learning': ('tab:red', 'D'),
    'beyond the review': ('tab:purple', 'P'),
}


def _coinciding(points, tolerance: Tuple[float, float] = (0.02, 0.6)):
    """Group (x, y, name) points closer than ``tolerance`` in x and y: {(x, y): [names]}."""
    groups: Dict[Tuple[float, float], List[str]] = {}
    for x, y, name in points:
        for gx, gy in groups:
            if abs(gx - x) <= tolerance[0] and abs(gy - y) <= tolerance[1]:
                groups[(gx, gy)].append(name)
                break
        else:
            groups[(x, y)] = [name]
    return groups


def _overlap(a, b, pad: float = 1.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0
                or b.y1 + pad <= a.y0)


def _inside(box, frame) -> bool:
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def _move(label, place) -> None:
    dx, dy, align = place
    label.xyann = (dx, dy)
    label.set_horizontalalignment(align)


def place_labels(ax, groups: Dict[Tuple[float, float], List[str]], fontsize: float = 8):
    """Annotate each point group with its names, each label at the nearest height (above or
    below its point, in steps of its own height; right of it, else left) where it overlaps no
    label placed before it and stays inside the axes, so that a crowded cluster near an edge
    does not push names out of the picture. A label moved off its point gets a leader line,
    drawn as its own annotation after the placement (an annotation's extent spans its leader
    line). Returns the text annotations."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    labels, placed = [], []
    for (x, y), names in sorted(groups.items(), key=lambda item: -item[0][1]):
        label = ax.annotate('\n'.join(names), (x, y), textcoords='offset points', xytext=(6, 4),
                            fontsize=fontsize, va='bottom')
        height = label.get_window_extent(renderer).height * 72. / ax.figure.dpi + 2
        places = [(dx, 4 + (k + 1) // 2 * height * (1 if k % 2 else -1), align)
                  for k in range(200) for dx, align in ((6, 'left'), (-6, 'right'))]
        chosen = free = None  # free: the first place that overlaps nothing, if none is inside
        for place in places:
            _move(label, place)
            box = label.get_window_extent(renderer)
            if any(_overlap(box, other) for other in placed):
                continue
            free = free or place
            if _inside(box, frame):
                chosen = place
                break
        _move(label, chosen or free or places[-1])
        placed.append(label.get_window_extent(renderer))
        labels.append(label)
        if tuple(label.xyann) != (6, 4):
            ax.annotate('', (x, y), textcoords='offset points', xytext=label.xyann,
                        arrowprops=dict(arrowstyle='-', lw=0.5, color='grey', shrinkA=0,
                                        shrinkB=3))
    return labels


def _ap_panel(ax, rows: Sequence[Row], results: Dict[str, RowResult]):
    """Draw the AP points; returns their (x, y, name), for the labels."""
    used, points = set(), []
    for row in rows:
        res = results[row.key]
        if res.ap.mean is None:
            continue
        if row.is_baseline:
            ratio, ratio_err = 1.0, None
        elif res.speed_ratio.mean:
            ratio, ratio_err = res.speed_ratio.mean, res.speed_ratio.std
        else:
            continue
        color, marker = GROUP_STYLE.get(row.group, ('black', 'x'))
        ax.errorbar(ratio, res.ap.mean, xerr=ratio_err, yerr=res.ap.std, fmt=marker, color=color,
                    markersize=9 if row.is_baseline else 7,
                    markerfacecolor='white' if row.is_baseline else color, capsize=3,
                    label=row.group if row.group not in used else None)
        used.add(row.group)
        points.append((ratio, res.ap.mean, row.display_name))
    ax.axvline(1.0, color='grey', lw=0.8, ls='--')
    ax.margins(x=0.25, y=0.15)
    ax.set_xlabel('training time ratio (row s/iter ÷ baseline s/iter; > 1 is slower)')
    ax.set_ylabel('AP (coco/bbox_mAP x 100); bar: std over seeds')
    handles, names = ax.get_legend_handles_labels()
    order = [names.index(g) for g in GROUPS if g in names]
    if order:
        ax.legend([handles[i] for i in order], [names[i] for i in order], fontsize=8, loc='best')
    ax.grid(alpha=0.3)
    return points


def _delta_panel(ax, rows: Sequence[Row], results: Dict[str, RowResult]) -> int:
    shown = [row for row in rows if not row.is_baseline and results[row.key].delta_ap.mean
             is not None]
    for y, row in enumerate(reversed(shown)):
        res = results[row.key]
        color, marker = GROUP_STYLE.get(row.group, ('black', 'x'))
        interval = t_interval(res.delta_ap)
        xerr = None if interval is None else [[res.delta_ap.mean - interval[0]],
                                              [interval[1] - res.delta_ap.mean]]
        ax.errorbar(res.delta_ap.mean, y, xerr=xerr, fmt=marker, color=color, capsize=3,
                    markerfacecolor=color if interval else 'white')
        if row.published is not None and row.published.delta_ap is not None:
            ax.plot(row.published.delta_ap, y, 'x', color='grey')
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f'{row.display_name} ({len(results[row.key].delta_seeds)} seed'
                        f'{"s" if len(results[row.key].delta_seeds) != 1 else ""})'
                        for row in reversed(shown)], fontsize=8)
    ax.axvline(0., color='grey', lw=0.8)
    ax.set_xlabel('ΔAP vs baseline, paired by seed\nbar: 95 % t-interval; hollow: one seed '
                  '(no interval); ×: review ΔAP', fontsize=8)
    ax.grid(alpha=0.3, axis='x')
    return len(shown)


def build_figure(rows: Sequence[Row], results: Dict[str, RowResult], meta: dict):
    """The figure of ``table1.png`` and the labels of its AP panel."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax, dax) = plt.subplots(1, 2, figsize=(13, 6), dpi=120,
                                  gridspec_kw=dict(width_ratios=(3, 2)))
    points = _ap_panel(ax, rows, results)
    _delta_panel(dax, rows, results)
    bench = meta.get('benchmark', '')
    if meta.get('dataset'):
        bench += f' / {meta["dataset"]}'
    seeds = meta.get('seeds', [0])
    seeds = len(seeds) if isinstance(seeds, (list, tuple)) else seeds
    fig.suptitle(f'Table 1 regenerated ({bench}, up to {seeds} seed(s), '
                 f'{"/".join(meta.get("precision") or [])}); hollow = baseline', fontsize=10)
    missing = [row.display_name for row in rows if results[row.key].ap.mean is None]
    if missing:
        fig.text(0.01, 0.01, 'no number: ' + ', '.join(missing), fontsize=7, color='grey',
                 wrap=True)
    fig.tight_layout(rect=(0, 0.04 if missing else 0, 1, 1))
    # Labels are placed in the final layout, where their extents are the saved ones.
    fig.canvas.draw()
    return fig, place_labels(ax, _coinciding(points))


def write_plot(path: str, rows: Sequence[Row], results: Dict[str, RowResult], meta: dict) -> int:
    """Write ``table1.png``; returns the number of rows drawn in the AP panel."""
    fig, labels = build_figure(rows, results, meta)
    pictures.save(fig, path)
    return sum(len(label.get_text().split('\n')) for label in labels)

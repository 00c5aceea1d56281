"""The formatting: Markdown tables and log lines of the statistics, and the docs' generated tables.

A doc keeps its statistics between marker comments that ``tools/imbalance_stats.py --write-docs``
rewrites, so they cannot go stale. The begin marker names the section and lists, one per line,
the tool's arguments whose results make up its table::

    <!-- imbalance-stats:begin shapes
    configs/mini/retinanet_mini.py --dataset shapes
    configs/mini/faster-rcnn_mini.py --dataset shapes
    -->
    (generated: the dataset line and one table row per stage of every line)
    <!-- imbalance-stats:end shapes -->
"""
import re
import shlex
from typing import Dict, List, Sequence


def _fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def _ratio(value) -> str:
    return '-' if value is None else f'{value:,.0f} : 1'


def _slots(counts: dict) -> str:
    """'42 % of 96': the images whose fg candidates fill the RoI sampler's positive slots."""
    slots = counts.get('pos_slots')
    if not slots:
        return '-'
    return f"{100 * counts['pos_slots_filled'] / max(counts['images'], 1):.0f} % of {slots:g}"


#: (header, alignment, cell) of each table column.
_COLUMNS = (
    ('stage', '---', lambda e: e['label']),
    ('images', '---:', lambda e: str(e['counts']['images'])),
    ('fg / img', '---:', lambda e: f"{e['fg_per_image']:.1f}"),
    ('bg / img', '---:', lambda e: f"{e['bg_per_image']:.1f}"),
    ('ignored / img', '---:', lambda e: f"{e['ignored_per_image']:.1f}"),
    ('outside / img', '---:', lambda e: f"{e['outside_per_image']:.1f}"),
    ('bg : fg', '---:', lambda e: _ratio(e['bg_per_fg'])),
    ('C', '---:', lambda e: str(e['num_classes'])),
    ('pi*', '---:', lambda e: _fmt(e['prior'], '.4g')),
    ('bias', '---:', lambda e: _fmt(e['bias'], '.3f')),
    ('pos slots filled', '---:', lambda e: _slots(e['counts'])),
)


def _table(entries, columns) -> List[str]:
    # The positive-slot column only means something for the RoI stage's sampler.
    if not any(entry['counts'].get('pos_slots') for entry in entries):
        columns = [column for column in columns if column[0] != 'pos slots filled']
    lines = ['| ' + ' | '.join(header for header, _, _ in columns) + ' |',
             '|' + '|'.join(align for _, align, _ in columns) + '|']
    for entry in entries:
        lines.append('| ' + ' | '.join(cell(entry) for _, _, cell in columns) + ' |')
    return lines


def format_table(stats: dict) -> str:
    """A Markdown table of :func:`get_imbalance_stats`' result (one row per stage)."""
    info = stats['dataset']
    lines = [f"dataset: {info['name']} ({info['num_images']} training images, "
             f"{len(info['classes'])} classes; {info['ann_file']})", '']
    return '\n'.join(lines + _table(stats['stages'].values(), _COLUMNS))


def summary_line(entry: dict) -> str:
    """One line for logs: stage, counts, pi* and bias."""
    counts = entry['counts']
    return (f"{entry['label']}: fg={counts['fg']} bg={counts['bg']} ignored={counts['ignored']} "
            f"outside={counts['outside']} over {counts['images']} images, "
            f"C={entry['num_classes']}, "
            f"pi*={_fmt(entry['prior'], '.6g')}, bias={_fmt(entry['bias'], '.4f')}")


# -- the docs' generated tables -------------------------------------------------------------------

_SECTION = re.compile(r'<!-- imbalance-stats:begin (?P<name>[\w.-]+)(?P<args>.*?)-->\n'
                      r'(?P<body>.*?)<!-- imbalance-stats:end (?P=name) -->', re.S)


def _doc_label(entry: dict) -> str:
    # Rows of one table come from several configs; the border rule is what tells an RPN that
    # sets crossing anchors aside from one that does not.
    border = entry.get('config', {}).get('allowed_border', -1)
    return entry['label'] + (f' (`allowed_border={border}`)' if border >= 0 else '')


def format_doc_table(results: Sequence[dict]) -> str:
    """The dataset line and one table of several results on one dataset, for a doc: no local
    path, and no ``outside`` column when no row counts anchors (nothing else can be outside)."""
    names = {stats['dataset']['name'] for stats in results}
    if len(names) != 1:
        raise ValueError(f'one doc table shows one dataset, got {sorted(names)}')
    entries = [entry for stats in results for entry in stats['stages'].values()]
    columns = [('stage', '---', _doc_label)] + list(_COLUMNS[1:])
    if not any(entry['kind'] == 'anchors' for entry in entries):
        columns = [column for column in columns if column[0] != 'outside / img']
    info = results[0]['dataset']
    num_classes = len(info['classes'])
    lines = [f"dataset: {info['name']} ({info['num_images']} training images, {num_classes} "
             f"class{'' if num_classes == 1 else 'es'})", '']
    return '\n'.join(lines + _table(entries, columns))


def doc_sections(text: str) -> Dict[str, List[List[str]]]:
    """The marked sections of a doc: name -> the tool's argument lists, one per table source."""
    sections = {}
    matches = list(_SECTION.finditer(text))
    if len(matches) != text.count('<!-- imbalance-stats:begin '):
        raise ValueError('an imbalance-stats begin marker has no matching end marker')
    for match in matches:
        name = match['name']
        if name in sections:
            raise ValueError(f'imbalance-stats section {name!r} is marked twice')
        sections[name] = [shlex.split(line) for line in match['args'].splitlines()
                          if line.strip()]
        if not sections[name]:
            raise ValueError(f'imbalance-stats section {name!r} lists no tool arguments')
    return sections


def rewrite_doc(text: str, tables: Dict[str, str]) -> str:
    """``text`` with the body of each section named in ``tables`` replaced by its table; the rest
    of the doc, markers included, is kept byte for byte."""
    missing = set(tables) - set(doc_sections(text))
    if missing:
        raise KeyError(f'no imbalance-stats section named {sorted(missing)} in the doc')

    def replace(match):
        if match['name'] not in tables:
            return match[0]
        head = match[0][:match.start('body') - match.start()]
        return f"{head}\n{tables[match['name']]}\n\n<!-- imbalance-stats:end {match['name']} -->"

    return _SECTION.sub(replace, text)

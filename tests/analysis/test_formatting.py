"""Tables and the docs' marked sections, on synthetic statistics (and the toy set's table row)."""
import os.path as osp
import re
import shutil

import pytest

from mmdet_imbalance.analysis import (doc_sections, format_doc_table, format_table,
                                      get_imbalance_stats, rewrite_doc)
from mmdet_imbalance.analysis.counting import derived_stats

BODY = re.compile(r'(<!-- imbalance-stats:begin [^\n]*\n.*?-->\n).*?(<!-- imbalance-stats:end)',
                  re.S)


def entry(label, kind, fg, bg, num_classes=1, border=-1, ignored=0, outside=0, images=10):
    counts = dict(images=images, fg=fg, bg=bg, ignored=ignored, outside=outside)
    config = dict(allowed_border=border) if kind == 'anchors' else {}
    return dict(label=label, kind=kind, num_classes=num_classes, counts=counts, config=config,
                **derived_stats(counts, num_classes))


def result(*entries, name='shapes-instances_train', classes=('a', 'b', 'c'), images=10):
    return dict(dataset=dict(name=name, num_images=images, classes=list(classes),
                             ann_file=f'/local/{name}.json'),
                stages={str(i): e for i, e in enumerate(entries)})


def test_table_row_of_the_hand_derivation(toy):
    table = format_table(get_imbalance_stats(toy.retina_config(), cache_dir=None))
    assert table.startswith('dataset: toy-train (2 training images, 2 classes; ')
    assert '| RetinaHead anchors | 2 | 1.0 | 6.0 | 1.0 | 0.0 | 6 : 1 | 2 | 0.07143 | -2.565 |' \
        in table


def test_doc_table_rows_of_several_configs():
    table = format_doc_table([
        result(entry('RetinaHead anchors', 'anchors', 1000, 271000, num_classes=3, ignored=5)),
        result(entry('SamplingFreeRPNHead anchors', 'anchors', 100, 161700, border=0,
                     outside=65690))])
    assert table == '\n'.join([
        'dataset: shapes-instances_train (10 training images, 3 classes)',
        '',
        '| stage | images | fg / img | bg / img | ignored / img | outside / img | bg : fg | C '
        '| pi* | bias |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        '| RetinaHead anchors | 10 | 100.0 | 27100.0 | 0.5 | 0.0 | 271 : 1 | 3 | 0.001225 '
        '| -6.703 |',
        '| SamplingFreeRPNHead anchors (`allowed_border=0`) | 10 | 10.0 | 16170.0 | 0.0 '
        '| 6569.0 | 1,617 : 1 | 1 | 0.000618 | -7.388 |'])


def test_doc_table_of_candidates_has_no_outside_column():
    table = format_doc_table([result(
        entry('RoI candidates (RPN proposals + GT)', 'candidates', 421, 2605),
        classes=('tree', ))])
    assert table.splitlines()[0] == 'dataset: shapes-instances_train (10 training images, 1 class)'
    assert 'outside' not in table
    assert table.splitlines()[-1] == \
        '| RoI candidates (RPN proposals + GT) | 10 | 42.1 | 260.5 | 0.0 | 6 : 1 | 1 | 0.1391 ' \
        '| -1.823 |'


def test_doc_table_shows_one_dataset():
    with pytest.raises(ValueError, match='one dataset'):
        format_doc_table([result(entry('A anchors', 'anchors', 1, 9)),
                          result(entry('B anchors', 'anchors', 1, 9), name='trees-train')])


def test_rewriting_a_copy_of_the_doc_keeps_its_prose(repo_root, tmp_path):
    doc = str(tmp_path / 'imbalance_stats.md')
    shutil.copy(osp.join(repo_root, 'docs', 'imbalance_stats.md'), doc)
    with open(doc) as f:
        original = f.read()
    sections = doc_sections(original)
    assert list(sections) == ['trees', 'shapes', 'roi-shapes']
    for arg_lists in sections.values():
        for argv in arg_lists:
            assert osp.isfile(osp.join(repo_root, argv[0])), argv
    tables = {name: format_doc_table([result(entry(f'{name} anchors', 'anchors', 7, 7000 + i))])
              for i, name in enumerate(sections)}
    with open(doc, 'w') as f:
        f.write(rewrite_doc(original, tables))
    with open(doc) as f:
        rewritten = f.read()
    for name, table in tables.items():
        assert f'-->\n\n{table}\n\n<!-- imbalance-stats:end {name} -->' in rewritten
    # Everything outside the marked bodies, markers and their argument lists included, is kept.
    assert BODY.sub(r'\1\2', rewritten) == BODY.sub(r'\1\2', original)
    assert rewrite_doc(rewritten, tables) == rewritten
    # A partial rewrite leaves the other sections as they are.
    partial = rewrite_doc(original, {'shapes': tables['shapes']})
    assert tables['shapes'] in partial and tables['trees'] not in partial
    assert partial.split('imbalance-stats:end trees')[0] == \
        original.split('imbalance-stats:end trees')[0]


def test_bad_markers_are_reported():
    begin = '<!-- imbalance-stats:begin a\nx.py\n-->\n'
    section = begin + 'old\n<!-- imbalance-stats:end a -->\n'
    with pytest.raises(ValueError, match='no matching end'):
        doc_sections(begin + 'old\n')
    with pytest.raises(ValueError, match='marked twice'):
        doc_sections(section + section)
    with pytest.raises(ValueError, match='no tool arguments'):
        doc_sections('<!-- imbalance-stats:begin a -->\n<!-- imbalance-stats:end a -->\n')
    with pytest.raises(KeyError, match="'b'"):
        rewrite_doc(section, {'b': 'table'})
    assert doc_sections(section) == {'a': [['x.py']]}

"""The committed diagnostic runs (``results/diag/<method>/<name>/``) that the method pages cite.

The table never reads them. The record checks of a table run (finished, its AP is its own last
evaluation, its log and curve agree) reach them through
``test_results_integrity.test_the_committed_tree_passes_verification``, which walks the whole
``results/`` tree, ``diag/`` included. What is particular to them is checked here: each keeps its
merged config, sits under a method that has a page and is cited by some page; and every
``results/diag/`` path a page or the README cites must be such a record.
"""
import glob
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIAG = osp.join(REPO, 'results', 'diag')
CITATION = re.compile(r'results/diag/([\w.-]+)/([\w.-]+)')


def committed_records():
    return sorted(osp.relpath(osp.dirname(p), DIAG)
                  for p in glob.glob(osp.join(DIAG, '*', '*', 'run.json')))


def citations():
    """{'<method>/<name>': [files citing it]} over docs/ and the README."""
    found = {}
    texts = glob.glob(osp.join(REPO, 'docs', '**', '*.md'), recursive=True)
    for path in texts + [osp.join(REPO, 'README.md')]:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        # The README's pattern `results/diag/<method>/<name>/` does not match: '<' is no name.
        for method, name in CITATION.findall(text):
            found.setdefault(f'{method}/{name}', []).append(osp.relpath(path, REPO))
    return found


def test_the_tree_has_diagnostic_records():
    assert committed_records(), f'no run record under {DIAG}'


@pytest.mark.parametrize('record', committed_records())
def test_each_record_keeps_its_config_and_belongs_to_a_method_page(record):
    folder = osp.join(DIAG, record)
    assert osp.isfile(osp.join(folder, 'config.py')), f'{folder}: no merged config'
    method = record.split('/')[0]
    page = osp.join(REPO, 'docs', 'methods', f'{method}.md')
    assert osp.isfile(page), f'{folder}: no method page docs/methods/{method}.md'


def test_every_record_is_cited_and_every_citation_is_a_record():
    cited = citations()
    records = set(committed_records())
    assert sorted(records - set(cited)) == [], 'diagnostic records no page cites'
    missing = {path: files for path, files in cited.items() if path not in records}
    assert missing == {}, 'cited diagnostic records that the tree lacks'

"""The committed pictures are those of the committed results: each records the hash of the files
it was drawn from (``<picture>.inputs.json``), and this test fails when any of them changed since,
naming the command that draws it again (mmdet_imbalance/table/pictures.py)."""
import os.path as osp

import pytest

from mmdet_imbalance.table import pictures

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The picture, and whether it must carry its inputs file whenever it is committed. The table's
#: plot gets one from ``tools/table1.py --from-results --publish docs/``; the copy published
#: before inputs files existed is checked once it is republished.
PICTURES = {'docs/curves.png': True, 'docs/gallery.png': True, 'docs/table1.png': False}


@pytest.mark.parametrize('rel', sorted(PICTURES))
def test_a_committed_picture_matches_its_inputs(rel):
    picture = osp.join(REPO, rel)
    if not osp.isfile(picture):
        pytest.skip(f'{rel} is not generated yet')
    if not osp.isfile(pictures.inputs_path(picture)) and not PICTURES[rel]:
        pytest.skip(f'{rel} was published before pictures recorded their inputs')
    assert pictures.problems(picture) == []

"""``gallery.png``: what a row detects next to what its baseline detects, on the same val canvases.

Each figure row is one method row and its baseline, each column one val canvas; a cell is the
ground truth | the baseline's detections | the method's, drawn by mmdet's ``DetLocalVisualizer``
(detections scoring above ``score_thr``). The models are the published runs themselves: a run of
the results tree (one seed) is identified by its record's settings, so its checkpoint is the
last one of a work dir that holds a finished run of exactly those settings (the table tool's
``work_dirs/table1`` keeps it), or, when none is kept, of the run trained again with the table's
own command into ``work_dirs/gallery``.

Checkpoints are not kept in git: a mini model's weights are 12.5-15 MB in float32 (3.3-3.9 M
parameters: a half-width ResNet-18, a 64-channel FPN and the heads; a resumable checkpoint adds
AdamW's two moments), so the six of a gallery would add 80 MB to the history at every refresh of
the tree, where the retraining command reproduces them (runs are deterministic on CPU,
docs/reliability.md) in about 5 minutes each on 2 cores.
"""
import itertools
import os.path as osp
import shlex
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdet_imbalance import config_paths
from mmdet_imbalance.engine.run_record import RUN_FILE, RunRecord, read_record, settings_diff
from . import pictures, results
from .collect import RowResult
from .rows import ROWS, Row, get_row

SEPARATOR = 4  # white pixels between the panels of a cell
PALETTE = [(220, 20, 60), (0, 110, 255), (0, 160, 60), (255, 140, 0), (150, 0, 200)]
# mmengine's visualizers are named instances; each cell draws with a fresh one.
_NAMES = itertools.count()


def pick_rows(table: Dict[str, RowResult], seed: int, count: int = 3) -> List[Row]:
    """The ``count`` method rows with the largest |ΔAP| that have a run of ``seed`` and whose
    baselines differ (so the gallery shows as many baselines as it can)."""
    candidates = sorted((row for row in ROWS if not row.is_baseline and row.key in table
                         and seed in table[row.key].runs and table[row.key].delta_ap.mean
                         is not None), key=lambda r: -abs(table[r.key].delta_ap.mean))
    picked, bases = [], set()
    for row in candidates:
        if row.baseline not in bases:
            picked.append(row)
            bases.add(row.baseline)
    return picked[:count]


def work_dir_of(root: str, dataset: str, seed: int, row: Row) -> str:
    """Where the table tool (``--work-dir root``) trains ``row`` / ``seed``
    (:meth:`.request.TableRequest.run_dir`)."""
    from .request import TableRequest
    request = TableRequest(rows=(row,), work_dir=root, results='', dataset=dataset)
    return request.run_dir(row, seed)


def find_checkpoint(published: RunRecord,
                    candidates: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    """(checkpoint, work dir) of the first candidate work dir holding a finished run of the
    published record's settings with its last checkpoint kept; (None, None) without one."""
    for work_dir in candidates:
        record = read_record(work_dir)
        if record is None or record.status != 'finished' or \
                settings_diff(record.settings, published.settings):
            continue
        try:
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                checkpoint = f.read().strip()
        except OSError:
            continue
        if osp.isfile(checkpoint):
            return checkpoint, work_dir
    return None, None


def train_command(row: Row, dataset: str, seed: int, precision: str, work_dir: str,
                  python: str = sys.executable) -> List[str]:
    """The table tool's own training command of ``row`` / ``seed`` (one process, no cap)."""
    from .launch import train_command as table_command
    from .request import TableRequest
    request = TableRequest(rows=(row,), work_dir=work_dir, results='', dataset=dataset,
                           precision=precision, python=python)
    return table_command(request, row, seed, work_dir, resume=False)


def retrain(row: Row, dataset: str, seed: int, published: RunRecord, work_dir: str) -> str:
    """Train the published run again into ``work_dir``; its settings must be the record's."""
    cmd = train_command(row, dataset, seed, published.precision, work_dir)
    held = read_record(work_dir)
    if held is not None and settings_diff(held.settings, published.settings):
        cmd.append('--overwrite')  # a run of an older recipe in the gallery's own work dir
    print(f'retraining {row.key} seed {seed} (its checkpoint is not kept): {shlex.join(cmd)}',
          flush=True)
    subprocess.run(cmd, check=True, cwd=config_paths.checkout_root() or None)
    checkpoint, _ = find_checkpoint(published, [work_dir])
    if checkpoint is None:
        record = read_record(work_dir)
        diff = settings_diff(record.settings if record else {}, published.settings)
        raise ValueError(f'{work_dir}: the run trained again is not the published one '
                         f'({"; ".join(diff) or "no finished run"}); the config has changed '
                         'since the results were published')
    return checkpoint


def val_canvases(cfg, indices: Sequence[int]):
    """(image path, ground-truth boxes, labels) of the val canvases at ``indices`` (in the
    annotation file's order), read with the config's own val dataset."""
    import copy

    from mmdet.registry import DATASETS
    dataset = DATASETS.build(dict(copy.deepcopy(cfg.val_dataloader.dataset), pipeline=[]))
    out = []
    for index in indices:
        info = dataset.get_data_info(index)
        boxes = np.array([i['bbox'] for i in info['instances'] if not i.get('ignore_flag')],
                         dtype=np.float32).reshape(-1, 4)
        labels = np.array([i['bbox_label'] for i in info['instances']
                           if not i.get('ignore_flag')], dtype=np.int64)
        out.append((info['img_path'], boxes, labels))
    return out, tuple(dataset.metainfo['classes'])


def detect(cfg, checkpoint: str, image_paths: Sequence[str]):
    """The model's detections on each image (mmdet's ``init_detector`` / ``inference_detector``,
    float32 on CPU)."""
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(cfg, checkpoint, device='cpu')
    return [inference_detector(model, path) for path in image_paths]


def cell(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, detections,
         classes: Sequence[str], score_thr: float) -> np.ndarray:
    """One canvas: ground truth | each detection set, side by side (RGB uint8)."""
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    visualizer = DetLocalVisualizer(name=f'gallery-{next(_NAMES)}')
    visualizer.dataset_meta = dict(classes=classes, palette=PALETTE[:len(classes)])
    truth = DetDataSample()
    truth.gt_instances = InstanceData(bboxes=torch.from_numpy(boxes),
                                      labels=torch.from_numpy(labels))
    panels = []
    for sample, gt in [(truth, True)] + [(d, False) for d in detections]:
        visualizer.add_datasample('cell', image, sample, draw_gt=gt, draw_pred=not gt,
                                  pred_score_thr=score_thr, show=False)
        panels.append(visualizer.get_image())
    gap = np.full((image.shape[0], SEPARATOR, 3), 255, dtype=np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, axis=1)


def draw(path: str, grid: List[Tuple[str, List[np.ndarray]]], columns: Sequence[str],
         title: str, width_px: int = 1600) -> Tuple[int, int]:
    """Save the figure of ``grid`` ([(row label, [cell per column])]); returns its size. 1600 px
    wide keeps the noisy canvases of three rows under the 2 MB a committed picture may take."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    height, width = grid[0][1][0].shape[:2]
    dpi = 100
    fig_w = width_px / dpi
    fig_h = fig_w / (len(columns) * width) * height * len(grid) * 1.15 + 0.8
    fig, axes = plt.subplots(len(grid), len(columns), squeeze=False, figsize=(fig_w, fig_h),
                             dpi=dpi)
    for (label, cells), ax_row in zip(grid, axes):
        for ax, image in zip(ax_row, cells):
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_title(label, fontsize=9, loc='left')
    for ax, name in zip(axes[-1], columns):
        ax.set_xlabel(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    size = fig.canvas.get_width_height()
    pictures.save(fig, path)
    return size


def published_record(root: str, dataset: str, seed: int, key: str) -> Tuple[str, RunRecord]:
    """(run.json path, verified record) of a row's run in the results tree."""
    folder = results.run_dir(root, 'mini', dataset, seed, key)
    return osp.join(folder, RUN_FILE), results.verify_folder(folder)


def baseline_pairs(rows: Sequence[Row]) -> List[Tuple[Row, Row]]:
    """(baseline, method row) of each method row."""
    return [(get_row(row.baseline), row) for row in rows if not row.is_baseline]


def ap_text(record: RunRecord, own: Optional[RunRecord]) -> str:
    """The published AP, and the checkpoint's own where a retrained run differs from it."""
    text = f'{record.ap:.1f}'
    if own is not None and own.ap is not None and abs(own.ap - record.ap) >= 0.05:
        text += f', this checkpoint {own.ap:.1f}'
    return text

"""The run record: what one training run of one config did, in one JSON file per run.

This module owns the format. :class:`~mmdet_imbalance.engine.ImbalanceTableHook` writes it from
inside the Runner; the offline table code (:mod:`mmdet_imbalance.table`) reads it, and the
committed ``results/`` tree keeps a copy of it. A record holds only what happened in its run:
settings, environment, per-iteration times, peak memory, evaluations, status. Everything that
compares runs (row lookup, ΔAP, speed ratios, hyper-parameter counts) is computed offline.

Files, under ``<work_dir>/imbalance/``:

* ``run.json``: the :class:`RunRecord`;
* ``progress.json``: ``iter``, ``max_iters`` and timestamps, rewritten every few iterations;
* ``.lock``: held (``flock``) by the process that trains the work dir, with its pid inside.

A run is identified by its :func:`run_settings`: a hash of the merged config (config content,
``--cfg-options``, seed, iterations, precision, data paths) plus the embedded dataset's version.
Two runs with the same settings are repeats; anything else is a different run.
"""
import fcntl
import hashlib
import json
import os
import os.path as osp
import platform
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional

from mmdet_imbalance.datasets.wrappers import train_dataset
from .precision import config_precision, cpu_gemm_gflops, native_bf16_cpu

RECORD_DIR = 'imbalance'
RUN_FILE = 'run.json'
PROGRESS_FILE = 'progress.json'
LOCK_FILE = '.lock'
SCHEMA = 2
#: Config keys that say where and how a run is launched, not what it computes
#: (``model_wrapper_cfg``: set for a CPU launcher, engine/distributed.py).
VOLATILE_KEYS = ('work_dir', 'launcher', 'resume', 'load_from', 'overwrite_work_dir',
                 'model_wrapper_cfg', 'runner_type')
#: The metric a record's ``ap`` is 100 times (mmdet's ``CocoMetric``, bbox AP@[.5:.95]).
AP_KEY = 'coco/bbox_mAP'
#: The settings that identify a run, in the order a mismatch is reported.
SETTING_KEYS = ('config_sha256', 'dataset', 'dataset_version', 'recipe_version', 'precision',
                'max_iters', 'seed', 'backbone_sha256')


def record_dir(work_dir: str) -> str:
    return osp.join(work_dir, RECORD_DIR)


def run_path(work_dir: str) -> str:
    return osp.join(work_dir, RECORD_DIR, RUN_FILE)


def progress_path(work_dir: str) -> str:
    return osp.join(work_dir, RECORD_DIR, PROGRESS_FILE)


def read_json(path: str) -> Optional[dict]:
    """A JSON file's content, or None when it is missing or half-written."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json_atomic(path: str, data: dict) -> None:
    """Write JSON through a temporary file and ``os.replace``: a reader (the table tool polls
    progress.json while the run writes it) never sees a half-written file."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def backbone_sha256(cfg) -> Optional[str]:
    """The sha256 of the pretrained backbone file a config starts from (``CheckedPretrained``),
    verified against its name; None for a config without one."""
    init_cfg = ((cfg.get('model') or {}).get('backbone') or {}).get('init_cfg') or {}
    if not isinstance(init_cfg, dict) or init_cfg.get('type') != 'CheckedPretrained':
        return None
    from mmdet_imbalance.models.backbone_init import resolve_checkpoint
    from mmdet_imbalance.pretrain import verify
    return verify(resolve_checkpoint(init_cfg['checkpoint']))


def run_settings(cfg) -> Dict[str, object]:
    """The settings that identify a run of the merged Runner config ``cfg``."""
    from mmdet_imbalance.datasets.embedded import EMBEDDED
    content = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    for key in VOLATILE_KEYS:
        content.pop(key, None)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=repr).encode())
    dataset = train_dataset(cfg)
    embedded = dataset.get('embedded') if dataset.get('type') == 'EmbeddedCocoDataset' else None
    train_cfg = cfg.get('train_cfg') or {}
    return dict(
        config_sha256=digest.hexdigest(),
        dataset=embedded or dataset.get('data_root') or dataset.get('type'),
        dataset_version=EMBEDDED[embedded]['version'] if embedded in EMBEDDED else None,
        recipe_version=cfg.get('mini_recipe_version'),
        precision=config_precision(cfg),
        max_iters=train_cfg.get('max_iters', train_cfg.get('max_epochs')),
        seed=(cfg.get('randomness') or {}).get('seed'),
        backbone_sha256=backbone_sha256(cfg))


def settings_diff(recorded: Optional[dict], requested: dict) -> List[str]:
    """'key: recorded -> requested' for every identifying setting that differs."""
    recorded = recorded or {}
    out = []
    for key in SETTING_KEYS:
        if recorded.get(key) != requested.get(key):
            old, new = recorded.get(key), requested.get(key)
            if key == 'config_sha256':
                old, new = str(old)[:12], str(new)[:12]
                key = 'merged config (content, --cfg-options) sha256'
            out.append(f'{key}: {old} -> {new}')
    return out


def cpu_model() -> str:
    """The CPU's model name (Linux), else the architecture: machines of one kind differ in speed."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> Dict[str, object]:
    """The machine (with its measured matrix-product speed) and the package versions."""
    import mmcv
    import mmdet
    import mmengine
    import torch

    from mmdet_imbalance.version import __version__
    cuda = torch.cuda.is_available()
    return dict(
        host=platform.node(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        native_bf16=native_bf16_cpu(),
        # The rates --precision auto chose by (measured once per process), so that the record
        # shows why a run is bf16 or fp32.
        gemm_gflops=None if cuda else {
            dtype: round(rate, 1) for dtype, rate in cpu_gemm_gflops().items()},
        gpu=torch.cuda.get_device_name(0) if cuda else None,
        python=platform.python_version(),
        packages=dict(torch=torch.__version__, mmcv=mmcv.__version__, mmdet=mmdet.__version__,
                      mmengine=mmengine.__version__, mmdet_imbalance=__version__))


@dataclass
class RunRecord:
    """``imbalance/run.json``. ``iter_times[i]`` is the wall time of iteration ``i``;
    ``unsteady_iters`` are those whose timer spans an evaluation or a resume."""
    status: str = 'running'  # 'running', 'stopped' (ended before max_iters), 'finished'
    config: Optional[str] = None
    settings: Dict[str, object] = field(default_factory=dict)
    environment: Dict[str, object] = field(default_factory=dict)
    work_dir: Optional[str] = None
    iter: Optional[int] = None
    max_iters: Optional[int] = None
    started: Optional[float] = None
    updated: Optional[float] = None
    device: str = 'cpu'
    world_size: int = 1
    # Whose measurements ``iter_times`` and ``peak_memory_mb`` are when world_size > 1: every
    # rank waits for the others in DDP's gradient all-reduce, so rank 0's iteration time is the
    # step's; memory is per process, and the largest one is what each process of the run needs.
    iter_times_of: str = 'rank 0'
    peak_memory_of: str = 'max over ranks'
    iter_times: List[float] = field(default_factory=list)
    unsteady_iters: List[int] = field(default_factory=list)
    resumed_at: List[int] = field(default_factory=list)
    peak_memory_mb: float = 0.
    memory_source: Optional[str] = None
    evaluations: List[dict] = field(default_factory=list)
    final_metrics: Dict[str, float] = field(default_factory=dict)
    ap: Optional[float] = None
    schema: int = SCHEMA

    @property
    def config_name(self) -> str:
        return osp.basename(self.config or '')

    @property
    def precision(self) -> Optional[str]:
        return self.settings.get('precision')

    @property
    def seed(self) -> Optional[int]:
        return self.settings.get('seed')

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'RunRecord':
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, work_dir: str) -> None:
        write_json_atomic(run_path(work_dir), self.to_dict())


def read_record(work_dir_or_file: str) -> Optional[RunRecord]:
    """The run record of a work dir (or of a ``run.json`` path); None when there is none."""
    path = work_dir_or_file if work_dir_or_file.endswith('.json') else run_path(work_dir_or_file)
    data = read_json(path)
    if not isinstance(data, dict) or data.get('schema') != SCHEMA:
        return None
    return RunRecord.from_dict(data)


class WorkDirLock:
    """An exclusive ``flock`` on ``<work_dir>/imbalance/.lock`` for as long as a run trains there.

    A second trainer of the same work dir fails at once with the pid of the holder, instead of
    writing the same checkpoints and records twice. The kernel drops the lock when the holder
    dies, however it dies.
    """

    def __init__(self, work_dir: str):
        self.path = osp.join(record_dir(work_dir), LOCK_FILE)
        self._file = None

    def acquire(self) -> None:
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        handle = open(self.path, 'a+')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or 'unknown'
            handle.close()
            raise RuntimeError(f'{osp.dirname(osp.dirname(self.path))} is being trained by '
                               f'another process (pid {holder}); wait for it, stop it, or '
                               'choose another --work-dir') from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

"""A Table 1 request: what the table tool was asked, resolved once, and the facts derived from it.

``tools/table1.py`` builds one :class:`TableRequest` from its command line (paths absolute, the
precision chosen, the rows selected); :mod:`.plan`, :mod:`.launch` and :mod:`.runs` read it and
never see the command line. A seed stays an ``int`` here: the folder of a run is formatted by
:meth:`TableRequest.run_dir`, the training command by :func:`.launch.train_command`.
"""
import dataclasses
import os.path as osp
import sys
from typing import Any, Dict, Optional, Tuple

from .collect import WARMUP_ITERS
from .rows import Row


@dataclasses.dataclass(frozen=True)
class TableRequest:
    """One table request (the options of ``tools/table1.py``, resolved).

    Args:
        rows: the selected rows, baselines included.
        work_dir: root of the row runs and of the table files (absolute).
        results: the committed results tree (absolute).
        benchmark: 'mini' or 'coco'.
        dataset: the embedded dataset of a mini request ('shapes' or 'trees').
        precision: 'fp32' or 'bf16', already resolved (never 'auto').
        seeds: train seeds ``0 .. seeds - 1``.
        cfg_options: the user's ``key=value`` overrides, as typed.
        Others as the options of ``tools/table1.py``.
    """
    rows: Tuple[Row, ...]
    work_dir: str
    results: str
    benchmark: str = 'mini'
    dataset: Optional[str] = 'shapes'
    precision: str = 'fp32'
    seeds: int = 1
    force: bool = False
    collect_only: bool = False
    reuse_results: bool = False
    from_results: bool = False
    max_iters: Optional[int] = None
    warmup_iters: int = WARMUP_ITERS
    cfg_options: Tuple[str, ...] = ()
    data_root: Optional[str] = None
    launcher: str = 'none'
    gpus: int = 1
    gpus_per_node: int = 8
    partition: Optional[str] = None
    python: str = sys.executable
    publish: Optional[str] = None
    command: str = ''

    def __post_init__(self):
        object.__setattr__(self, 'rows', tuple(self.rows))
        object.__setattr__(self, 'cfg_options', tuple(self.cfg_options))
        if self.precision not in ('fp32', 'bf16'):
            raise ValueError(f'TableRequest.precision {self.precision!r}: resolve it first '
                             "(mmdet_imbalance.engine.precision.resolve_precision)")
        bad = [o for o in self.cfg_options if '=' not in o or o.startswith('=')]
        if bad:
            raise ValueError(f'--cfg-options {" ".join(bad)}: each option must be key=value')

    @property
    def mini_dataset(self) -> Optional[str]:
        """The embedded dataset of a mini request; None for COCO."""
        return self.dataset if self.benchmark == 'mini' else None

    @property
    def trains(self) -> bool:
        """Whether the request may train (neither ``--collect-only`` nor ``--from-results``)."""
        return not (self.collect_only or self.from_results)

    @property
    def bench_dir(self) -> str:
        name = self.benchmark + (f'-{self.dataset}' if self.benchmark == 'mini' else '')
        return osp.join(self.work_dir, name)

    def run_dir(self, row: Row, seed: int) -> str:
        stem = osp.splitext(osp.basename(row.config(self.benchmark)))[0]
        return osp.join(self.bench_dir, f'seed{seed}', stem)

    def committed(self) -> 'TableRequest':
        """This request without the user's overrides and cap: what a committed record holds."""
        return dataclasses.replace(self, cfg_options=(), max_iters=None)


def run_overrides(seed: int, max_iters: Optional[int], cfg_options: Tuple[str, ...]
                  ) -> Dict[str, Any]:
    """The config overrides of a table run: its seed, the iteration cap, the user's options
    (parsed as ``--cfg-options`` parses them)."""
    from mmdet_imbalance.config_builder import parse_cfg_options
    out: Dict[str, Any] = {'randomness.seed': seed}
    if max_iters:
        out.update({'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': max_iters})
    out.update(parse_cfg_options(cfg_options))
    return out

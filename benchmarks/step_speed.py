"""Where a mini training step's time goes: the network against everything around it.

For each selected row config, on one machine, in one run:

* **step**: seconds of one full training iteration as the Runner runs it: loading and augmenting
  the batch, the data preprocessor, forward, assigners, samplers, losses, backward, the optimizer;
* **net**: seconds of the network alone at the same input size and precision: backbone, neck and
  head layers forward, then backward of the sum of their outputs (for a two-stage detector, the
  RoI head runs on as many fixed RoIs as its sampler keeps per image);
* **overhead** = step / net, what assigners, losses, data and optimizer add. Goals: <= 1.3 on the
  RetinaNet rows, <= 1.6 on the Faster R-CNN rows;
* two parts of that overhead on their own: **data**, loading and augmenting one batch in the main
  process (the mini configs load inline), and **optim**, the optim wrapper's step (gradient
  clipping and the optimizer update) on the gradients of one backward;
* **fp32 / bf16**: the speedup of the full step under bfloat16 autocast (CPUs with native bf16);
* the machine's matrix-product GFLOP/s in fp32 and bf16, so that readers can scale the times.

Times are medians over ``--iters`` rounds after ``--warmup``; a round runs one step, one network
pass and one batch load in turn, so that a drift of the machine's speed weighs on all three alike
and the ratios compare like with like. Run it with nothing else heavy on the machine.

Usage::

    python benchmarks/step_speed.py                               # the three baselines
    python benchmarks/step_speed.py --rows all --iters 10
    python benchmarks/step_speed.py --rows retinanet,ap-loss --precision bf16
"""
import argparse
import copy
import logging
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

GOALS = {'RetinaNet': 1.3, 'Faster R-CNN': 1.6}


def interleaved_medians(fns: Dict[str, Callable[[], object]], iters: int,
                        warmup: int) -> Dict[str, float]:
    """Median seconds of each of ``fns`` over ``iters`` rounds after ``warmup`` ones, a round
    calling each once in turn: a drift of the machine's speed during the measurement (these
    machines have noisy neighbours) then weighs on every one of them alike, not on whichever
    happened to be timed during it."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def median_time(fn, iters: int, warmup: int) -> float:
    return interleaved_medians({'fn': fn}, iters, warmup)['fn']


def _network_outputs(model, inputs: torch.Tensor, num_rois: int) -> List[torch.Tensor]:
    """The raw outputs of every learned layer of ``model`` on ``inputs`` (no post-processing)."""
    feats = model.extract_feat(inputs)
    outs = []
    if hasattr(model, 'rpn_head'):
        outs += [t for level in model.rpn_head(feats) for t in level]
        height, width = inputs.shape[-2:]
        generator = torch.Generator().manual_seed(0)
        rois = []
        for index in range(inputs.shape[0]):
            xy = torch.rand(num_rois, 2, generator=generator) * torch.tensor([width, height]) * 0.8
            wh = 16 + torch.rand(num_rois, 2, generator=generator) * 48
            rois.append(torch.cat([torch.full((num_rois, 1), float(index)), xy, xy + wh], 1))
        roi_outs = model.roi_head._bbox_forward(feats, torch.cat(rois))
        outs += [roi_outs['cls_score'], roi_outs['bbox_pred']]
    else:
        head_outs = model.bbox_head(feats)
        outs += [t for level in head_outs for t in level]
    return outs


def measure_row(config: str, precision: str, iters: int, warmup: int, dataset: str) -> Dict:
    """Step and network-only seconds of ``config`` at ``precision`` ('fp32' or 'bf16')."""
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdet_imbalance.config_builder import build_runner_config
    register_all_modules(init_default_scope=True)
    cfg = build_runner_config(config, dataset=dataset, precision=precision,
                              work_dir=os.path.join(REPO_ROOT, 'work_dirs', 'step_speed'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    # mmengine logs every parameter's initialiser at INFO; only the timing table is wanted here.
    init_logger = MMLogger.get_instance('mmengine')
    level = init_logger.level
    init_logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        init_logger.setLevel(level)
    model.train()
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches = iter(loader)

    def step():
        model.train_step(next(batches), optim_wrapper)

    step()  # the first step moves the model to its memory format (channels_last under bf16)
    data = model.data_preprocessor(next(batches), True)
    inputs = data['inputs']
    rcnn = (cfg.model.get('train_cfg') or {}).get('rcnn') or {}
    num_rois = (rcnn.get('sampler') or {}).get('num', 128)

    def backward():
        with optim_wrapper.optim_context(model):
            total = sum(o.float().sum() for o in _network_outputs(model, inputs, num_rois))
        total.backward()

    def network():
        backward()
        model.zero_grad(set_to_none=True)

    medians = interleaved_medians(dict(step=step, net=network, data=lambda: next(batches)),
                                  iters, warmup)
    step_s, net_s, data_s = medians['step'], medians['net'], medians['data']
    backward()
    # The same gradients applied again and again: the update's cost does not depend on them.
    optim_s = median_time(optim_wrapper.step, iters, warmup)
    return dict(step=step_s, net=net_s, data=data_s, optim=optim_s, batch=tuple(inputs.shape))


def main(argv=None):
    from mmdet_imbalance.engine.precision import native_bf16_cpu
    from mmdet_imbalance.engine.precision import gemm_gflops
    from mmdet_imbalance.table.rows import get_row, select_rows
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', default='baselines', help="'all', 'baselines' or row keys")
    parser.add_argument('--dataset', default='shapes', help='embedded dataset (default shapes)')
    parser.add_argument('--precision', choices=['both', 'fp32', 'bf16'], default='both')
    parser.add_argument('--iters', type=int, default=8, help='timed iterations per measurement')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    args = parser.parse_args(argv)
    rows = select_rows(args.rows, 'mini')
    precisions = ['fp32', 'bf16'] if args.precision == 'both' else [args.precision]
    if 'bf16' in precisions and not native_bf16_cpu():
        print('note: this CPU has no native bfloat16; bf16 times show the emulation cost')
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        pass
    print(f'machine: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, '
          f'native bf16: {native_bf16_cpu()}')
    print(f'matrix product 1024^2: fp32 {gemm_gflops(torch.float32):.0f} GFLOP/s, '
          f'bf16 {gemm_gflops(torch.bfloat16):.0f} GFLOP/s')
    header = (f"{'row':28} {'prec':5} {'step s':>8} {'net s':>8} {'overhead':>9} {'goal':>5}    "
              f"{'data s':>7} {'optim s':>7} {'fp32/bf16':>9}")
    print(header)
    print('-' * len(header))
    for row in rows:
        results = {p: measure_row(os.path.join(REPO_ROOT, row.config('mini')), p, args.iters,
                                  args.warmup, args.dataset) for p in precisions}
        goal = GOALS.get(get_row(row.key).detector)
        for p in precisions:
            r = results[p]
            speedup = (f"{results['fp32']['step'] / results['bf16']['step']:9.2f}"
                       if p == 'bf16' and 'fp32' in results else f"{'':9}")
            overhead = r['step'] / r['net']
            mark = '' if goal is None else (' ok' if overhead <= goal else ' OVER')
            print(f"{row.key:28} {p:5} {r['step']:8.3f} {r['net']:8.3f} {overhead:9.2f} "
                  f"{goal if goal else '-':>5}{mark:5} {r['data']:7.3f} {r['optim']:7.3f} "
                  f"{speedup}")


if __name__ == '__main__':
    main()

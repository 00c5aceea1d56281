"""Speed and peak memory of classification losses on COCO-scale RetinaNet logits (fwd + bwd).

Every loss is timed on the same tensors in the same run, against mmdet's ``FocalLoss`` (the Table 1
baseline), and the ratio to it is printed. The tensors mimic one RetinaNet iteration at COCO scale:
``--images`` images x ``--anchors`` anchors x ``--classes`` classes of logits, mmdet labels
(foreground ``0..C-1``, background ``C``) and label weights (0 for the ignored 0.4-0.5 IoU band).

Scenarios (named, in the table below):

* ``mid``: mid-training logits (negatives ~ N(-6, 1.5), positives ~ N(-1, 1.5)), ``--pos``
  positive anchors per image (~150: about 7 objects x 20 anchors at IoU >= 0.5 on COCO).
* ``early``: prior-initialised logits (all ~ -4.6 +- 0.02, the first iterations): for AP-Loss
  every negative lies above the cut-off ``min(s_P) - delta``, the worst case of the pruning.
* ``mid-pos<N>``: mid-training logits with N positives per image, to show the growth with |P|.

Cases are entries of ``CASES`` (name -> function of the inputs that returns a scalar loss); add a
loss by adding a case. A case whose import fails is skipped with a printed note.

Timing: each (scenario, case) runs once to warm up, then ``--repeat`` times, cases interleaved
(round-robin) so that load changes on a shared machine hit all of them alike; the median and the
minimum wall time of forward + backward are printed, each with its ratio to the baseline (on a
shared machine the minima are the more stable comparison).

Peak memory: ``tracemalloc`` does not see torch's allocations, so each (scenario, case) is run
in a fresh subprocess that builds the inputs (in place, without temporaries), runs forward +
backward once to warm up, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs it
again and reads the peak (``VmHWM`` in ``/proc/self/status``). The subprocess runs with
``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns freed tensor memory to the system instead of
keeping it (with its default dynamic threshold, buffers freed by the warm-up would be reused
without raising the RSS). Printed: that peak minus the resident size before the run,
i.e. the extra memory of the loss (temporaries, saved tensors and the logits' gradient). The
process-wide ``ru_maxrss`` is not used: after fork + exec Linux carries the parent's peak over to
the child, which hides the child's own. Without ``/proc`` (not Linux) memory is not reported.

Usage::

    python benchmarks/loss_speed.py            # 2 x 120k x 80, takes a few minutes on 2 cores
    python benchmarks/loss_speed.py --quick    # 2 x 20k x 80
    python benchmarks/loss_speed.py --ranking --threads 2 --repeat 7   # RS / aLRP vs FocalLoss
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Optional

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def make_inputs(images: int,
                anchors: int,
                classes: int,
                pos_per_image: int,
                regime: str,
                ignore_frac: float = 0.015,
                seed: int = 0) -> Dict[str, torch.Tensor]:
    """Logits (B, A, C) float32, labels (B, A) int64 and label_weights (B, A) float32.

    Built with in-place operations only, so that the subprocess memory baseline is not inflated by
    temporaries of the input generation.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = torch.empty(images, anchors, classes)
    labels = torch.full((images, anchors), classes, dtype=torch.long)
    weights = torch.ones(images, anchors)
    if regime == 'early':
        logits.normal_(-math.log(99.0), 0.02, generator=gen)
    elif regime == 'mid':
        logits.normal_(-6.0, 1.5, generator=gen)
    elif regime == 'trained':
        logits.normal_(-7.0, 1.5, generator=gen)
    else:
        raise ValueError(f'unknown regime {regime!r}')
    for img in range(images):
        perm = torch.randperm(anchors, generator=gen)
        pos = perm[:pos_per_image]
        labels[img, pos] = torch.randint(0, classes, (pos_per_image, ), generator=gen)
        weights[img, perm[pos_per_image:pos_per_image + int(ignore_frac * anchors)]] = 0
        if regime in ('mid', 'trained'):
            # Positive entries (GT class of positive anchors) score higher.
            logits[img, pos, labels[img, pos]] = torch.randn(
                pos_per_image, generator=gen) * 1.5 - (1.0 if regime == 'mid' else 0.0)
    return dict(logits=logits, labels=labels, label_weights=weights)


def case_focal(inputs) -> Callable:
    from mmdet.models.losses import FocalLoss
    loss_fn = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)

    def run(logits):
        num_classes = logits.size(-1)
        labels = inputs['labels'].reshape(-1)
        num_pos = max(int((labels < num_classes).sum()), 1)
        return loss_fn(
            logits.reshape(-1, num_classes),
            labels,
            inputs['label_weights'].reshape(-1),
            avg_factor=num_pos)

    return run


def case_ap_loss(inputs) -> Callable:
    from mmdet_imbalance.models.dense_heads.ranking_rows import ranking_targets
    from mmdet_imbalance.models.losses.ap_loss import ap_loss

    def run(logits):
        # Target construction is part of the timed work, as one-hot encoding is in FocalLoss.
        num_classes = logits.size(-1)
        targets = ranking_targets(inputs['labels'], inputs['label_weights'], num_classes)
        return ap_loss(logits.reshape(-1, num_classes), targets.reshape(-1, num_classes))

    return run


def case_dr_loss(inputs) -> Callable:
    from mmdet_imbalance.models.losses.dr_loss import dr_loss

    def run(logits):
        # DR Loss ranks per image (docs/methods/dr-loss.md §4): one call per image, then the mean.
        return sum(
            dr_loss(logits[i], inputs['labels'][i], inputs['label_weights'][i])
            for i in range(logits.size(0))) / logits.size(0)

    return run


def _positive_values(inputs, low: float, high: float) -> torch.Tensor:
    """One fixed value in [low, high) per positive anchor (IoU labels, localisation errors)."""
    num_pos = int((inputs['labels'] < inputs['logits'].size(-1)).sum())
    gen = torch.Generator().manual_seed(1)
    return torch.rand(num_pos, generator=gen) * (high - low) + low


def case_rs_loss(inputs) -> Callable:
    from mmdet_imbalance.models.dense_heads.ranking_rows import ranking_targets
    from mmdet_imbalance.models.losses.rank_sort_loss import rank_sort_loss
    ious = _positive_values(inputs, 0.5, 1.0)

    def run(logits):
        # Targets with IoU labels are built in the timed work, as one-hot encoding in FocalLoss.
        num_classes = logits.size(-1)
        targets = ranking_targets(inputs['labels'], inputs['label_weights'],
                                  num_classes).to(logits.dtype)
        targets[targets == 1] = ious
        ranking, sorting = rank_sort_loss(logits.reshape(-1), targets.reshape(-1))
        return ranking + sorting

    return run


def case_alrp_loss(inputs) -> Callable:
    from mmdet_imbalance.models.dense_heads.ranking_rows import ranking_targets
    from mmdet_imbalance.models.losses.alrp_loss import alrp_loss
    errors = _positive_values(inputs, 0.0, 2.0)

    def run(logits):
        num_classes = logits.size(-1)
        targets = ranking_targets(inputs['labels'], inputs['label_weights'], num_classes)
        cls_loss, loc_loss = alrp_loss(logits.reshape(-1), targets.reshape(-1), errors)
        return cls_loss + loc_loss

    return run


CASES = {
    'focal': case_focal,
    'ap-loss': case_ap_loss,
    'dr-loss': case_dr_loss,
    'rs-loss': case_rs_loss,
    'alrp-loss': case_alrp_loss,
}
BASELINE = 'focal'


def build_cases(inputs, names) -> Dict[str, Callable]:
    runners = {}
    for name in names:
        try:
            runners[name] = CASES[name](inputs)
        except ImportError as exc:
            print(f'note: case {name!r} skipped, import failed: {exc}')
    return runners


def fwd_bwd(run: Callable, logits: torch.Tensor) -> float:
    x = logits.detach().requires_grad_()
    start = time.perf_counter()
    loss = run(x)
    loss.backward()
    elapsed = time.perf_counter() - start
    if not torch.isfinite(loss) or not torch.isfinite(x.grad).all():
        raise RuntimeError('non-finite loss or gradient')
    return elapsed


def ranking_pairs(args) -> None:
    """RS and aLRP Loss against FocalLoss (goal: <= 1.5x in both regimes).

    One image of ``--anchors`` (default 60k) x ``--classes`` logits, 150 and 1000 positives, in
    the init-like regime (every logit ~ the prior bias, all negatives inside the ramps) and the
    trained-like one (negatives ~ N(-7, 1.5), positives ~ N(0, 1.5)). Each repetition times
    FocalLoss and the loss back to back; the median of the per-pair ratios is printed, so that
    load changes on a shared machine cancel within a pair.
    """
    print(f'torch {torch.__version__}, {args.threads} threads; logits {args.images} x '
          f'{args.anchors} x {args.classes} float32; forward + backward; median of '
          f'{args.repeat} back-to-back pairs')
    header = f'{"regime":<9}{"|P|":>6} {"case":<10}{"focal ms":>9}{"loss ms":>9}{"ratio":>7}'
    print(header)
    print('-' * len(header))
    for regime, label in (('early', 'init'), ('trained', 'trained')):
        for pos in (150, 1000):
            inputs = make_inputs(args.images, args.anchors, args.classes, pos, regime)
            runners = build_cases(inputs, [BASELINE, 'rs-loss', 'alrp-loss'])
            for run in runners.values():
                fwd_bwd(run, inputs['logits'])  # warm-up
            for name in ('rs-loss', 'alrp-loss'):
                pairs = [(fwd_bwd(runners[BASELINE], inputs['logits']),
                          fwd_bwd(runners[name], inputs['logits'])) for _ in range(args.repeat)]
                focal = statistics.median(p[0] for p in pairs)
                loss = statistics.median(p[1] for p in pairs)
                ratio = statistics.median(p[1] / p[0] for p in pairs)
                print(f'{label:<9}{pos * args.images:>6} {name:<10}{focal * 1e3:9.0f}'
                      f'{loss * 1e3:9.0f}{ratio:7.2f}')
            del inputs, runners


def time_cases(runners: Dict[str, Callable], logits: torch.Tensor, repeat: int):
    times = {name: [] for name in runners}
    for name, run in runners.items():
        fwd_bwd(run, logits)  # warm-up
    for _ in range(repeat):
        for name, run in runners.items():
            times[name].append(fwd_bwd(run, logits))
    return times


def _status_mib(key: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024  # kB
    raise KeyError(key)


def child_memory(args) -> None:
    """Subprocess entry: print the extra peak RSS (MiB) of one forward + backward."""
    torch.set_num_threads(args.threads)
    inputs = make_inputs(args.images, args.anchors, args.classes, args.child_pos, args.child_regime)
    runners = build_cases(inputs, [args.child_case])
    if args.child_case not in runners:
        print('nan')
        return
    fwd_bwd(runners[args.child_case], inputs['logits'])  # warm-up: one-time allocations
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        before = _status_mib('VmRSS')
    except OSError:
        print('nan')
        return
    fwd_bwd(runners[args.child_case], inputs['logits'])
    print(_status_mib('VmHWM') - before)


def peak_memory_mib(args, case: str, regime: str, pos: int) -> Optional[float]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__), '--images',
        str(args.images), '--anchors',
        str(args.anchors), '--classes',
        str(args.classes), '--threads',
        str(args.threads), '--child-case', case, '--child-regime', regime, '--child-pos',
        str(pos)
    ]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = out.stdout.strip().splitlines()
    try:
        value = float(lines[-1])
    except (IndexError, ValueError):
        print(f'note: memory of {case!r} not measured: {out.stderr.strip()[-300:]}')
        return None
    return None if math.isnan(value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='2 x 20k anchors x 80 classes')
    parser.add_argument('--images', type=int, default=2)
    parser.add_argument('--anchors', type=int, default=None, help='per image (default 120000)')
    parser.add_argument('--classes', type=int, default=80)
    parser.add_argument('--pos', type=int, default=150, help='positive anchors per image')
    parser.add_argument('--repeat', type=int, default=None, help='timed runs (default 5; 3 quick)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    parser.add_argument(
        '--growth',
        type=int,
        nargs='*',
        default=None,
        help='positives per image for the |P| growth table')
    parser.add_argument('--no-memory', action='store_true', help='skip the subprocess memory runs')
    parser.add_argument(
        '--ranking',
        action='store_true',
        help='RS / aLRP Loss vs FocalLoss: 1 x 60k x 80, 150 and 1000 positives, init-like and '
        'trained-like logits, median of per-pair ratios')
    parser.add_argument('--child-case', help=argparse.SUPPRESS)
    parser.add_argument('--child-regime', help=argparse.SUPPRESS)
    parser.add_argument('--child-pos', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ranking:
        args.images = 1 if args.images == 2 else args.images
        args.anchors = args.anchors or 60_000
    if args.anchors is None:
        args.anchors = 20_000 if args.quick else 120_000
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.growth is None:
        args.growth = [15, 1500] if args.quick else [15, 1500, 15000]
    if args.child_case:
        child_memory(args)
        return
    if BASELINE not in args.cases:
        args.cases.insert(0, BASELINE)
    torch.set_num_threads(args.threads)
    if args.ranking:
        ranking_pairs(args)
        return

    print(f'torch {torch.__version__}, {args.threads} threads; logits {args.images} x '
          f'{args.anchors} x {args.classes} float32; forward + backward; '
          f'median / min of {args.repeat} runs')
    scenarios = [('mid', 'mid', args.pos), ('early', 'early', args.pos)]
    scenarios += [(f'mid-pos{p}', 'mid', p) for p in args.growth if p != args.pos]
    header = f'{"scenario":<14}{"|P|":>7} {"case":<10}{"median ms":>11}{"x focal":>9}' \
             f'{"min ms":>9}{"x focal":>9}{"peak MiB":>10}'
    print(header)
    print('-' * len(header))
    for scenario, regime, pos in scenarios:
        inputs = make_inputs(args.images, args.anchors, args.classes, pos, regime)
        runners = build_cases(inputs, args.cases)
        times = time_cases(runners, inputs['logits'], args.repeat)
        base_median = statistics.median(times[BASELINE])
        base_min = min(times[BASELINE])
        # Memory only for the two main scenarios: it needs one subprocess per case.
        with_memory = not args.no_memory and scenario in ('mid', 'early')
        for name, values in times.items():
            median, fastest = statistics.median(values), min(values)
            mem = peak_memory_mib(args, name, regime, pos) if with_memory else None
            mem_text = f'{mem:10.0f}' if mem is not None else f'{"-":>10}'
            print(f'{scenario:<14}{pos * args.images:>7} {name:<10}{median * 1e3:11.0f}'
                  f'{median / base_median:9.2f}{fastest * 1e3:9.0f}{fastest / base_min:9.2f}'
                  f'{mem_text}')
        del inputs, runners


if __name__ == '__main__':
    main()

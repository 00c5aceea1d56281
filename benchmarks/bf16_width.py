"""What bfloat16 autocast gains on the mini models' convolutions, and why it is so little.

A mini step gains only 1.02-1.19x from bf16 autocast although the CPU's bf16 matrix products run
3-4.5x faster than fp32 ones (docs/calibration.md, "Where a step's time goes"). This benchmark
times forward + backward of a tower shaped like a mini head (``--convs`` blocks of a 3x3
convolution, GroupNorm(16) and ReLU, batch 4, channels_last) in fp32 and under
``torch.autocast('cpu', bfloat16)``, for each width in ``--channels`` at the same arithmetic
(the feature map shrinks as the width grows), in one process. It also prints the dtype GroupNorm
returns under autocast: bf16 means that autocast adds no casts around the normalisation, so what
is left to explain the small gain is the width of the convolutions.

    python benchmarks/bf16_width.py
    python benchmarks/bf16_width.py --channels 64 256 --convs 4

Run it with nothing else heavy on the machine.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCHMARKS)
for path in (REPO_ROOT, BENCHMARKS):
    if path not in sys.path:
        sys.path.insert(0, path)

from step_speed import median_time  # noqa: E402

#: Feature map side of the narrowest width; wider towers get a smaller map, same FLOPs.
BASE_SIZE = 64


def tower(channels: int, convs: int) -> nn.Module:
    layers = []
    for _ in range(convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(16, channels),
                   nn.ReLU()]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def groupnorm_dtype_under_autocast() -> torch.dtype:
    """The dtype GroupNorm returns for a bf16 activation under CPU bf16 autocast."""
    with torch.autocast('cpu', dtype=torch.bfloat16):
        return nn.GroupNorm(16, 32)(torch.randn(1, 32, 4, 4, dtype=torch.bfloat16)).dtype


def median_seconds(model: nn.Module, x: torch.Tensor, autocast: bool, iters: int,
                   warmup: int) -> float:
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            out = model(x)
        out.float().sum().backward()

    return median_time(step, iters, warmup)


def main(argv=None):
    from mmdet_imbalance.engine.precision import native_bf16_cpu
    from mmdet_imbalance.engine.precision import gemm_gflops
    from mmdet_imbalance.engine.run_record import cpu_model
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--channels', type=int, nargs='+', default=[32, 64, 128, 256],
                        help='tower widths, the first at a 64 px map (mini head: 64)')
    parser.add_argument('--convs', type=int, default=8, help='conv + GroupNorm + ReLU blocks')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    args = parser.parse_args(argv)
    bad = [c for c in args.channels if c % 16]
    if bad:
        parser.error(f'--channels {bad}: GroupNorm(16) needs multiples of 16')
    print(f'machine: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, '
          f'native bf16: {native_bf16_cpu()}')
    print(f'matrix product 1024^2: fp32 {gemm_gflops(torch.float32):.0f} GFLOP/s, '
          f'bf16 {gemm_gflops(torch.bfloat16):.0f} GFLOP/s')
    print(f'GroupNorm output under bf16 autocast: {groupnorm_dtype_under_autocast()}')
    print(f'{args.convs} x (conv3x3 + GroupNorm(16) + ReLU), batch 4, forward + backward, '
          f'median of {args.iters}:')
    print(f"  {'channels':>8} {'map':>7} {'fp32 ms':>8} {'bf16 ms':>8} {'fp32 / bf16':>11}")
    first = args.channels[0]
    torch.manual_seed(0)
    for channels in args.channels:
        size = max(4, round(BASE_SIZE * first / channels))
        x = torch.randn(4, channels, size, size).to(memory_format=torch.channels_last)
        model = tower(channels, args.convs)
        fp32 = median_seconds(model, x, False, args.iters, args.warmup)
        bf16 = median_seconds(model, x, True, args.iters, args.warmup)
        print(f'  {channels:8d} {size:>3d}x{size:<3d} {fp32 * 1000:8.1f} {bf16 * 1000:8.1f} '
              f'{fp32 / bf16:11.2f}')


if __name__ == '__main__':
    main()

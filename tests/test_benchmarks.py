"""benchmarks/bf16_width.py measures what docs/calibration.md says it does: GroupNorm keeps a
bf16 activation in bf16 under CPU autocast (so autocast adds no casts around it), the towers of
every width have the same arithmetic, and the script runs end to end."""
import importlib.util
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(f'bench_{name}',
                                                  os.path.join(REPO, 'benchmarks', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_groupnorm_stays_bf16_under_cpu_autocast():
    assert _load('bf16_width').groupnorm_dtype_under_autocast() == torch.bfloat16


def test_width_sweep_keeps_the_arithmetic_and_prints_every_width(capsys):
    bench = _load('bf16_width')
    bench.main(['--channels', '16', '32', '--convs', '1', '--iters', '1', '--warmup', '0'])
    out = capsys.readouterr().out
    assert 'GFLOP/s' in out and 'GroupNorm output under bf16 autocast: torch.bfloat16' in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:2] in ('16', '32')]
    sizes = {int(r[0]): int(r[1].split('x')[0]) for r in rows}
    assert sizes == {16: bench.BASE_SIZE, 32: bench.BASE_SIZE // 2}
    # Conv FLOPs grow with channels^2 x map area: the same for both widths.
    assert {c * c * s * s for c, s in sizes.items()} == {16 * 16 * bench.BASE_SIZE ** 2}

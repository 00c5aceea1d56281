"""--precision: what auto resolves to, how a config is switched, one real run in each precision."""
import os
import subprocess
import sys

import pytest
import torch

from mmdet_imbalance.engine import precision as precision_module
from mmdet_imbalance.engine.precision import bf16_pays_off, native_bf16_cpu, resolve_precision
from mmdet_imbalance.engine.run_record import read_record, run_settings
from mmdet_imbalance.config_builder import build_runner_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'configs/mini/retinanet_mini.py')
GHM_CONFIG = os.path.join(REPO, 'configs/mini/retinanet_mini_ghm-c.py')
TINY = ['train_dataloader.batch_size=2', 'val_dataloader.dataset.indices=2',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2']


def test_resolve_precision():
    assert resolve_precision('fp32') == 'fp32' and resolve_precision('bf16') == 'bf16'
    if not torch.cuda.is_available():
        assert resolve_precision('auto') == ('bf16' if bf16_pays_off() else 'fp32')
    with pytest.raises(ValueError, match="'fp8'"):
        resolve_precision('fp8')


# Matrix-product rates measured on this project's machines (docs/calibration.md): an AMD EPYC whose
# bf16 product is 4.5x its fp32 one, and an Intel Xeon that reports AVX512-BF16 but whose bf16
# product runs at half its fp32 rate.
EPYC, XEON = {'fp32': 202.0, 'bf16': 910.0}, {'fp32': 289.0, 'bf16': 152.0}


@pytest.mark.parametrize('native,rates,expected', [
    (True, EPYC, 'bf16'), (True, XEON, 'fp32'), (False, EPYC, 'fp32'),
    (True, {'fp32': 100.0, 'bf16': 199.0}, 'fp32'), (True, {'fp32': 100.0, 'bf16': 200.0}, 'bf16')])
def test_auto_takes_bf16_only_where_its_matrix_product_is_twice_as_fast(monkeypatch, native, rates,
                                                                        expected):
    monkeypatch.setattr(precision_module, 'native_bf16_cpu', lambda: native)
    monkeypatch.setattr(precision_module, 'cpu_gemm_gflops', lambda: rates)
    assert resolve_precision('auto', device='cpu') == expected


@pytest.fixture
def fresh_rates():
    precision_module.cpu_gemm_gflops.cache_clear()
    yield
    precision_module.cpu_gemm_gflops.cache_clear()


def test_a_run_takes_the_rates_its_parent_chose_by(monkeypatch, fresh_rates):
    """The table tool resolves ``auto`` on its own measurement and hands it to its runs, so that
    each record holds the rates the choice was made on, not a second measurement."""
    monkeypatch.delenv(precision_module.RATES_ENV, raising=False)
    assert precision_module.rates_for_children() == {}  # nothing measured: nothing to hand on
    monkeypatch.setattr(precision_module, 'gemm_gflops',
                        lambda dtype: {torch.float32: 100.0, torch.bfloat16: 250.0}[dtype])
    parent = precision_module.cpu_gemm_gflops()
    handed = precision_module.rates_for_children()
    precision_module.cpu_gemm_gflops.cache_clear()
    monkeypatch.setattr(precision_module, 'gemm_gflops', lambda dtype: 1.0)  # a child's own
    monkeypatch.setenv(precision_module.RATES_ENV, handed[precision_module.RATES_ENV])
    assert precision_module.cpu_gemm_gflops() == parent == {'fp32': 100.0, 'bf16': 250.0}
    monkeypatch.setenv(precision_module.RATES_ENV, 'fast')
    precision_module.cpu_gemm_gflops.cache_clear()
    with pytest.raises(ValueError, match=precision_module.RATES_ENV + ".*'fast'"):
        precision_module.cpu_gemm_gflops()


def test_the_table_hands_its_rates_to_the_run_it_starts(tmp_path, monkeypatch, fresh_rates):
    from mmdet_imbalance.table import launch
    from mmdet_imbalance.table.rows import get_row
    from mmdet_imbalance.testing import table_request
    monkeypatch.setattr(precision_module, 'gemm_gflops', lambda dtype: 7.0)
    precision_module.cpu_gemm_gflops()
    seen = {}

    class Done:
        returncode = 0

        def __init__(self, cmd, env, **kwargs):
            seen.update(env)

        def poll(self):
            return 0

    monkeypatch.setattr(launch.subprocess, 'Popen', Done)
    launch.train_run(table_request(tmp_path), get_row('retinanet'), 0, launch.Progress(1), 'x')
    assert seen[precision_module.RATES_ENV] == '{"fp32": 7.0, "bf16": 7.0}'


def test_native_bf16_agrees_with_torch_capabilities():
    caps = torch.cpu.get_capabilities()
    assert native_bf16_cpu() == bool(caps.get('avx512_bf16') or caps.get('amx_bf16'))


@pytest.mark.parametrize('precision,wrapper', [('fp32', 'OptimWrapper'),
                                               ('bf16', 'CPUAutocastOptimWrapper')])
def test_config_switch(precision, wrapper):
    cfg = build_runner_config(GHM_CONFIG, precision=precision, check_files=False)
    assert cfg.optim_wrapper.type == wrapper
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)  # the row's own, kept
    assert run_settings(cfg)['precision'] == precision


def test_precision_is_part_of_a_run_identity():
    fp32 = run_settings(build_runner_config(CONFIG, precision='fp32', check_files=False))
    bf16 = run_settings(build_runner_config(CONFIG, precision='bf16', check_files=False))
    assert fp32['config_sha256'] != bf16['config_sha256']
    assert {k for k in fp32 if fp32[k] != bf16[k]} == {'config_sha256', 'precision'}


@pytest.mark.slow
def test_an_fp32_and_a_bf16_run_of_one_tiny_config(tmp_path):
    weights = {}
    for precision in ('fp32', 'bf16'):
        work_dir = tmp_path / precision
        cmd = [sys.executable, os.path.join(REPO, 'tools/train.py'), CONFIG, '--work-dir',
               str(work_dir), '--precision', precision, '--cfg-options', *TINY]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        record = read_record(str(work_dir))
        assert record.status == 'finished' and record.precision == precision
        assert record.ap is not None
        state = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                           weights_only=False)['state_dict']
        assert all(v.dtype != torch.bfloat16 for v in state.values())  # fp32 master weights
        weights[precision] = state
    # Same seed and data: the only difference is the arithmetic, and it shows in the weights.
    assert any(not torch.equal(weights['fp32'][k], weights['bf16'][k]) for k in weights['fp32']
               if weights['fp32'][k].is_floating_point())

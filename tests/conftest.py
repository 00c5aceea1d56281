import os
import socket
import sys

# OpenMP threads that spin while waiting (the default) burn the other core when the machine is
# shared, which made the suite up to 3x slower in wall time; they must yield instead. Set before
# torch is imported.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(scope='session', autouse=True)
def _register_modules():
    """Register mmdet's and this package's modules once, with the 'mmdet' default scope."""
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    import mmdet_imbalance  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a process group's rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]

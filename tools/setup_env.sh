#!/usr/bin/env bash
# Creates .venv with the OpenMMLab stack proven together on CPU machines, then installs this package
# in editable mode. Idempotent: a second run checks the stamp and the imports, and returns in seconds.
#
#   torch 2.13.0 · mmengine 0.10.7 · mmcv 2.1.0 (compiled ops) · mmdet 3.3.0 · pycocotools · openmim
#
# Environment knobs:
#   PYTHON=python3.11        interpreter for the venv (3.9 to 3.12; mmcv 2.1.0 has no 3.13 support)
#   VENV=.venv               where the environment lives
#   TORCH_SPEC=torch==2.13.0 the torch requirement. Where the package source offers a CPU build
#                            (as this project's machines do) that is what it installs.
#   TORCH_INDEX_URL=         an index to take torch from, e.g. PyTorch's CPU-only wheel index on a
#                            machine without a GPU whose default index would serve a CUDA build,
#                            or a CUDA index on a GPU machine. The script warns when it finds a
#                            CUDA build of torch on a machine without an NVIDIA driver.
#   MMCV_WHEELS=../shared/wheels  a folder of prebuilt mmcv wheels used as a pip cache if present;
#                            without it mmcv is compiled from source (about 17 min on 2 cores) and pip
#                            keeps the built wheel in its cache, so it is built once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
MMCV_WHEELS=${MMCV_WHEELS:-../shared/wheels}
STACK="$TORCH_SPEC mmengine==0.10.7 mmcv==2.1.0 mmdet==3.3.0 pycocotools==2.0.11 openmim==0.3.9 deepforest==2.1.0 setup-v1"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH. Install Python 3.11 (3.9-3.12 work) or set PYTHON=/path/to/python3.11."
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$pyver" in
  3.9|3.10|3.11|3.12) ;;
  *) die "Python $pyver found at $(command -v "$PYTHON"); mmcv 2.1.0 and mmdet 3.3.0 need 3.9-3.12. Set PYTHON=python3.11." ;;
esac
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "Python $pyver lacks venv/ensurepip. On Debian/Ubuntu: apt-get install python$pyver-venv."

stamp="$VENV/.mmdet_imbalance-stack"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$STACK" ] \
   && "$VENV/bin/python" -c 'import mmcv.ops, mmdet, mmdet_imbalance, pycocotools' 2>/dev/null; then
  say "environment $VENV is up to date ($(cat "$stamp" | cut -d' ' -f1-4))"
  exit 0
fi

free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
[ "${free_kb:-0}" -ge $((4 * 1024 * 1024)) ] || die "only $((free_kb / 1024)) MiB free in $(pwd); the environment and data need about 4 GiB. Free some disk and rerun."

[ -d "$VENV" ] || { say "creating $VENV with Python $pyver"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
findlinks=()
if [ -d "$MMCV_WHEELS" ]; then findlinks=(--find-links "$MMCV_WHEELS"); fi

say "build tools: setuptools<82 (mmcv's setup.py, mmengine and mim import pkg_resources), wheel"
"${PIP[@]}" install -q "pip>=23" "setuptools>=69,<82" wheel
say "torch: $TORCH_SPEC${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL}"
torch_index=()
if [ -n "$TORCH_INDEX_URL" ]; then torch_index=(--index-url "$TORCH_INDEX_URL"); fi
"${PIP[@]}" install -q "${torch_index[@]}" "$TORCH_SPEC"
torch_cuda=$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null || true)
if [ -n "$torch_cuda" ] && ! command -v nvidia-smi >/dev/null; then
  say "WARNING: torch is a CUDA $torch_cuda build but this machine has no NVIDIA driver; it runs on the CPU but costs gigabytes. For the CPU build: rm -rf $VENV and rerun with TORCH_INDEX_URL=<PyTorch's CPU wheel index>."
fi

if ! "$VENV/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  if ! "${PIP[@]}" download -q --no-deps --only-binary=:all: "${findlinks[@]}" -d "$(mktemp -d)" mmcv==2.1.0 >/dev/null 2>&1; then
    command -v g++ >/dev/null || die "mmcv 2.1.0 must be compiled (no wheel for this torch) but no C++ compiler was found. Install one (Debian/Ubuntu: apt-get install g++) and rerun."
    say "mmcv 2.1.0: compiling from source with its ops (about 17 min on 2 cores; pip caches the wheel)"
  fi
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" install --no-build-isolation "${findlinks[@]}" mmcv==2.1.0 \
    || die "mmcv 2.1.0 failed to build. Check the compiler output above; it needs torch installed first and setuptools<82."
fi
"$VENV/bin/python" -c 'import mmcv.ops' 2>/dev/null \
  || die "mmcv is installed without its compiled ops (mmcv._ext missing), which mmdet needs. Remove it ('$VENV/bin/pip uninstall -y mmcv'), purge the cached wheel ('$VENV/bin/pip cache remove mmcv') and rerun."

say "mmengine, mmdet, pycocotools, openmim, test and plot tools"
"${PIP[@]}" install -q mmengine==0.10.7 mmdet==3.3.0 pycocotools==2.0.11 matplotlib pytest
# openmim's declared dependency chain (opendatalab -> openxlab) pins setuptools 60, which breaks
# editable installs and conflicts with torch; `mim train/test/run` import none of it.
"${PIP[@]}" install -q --no-deps openmim==0.3.9
"${PIP[@]}" install -q Click colorama model-index pandas requests rich tabulate
# deepforest only carries the embedded aerial images; its own dependencies are heavy and unused.
"${PIP[@]}" install -q --no-deps deepforest==2.1.0
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

"$VENV/bin/python" - <<'PY' || die "the installed stack does not import; see the traceback above."
import mmcv, mmcv.ops, mmdet, mmengine, torch, pycocotools, mmdet_imbalance
print('[setup] torch %s, mmcv %s (ops ok), mmengine %s, mmdet %s, mmdet_imbalance %s' % (
    torch.__version__, mmcv.__version__, mmengine.__version__, mmdet.__version__,
    mmdet_imbalance.__version__))
PY
echo "$STACK" > "$stamp"
say "done: activate with 'source $VENV/bin/activate'"
say "note: 'mim search mmdet_imbalance' needs a regular install ('pip install .'): mim reads site-packages/mmdet_imbalance/.mim/model-index.yml, which an editable install does not create; here the index is model-index.yml"

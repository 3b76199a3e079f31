#!/usr/bin/env bash
# Idempotent set-up of the protune_mm stack: venv, torch, mmcv 2.1.0 (with ops),
# mmengine / mmdet / mmseg / mmpretrain / timm, and this package in editable mode.
#
# Environment knobs:
#   PROTUNE_TORCH_SPEC   pip spec used only when no working torch+torchvision pair
#                        is installed (default: "torch==2.14.1 torchvision==0.29.1").
#   PROTUNE_CACHE        where built mmcv wheels are kept (default ~/.cache/protune_mm).
#   MAX_JOBS             parallel compile jobs for mmcv (default: number of cores).
#   FORCE_CUDA           1: build mmcv's CUDA ops even with no GPU visible; 0: CPU ops only;
#                        unset: CUDA ops when torch has CUDA and sees a GPU (tools/build_mmcv.sh).
#   TORCH_CUDA_ARCH_LIST CUDA architectures to compile for (default: the visible GPUs').
#   CUDA_HOME, PROTUNE_PYPI_CUDA  the CUDA toolkit to compile with (see tools/build_mmcv.sh).
#   PROTUNE_WHEELHOUSE   install only from this folder (make wheelhouse), with no network at all.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup_specs.sh
source "$REPO/tools/setup_specs.sh"
CACHE="${PROTUNE_CACHE:-$HOME/.cache/protune_mm}"
T0=$(date +%s)
STEP=""

elapsed() { echo $(( $(date +%s) - T0 )); }
step() { STEP="$1"; printf '[setup %4ss] %s\n' "$(elapsed)" "$1"; }
on_error() {
  local rc=$?
  printf '\n[setup] FAILED at step: %s (exit code %s, after %ss)\n' "$STEP" "$rc" "$(elapsed)" >&2
  printf '[setup] %s\n' "${HINT:-Read the output above, fix the cause, and run this script again; finished steps are skipped.}" >&2
  exit "$rc"
}
trap on_error ERR
if [[ -n "${PROTUNE_WHEELHOUSE:-}" ]]; then
  # Every pip call (build_mmcv.sh's too) reads these: nothing is fetched from an index.
  export PROTUNE_WHEELHOUSE="$(cd "$PROTUNE_WHEELHOUSE" && pwd)" PIP_NO_INDEX=1
  export PIP_FIND_LINKS="$PROTUNE_WHEELHOUSE"
fi

# 1. Python environment ---------------------------------------------------------
step "python environment"
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY="$VIRTUAL_ENV/bin/python"
  echo "  using the active virtual environment $VIRTUAL_ENV"
else
  if [[ ! -x "$REPO/.venv/bin/python" ]]; then
    HINT="python3 -m venv failed: install the venv module (Debian: apt install python3-venv)."
    python3 -m venv "$REPO/.venv"
  fi
  PY="$REPO/.venv/bin/python"
  echo "  using $REPO/.venv"
fi
PIP=("$PY" -m pip --disable-pip-version-check)
"$PY" -c 'import sys; assert sys.version_info >= (3, 8), sys.version' \
  || { HINT="Python >= 3.8 is required."; false; }

# 2. torch + torchvision ----------------------------------------------------------
step "torch + torchvision"
torch_ok() { "$PY" - <<'PY' >/dev/null 2>&1
import torch, torchvision
from torchvision.ops import nms
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
PY
}
if torch_ok; then
  echo "  found $("$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
else
  # A CUDA build of torch from PyPI unpacks to about 6 GiB, plus pip's temporary
  # copies: say so before pip dies half-way with "No space left on device".
  NEED_GIB=8
  for dir in "$(dirname "$PY")" "${TMPDIR:-/tmp}"; do
    free=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
    if (( free < NEED_GIB )); then
      HINT="only $free GiB free on the disk of $dir; installing '$TORCH_SPEC' needs about $NEED_GIB GiB there (the CUDA libraries and pip's temporary files): free space, or set TMPDIR / VIRTUAL_ENV to another disk, then rerun."
      false
    fi
  done
  HINT="installing '$TORCH_SPEC' failed. Install a matching torch/torchvision pair for your CUDA yourself (https://pytorch.org), or set PROTUNE_TORCH_SPEC, then rerun."
  # shellcheck disable=SC2086
  "${PIP[@]}" install $TORCH_SPEC
  torch_ok || { HINT="torch and torchvision do not work together (torchvision.ops.nms fails): install a matching pair."; false; }
fi
TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__)')
PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

# 3. mmcv with compiled ops, built once per (torch, python, CUDA, architectures) ----
step "mmcv $MMCV_VERSION with ops"
# Build tools first (versions: tools/setup_specs.sh).
HINT="installing the build tools failed (needs PyPI access, or PROTUNE_WHEELHOUSE)."
"${PIP[@]}" install -q "${BUILD_SPECS[@]}"
# The cache key says what the wheel can run on: torch-<torch>-<python>-cpu, or
# ...-cuda<nvcc version>-sm<arch>[-sm<arch>...]; build_mmcv.sh decides CPU or CUDA ops and
# checks nvcc against torch's CUDA (a clear error names both versions).
HINT="the CUDA set-up for mmcv is incomplete: the error above says what to install or set (or FORCE_CUDA=0 for CPU ops only)."
KEY=$(PY="$PY" bash "$REPO/tools/build_mmcv.sh" --print-key)
[[ $KEY == *-cpu ]] && WANT_CUDA=0 || WANT_CUDA=1
echo "  wheel cache key: $KEY"
mmcv_ok() { WANT_CUDA=$WANT_CUDA "$PY" - <<'PY' >/dev/null 2>&1
import os, mmcv, torch
assert mmcv.__version__ == "2.1.0", mmcv.__version__
from mmcv.ops import nms, RoIAlign, get_compiling_cuda_version
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
assert os.environ["WANT_CUDA"] == "0" or get_compiling_cuda_version() != "not available"
PY
}
if mmcv_ok; then
  echo "  mmcv $MMCV_VERSION with ops already installed"
else
  # pip's own wheel cache is keyed by the sdist only; a wheel built against another torch
  # fails with undefined symbols, and one without CUDA ops fails on the first CUDA tensor.
  WHEEL_DIR="$CACHE/wheels/$KEY"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  OLD_DIR="$CACHE/wheels/torch-${TORCH_VER//+/_}-$PY_TAG"
  OLD=$(ls "$OLD_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  # Older set-ups keyed by torch + python only; such a wheel is reused for the -cpu key only
  # when its mmcv/_ext links no CUDA runtime. Copied, not moved: older checkouts still read it.
  if [[ -z "$WHEEL" && $WANT_CUDA == 0 && -n "$OLD" ]] && "$PY" - "$OLD" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
ext = [n for n in z.namelist() if n.startswith("mmcv/_ext") and n.endswith(".so")]
sys.exit(0 if ext and b"libcudart" not in z.read(ext[0]) else 1)
PY
  then
    mkdir -p "$WHEEL_DIR"
    cp "$OLD" "$WHEEL_DIR/.partial.whl"
    mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$OLD")"
    WHEEL="$WHEEL_DIR/$(basename "$OLD")"
    echo "  migrated the CPU-only wheel from $OLD_DIR to $WHEEL_DIR"
  fi
  if [[ -z "$WHEEL" ]]; then
    echo "  no cached wheel in $WHEEL_DIR: building mmcv from source (CPU ops: about 15 minutes on 2 cores)"
    HINT="building mmcv failed: the error above names the cause; fix it and rerun."
    PY="$PY" bash "$REPO/tools/build_mmcv.sh" --out "$WHEEL_DIR"
    WHEEL=$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n1)
  else
    echo "  reusing cached wheel $WHEEL"
  fi
  HINT="installing $WHEEL failed; delete it and rerun to rebuild."
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL"
  "${PIP[@]}" install -q "${MMCV_DEPS[@]}"
  mmcv_ok || { HINT="mmcv imports but its ops (mmcv._ext) do not load or lack the CUDA ops asked for: the cached wheel was probably built against another torch. Delete $WHEEL_DIR and rerun."; false; }
fi

# 4. OpenMMLab libraries, timm, test tools, this package -------------------------------
step "mmengine, mmdet, mmseg, mmpretrain, timm, pytest, protune_mm"
HINT="installing the Python dependencies failed (needs PyPI access)."
"${PIP[@]}" install -q "${STACK_SPECS[@]}"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$REPO"

# 5. Check that everything imports, so a broken install fails here and not later -----
step "import check"
HINT="the stack is installed but does not import; the error above names the package."
"$PY" - <<'PY'
import torch, torchvision, mmcv, mmengine, mmdet, mmseg, mmpretrain, timm
from mmcv.ops import RoIAlign, nms  # compiled ops
import mmdet.models, mmseg.models, mmpretrain.models
import protune_mm
import imagecorruptions  # tools/test_robustness.py
print(f"  torch {torch.__version__} | torchvision {torchvision.__version__} | mmcv {mmcv.__version__} | "
      f"mmengine {mmengine.__version__} | mmdet {mmdet.__version__} | mmseg {mmseg.__version__} | "
      f"mmpretrain {mmpretrain.__version__} | timm {timm.__version__}")
# With a GPU visible, the CUDA ops must run: without them they fail only on the first CUDA tensor.
from mmcv.ops import get_compiling_cuda_version, sigmoid_focal_loss
if torch.cuda.is_available() and get_compiling_cuda_version() != "not available":
    dev = torch.device("cuda")
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]], device=dev)
    nms(boxes, torch.tensor([0.9, 0.8], device=dev), 0.5)
    RoIAlign((2, 2), 1.0, 0)(torch.rand(1, 1, 8, 8, device=dev), torch.tensor([[0., 0., 0., 4., 4.]], device=dev))
    sigmoid_focal_loss(torch.rand(2, 3, device=dev), torch.tensor([0, 2], device=dev), 2.0, 0.25, None, "mean")
    torch.cuda.synchronize()
    print(f"  mmcv CUDA ops (RoIAlign, nms, sigmoid_focal_loss) run on {torch.cuda.get_device_name(0)}")
elif torch.cuda.is_available():
    print("  note: a GPU is visible but mmcv was built with CPU ops only (FORCE_CUDA=0)")
PY
step "done: use $PY"

#!/usr/bin/env bash
# Idempotent set-up of the protune_mm stack: venv, torch, mmcv 2.1.0 (with ops),
# mmengine / mmdet / mmseg / timm, and this package in editable mode.
#
# Environment knobs:
#   PROTUNE_TORCH_SPEC   pip spec used only when no working torch+torchvision pair
#                        is installed (default: "torch==2.14.1 torchvision==0.29.1").
#   PROTUNE_CACHE        where built mmcv wheels are kept (default ~/.cache/protune_mm).
#   MAX_JOBS             parallel compile jobs for mmcv (default: number of cores).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MMCV_VERSION=2.1.0
TORCH_SPEC="${PROTUNE_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
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
  HINT="installing '$TORCH_SPEC' failed. Install a matching torch/torchvision pair for your CUDA yourself (https://pytorch.org), or set PROTUNE_TORCH_SPEC, then rerun."
  # shellcheck disable=SC2086
  "${PIP[@]}" install $TORCH_SPEC
  torch_ok || { HINT="torch and torchvision do not work together (torchvision.ops.nms fails): install a matching pair."; false; }
fi
TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__)')
PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

# 3. mmcv with compiled ops, built once per (torch, python) -----------------------
step "mmcv $MMCV_VERSION with ops"
mmcv_ok() { "$PY" - <<'PY' >/dev/null 2>&1
import mmcv, torch
assert mmcv.__version__ == "2.1.0", mmcv.__version__
from mmcv.ops import nms, RoIAlign
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
PY
}
# Build tools first: torch 2.14 wants setuptools>=77; mmcv's setup.py imports pkg_resources (gone in >=81).
HINT="installing the build tools failed (needs PyPI access)."
"${PIP[@]}" install -q 'setuptools>=77,<81' wheel ninja
if mmcv_ok; then
  echo "  mmcv $MMCV_VERSION with ops already installed"
else
  # pip's own wheel cache is keyed by the sdist only; a wheel built against another torch
  # fails with undefined symbols. So keep ours keyed by torch + python.
  WHEEL_DIR="$CACHE/wheels/torch-${TORCH_VER//+/_}-$PY_TAG"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z "$WHEEL" ]]; then
    echo "  no cached wheel in $WHEEL_DIR: building mmcv from source (about 15 minutes on 2 cores)"
    BUILD=$(mktemp -d)
    HINT="downloading the mmcv $MMCV_VERSION source archive from PyPI failed."
    "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers refuse anything below C++20; mmcv 2.1.0 hard-codes c++17.
    if grep -rqs "C++20 or later" "$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "include"))')"; then
      echo "  this torch needs C++20: patching mmcv's -std=c++17 to -std=c++20"
      sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    fi
    HINT="compiling mmcv failed. Check that gcc/g++ and the Python headers are installed (Debian: apt install build-essential python3-dev), then rerun; a CUDA build also needs nvcc matching torch's CUDA."
    ( cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel -v --no-build-isolation --no-deps . -w "$BUILD/dist" > "$BUILD/build.log" 2>&1 ) \
      || { tail -n 40 "$BUILD/build.log" >&2; echo "  full log: $BUILD/build.log" >&2; false; }
    mkdir -p "$WHEEL_DIR"
    BUILT=$(ls "$BUILD"/dist/mmcv-*.whl)
    # Copy then rename, so an interrupted set-up never leaves a half wheel in the cache.
    cp "$BUILT" "$WHEEL_DIR/.partial.whl"
    mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$BUILT")"
    WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
    rm -rf "$BUILD"
  else
    echo "  reusing cached wheel $WHEEL"
  fi
  HINT="installing $WHEEL failed; delete it and rerun to rebuild."
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL"
  "${PIP[@]}" install -q 'addict' 'mmengine==0.10.7' 'numpy' 'packaging' 'Pillow' 'pyyaml' 'yapf' 'opencv-python'
  mmcv_ok || { HINT="mmcv imports but its ops (mmcv._ext) do not load: the cached wheel was probably built against another torch. Delete $WHEEL_DIR and rerun."; false; }
fi

# 4. OpenMMLab libraries, timm, test tools, this package -------------------------------
step "mmengine, mmdet, mmseg, timm, pytest, protune_mm"
HINT="installing the Python dependencies failed (needs PyPI access)."
"${PIP[@]}" install -q 'mmengine==0.10.7' 'mmdet==3.3.0' 'mmsegmentation==1.2.2' ftfy regex 'timm>=1.0,<2' \
  pycocotools safetensors matplotlib pytest 'imagecorruptions-imaug==1.1.5'
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$REPO"

# 5. Check that everything imports, so a broken install fails here and not later -----
step "import check"
HINT="the stack is installed but does not import; the error above names the package."
"$PY" - <<'PY'
import torch, torchvision, mmcv, mmengine, mmdet, mmseg, timm
from mmcv.ops import RoIAlign, nms  # compiled ops
import mmdet.models, mmseg.models
import protune_mm
import imagecorruptions  # tools/test_robustness.py
print(f"  torch {torch.__version__} | torchvision {torchvision.__version__} | mmcv {mmcv.__version__} | "
      f"mmengine {mmengine.__version__} | mmdet {mmdet.__version__} | mmseg {mmseg.__version__} | timm {timm.__version__}")
PY
step "done: use $PY"

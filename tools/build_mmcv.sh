#!/usr/bin/env bash
# Build mmcv 2.1.0 with its compiled ops into a wheel, against the torch of $PY: CPU ops only,
# or CPU + CUDA ops. tools/setup_env.sh calls it; run it alone to build a CUDA wheel where no
# GPU is visible (CI, login nodes): a GPU is needed to run the ops, not to compile them.
#
# Usage: tools/build_mmcv.sh [--print-key | --out DIR]
#   --print-key   print the wheel cache key for this (torch, python, CUDA, architectures), exit
#   --out DIR     put the built wheel in DIR (default: ./dist)
# Environment:
#   PY                   python whose torch to build against (default: active venv, else .venv)
#   FORCE_CUDA           1: CUDA ops even with no GPU visible (needs TORCH_CUDA_ARCH_LIST);
#                        0: CPU ops only; unset: CUDA ops when torch has CUDA and sees a GPU.
#   TORCH_CUDA_ARCH_LIST e.g. "9.0" or "8.0;9.0+PTX" (default: the visible GPUs' architectures)
#   CUDA_HOME            CUDA toolkit to compile with (default: the one of `nvcc` on PATH)
#   PROTUNE_PYPI_CUDA    a folder: lay out nvcc and the CUDA headers from PyPI there, matching
#                        torch's CUDA version, and compile with it (no system toolkit needed)
#   PROTUNE_WHEELHOUSE   take the mmcv source archive (and PyPI CUDA wheels) from this folder
#   PROTUNE_BUILD_DIR    unpack and compile here and keep it: rerunning resumes (ninja)
#   PROTUNE_BUILD_LOG    compiler log (default: <build dir>/build.log)
#   MAX_JOBS             parallel compile jobs (default: number of cores)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup_specs.sh
source "$REPO/tools/setup_specs.sh"
MODE=build
OUT="$PWD/dist"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --print-key) MODE=key; shift ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "build_mmcv.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
die() { printf '[build_mmcv] ERROR: %s\n' "$*" >&2; exit 1; }
say() { [[ $MODE == key ]] || printf '[build_mmcv] %s\n' "$*"; }

if [[ -z "${PY:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}" ]]; then PY="$VIRTUAL_ENV/bin/python"; else PY="$REPO/.venv/bin/python"; fi
fi
PIP=("$PY" -m pip --disable-pip-version-check)
[[ -n "${PROTUNE_WHEELHOUSE:-}" ]] && PIP_SRC=(--no-index --find-links "$PROTUNE_WHEELHOUSE") || PIP_SRC=()

# torch version, python tag, torch's CUDA, visible GPU architectures, torch's nvidia/ folder.
read -r TORCH_VER PY_TAG TORCH_CUDA GPU_ARCHS NV_DIR < <("$PY" - <<'PY'
import os, sys, torch
archs = sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}) \
    if torch.version.cuda and torch.cuda.is_available() else []
nv = os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia")
print(torch.__version__, f"cp{sys.version_info[0]}{sys.version_info[1]}", torch.version.cuda or "none",
      ";".join(archs) or "none", nv)
PY
)

# CUDA ops or not. mmcv's own setup.py decides by torch.cuda.is_available() or FORCE_CUDA=1.
case "${FORCE_CUDA:-auto}" in
  1) WITH_CUDA=1 ;;
  0) WITH_CUDA=0 ;;
  *) [[ $TORCH_CUDA != none && $GPU_ARCHS != none ]] && WITH_CUDA=1 || WITH_CUDA=0 ;;
esac
if [[ $WITH_CUDA == 1 ]]; then
  [[ $TORCH_CUDA != none ]] || die "FORCE_CUDA=1 but torch $TORCH_VER has no CUDA: install a CUDA build of torch (https://pytorch.org)."
  ARCHS="${TORCH_CUDA_ARCH_LIST:-}"
  if [[ -z "$ARCHS" ]]; then
    [[ $GPU_ARCHS != none ]] || die "no GPU is visible, so the CUDA architectures cannot be guessed: set TORCH_CUDA_ARCH_LIST (e.g. 9.0 for H100/H200, 8.0 for A100)."
    ARCHS="$GPU_ARCHS"
  fi
  export TORCH_CUDA_ARCH_LIST="$ARCHS"

  # A CUDA toolkit whose nvcc matches torch's CUDA major version.
  TORCH_CUDA_MAJOR=${TORCH_CUDA%%.*}
  if [[ -n "${PROTUNE_PYPI_CUDA:-}" ]]; then
    CUDA_HOME="$PROTUNE_PYPI_CUDA"
    if [[ ! -x "$CUDA_HOME/bin/nvcc" ]]; then
      (( TORCH_CUDA_MAJOR >= 13 )) || die "PROTUNE_PYPI_CUDA lays out the CUDA >= 13 PyPI wheels (nvidia/cu13); torch has CUDA $TORCH_CUDA: install the CUDA $TORCH_CUDA toolkit and set CUDA_HOME."
      say "laying out CUDA $TORCH_CUDA from PyPI in $CUDA_HOME"
      # nvcc (+ptxas, fatbinary), nvvm (cicc), crt and cccl headers, cudart headers/library:
      # everything nvcc itself needs, pinned to torch's CUDA major.minor.
      "${PIP[@]}" install -q --no-deps "${PIP_SRC[@]}" --target "$CUDA_HOME/.wheels" \
        "nvidia-cuda-nvcc==$TORCH_CUDA.*" "nvidia-nvvm==$TORCH_CUDA.*" "nvidia-cuda-crt==$TORCH_CUDA.*" \
        "nvidia-cuda-cccl==$TORCH_CUDA.*" "nvidia-cuda-runtime==$TORCH_CUDA.*"
      cp -a "$CUDA_HOME/.wheels/nvidia/cu$TORCH_CUDA_MAJOR/." "$CUDA_HOME/"
      # ATen's CUDA headers include cuBLAS, cuSPARSE, cuSOLVER, NVTX ... headers: take them from
      # torch's own nvidia-* packages, never overwriting the toolkit's own files.
      for d in "$NV_DIR"/*/include; do cp -rn "$d/." "$CUDA_HOME/include/"; done
      for f in "$NV_DIR"/*/lib/*.so*; do [[ -e "$CUDA_HOME/lib/$(basename "$f")" ]] || ln -s "$f" "$CUDA_HOME/lib/"; done
      # The linker wants unversioned names (-lcudart); torch's cpp_extension looks in lib64;
      # nvcc.profile looks in targets/x86_64-linux/{include,lib} (where it finds cccl).
      for f in "$CUDA_HOME"/lib/*.so.[0-9]*; do b="${f%%.so.*}.so"; [[ -e "$b" ]] || ln -s "$(basename "$f")" "$b"; done
      ln -sfn lib "$CUDA_HOME/lib64"
      mkdir -p "$CUDA_HOME/targets/x86_64-linux"
      ln -sfn ../../include "$CUDA_HOME/targets/x86_64-linux/include"
      ln -sfn ../../lib "$CUDA_HOME/targets/x86_64-linux/lib"
      rm -rf "$CUDA_HOME/.wheels"
    fi
  elif [[ -z "${CUDA_HOME:-}" ]]; then
    NVCC_PATH=$(command -v nvcc || true)
    [[ -n "$NVCC_PATH" ]] || die "torch $TORCH_VER is built with CUDA $TORCH_CUDA, but no nvcc is on PATH and CUDA_HOME is unset. Install the CUDA $TORCH_CUDA toolkit (or 'module load cuda/$TORCH_CUDA'), or set PROTUNE_PYPI_CUDA=DIR to lay out nvcc $TORCH_CUDA from PyPI; or FORCE_CUDA=0 for CPU ops only."
    # /usr/local/bin/nvcc may be a wrapper script: ask nvcc itself where its toolkit is.
    CUDA_HOME=$("$NVCC_PATH" -v -x cu /dev/null -E -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)
    [[ -n "$CUDA_HOME" ]] || CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$NVCC_PATH")")")"
    CUDA_HOME="$(cd "$CUDA_HOME" && pwd -P)"
  fi
  export CUDA_HOME
  [[ -x "$CUDA_HOME/bin/nvcc" ]] || die "CUDA_HOME=$CUDA_HOME has no bin/nvcc. Install the CUDA $TORCH_CUDA toolkit there, or set PROTUNE_PYPI_CUDA=DIR."
  NVCC_VER=$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  [[ "${NVCC_VER%%.*}" == "$TORCH_CUDA_MAJOR" ]] \
    || die "nvcc $NVCC_VER (in $CUDA_HOME) does not match torch $TORCH_VER's CUDA $TORCH_CUDA: install the CUDA $TORCH_CUDA toolkit and point CUDA_HOME at it, set PROTUNE_PYPI_CUDA=DIR, or install a torch built for CUDA $NVCC_VER."
  [[ "$NVCC_VER" == "$TORCH_CUDA" ]] || say "note: nvcc $NVCC_VER, torch built with CUDA $TORCH_CUDA (same major version: compatible)"
  # Key part: the toolkit version and the architectures, e.g. cuda13.0-sm90 or cuda13.0-sm80-sm90+ptx.
  ARCH_KEY=$(tr ' ;,' '\n\n\n' <<<"$ARCHS" | sed '/^$/d; s/\.//; s/+PTX/+ptx/I; s/^/sm/' | sort -u | paste -sd- -)
  KEY="torch-${TORCH_VER//+/_}-$PY_TAG-cuda$NVCC_VER-$ARCH_KEY"
else
  KEY="torch-${TORCH_VER//+/_}-$PY_TAG-cpu"
fi
if [[ $MODE == key ]]; then echo "$KEY"; exit 0; fi

if [[ $WITH_CUDA == 1 ]]; then
  say "building mmcv $MMCV_VERSION with CUDA ops: torch $TORCH_VER, nvcc $NVCC_VER in $CUDA_HOME, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
else
  say "building mmcv $MMCV_VERSION with CPU ops only: torch $TORCH_VER"
fi
if [[ -n "${PROTUNE_BUILD_DIR:-}" ]]; then BUILD="$PROTUNE_BUILD_DIR"; KEEP=1; else BUILD=$(mktemp -d); KEEP=0; fi
mkdir -p "$BUILD" "$OUT"
LOG="${PROTUNE_BUILD_LOG:-$BUILD/build.log}"
SRC="$BUILD/mmcv-$MMCV_VERSION"
if [[ ! -f "$SRC/setup.py" ]]; then
  ARCHIVE=""
  [[ -n "${PROTUNE_WHEELHOUSE:-}" && -f "$PROTUNE_WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz" ]] && ARCHIVE="$PROTUNE_WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz"
  if [[ -z "$ARCHIVE" ]]; then
    "${PIP[@]}" download -q --no-deps --no-binary :all: "${PIP_SRC[@]}" "mmcv==$MMCV_VERSION" -d "$BUILD" \
      || die "downloading the mmcv $MMCV_VERSION source archive failed (needs PyPI, or PROTUNE_WHEELHOUSE with mmcv-$MMCV_VERSION.tar.gz)."
    ARCHIVE="$BUILD/mmcv-$MMCV_VERSION.tar.gz"
  fi
  tar -xzf "$ARCHIVE" -C "$BUILD"
  # Patch 1: torch >= 2.10's headers refuse anything below C++20, and mmcv 2.1.0's setup.py
  # hard-codes -std=c++17 for both g++ ('cxx') and nvcc ('nvcc'): one substitution covers both.
  TORCH_INC=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "include"))')
  if grep -rqs "C++20 or later" "$TORCH_INC"; then
    say "this torch needs C++20: patching mmcv's -std=c++17 to -std=c++20 (g++ and nvcc flags)"
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  fi
fi

say "compiling (log: $LOG)"
T0=$(date +%s)
# CUDA_VISIBLE_DEVICES= keeps mmcv's setup.py from building CUDA ops when CPU ops were asked for.
if [[ $WITH_CUDA == 1 ]]; then ENVV=(FORCE_CUDA=1); else ENVV=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=); fi
( cd "$SRC" && env "${ENVV[@]}" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "${PIP[@]}" wheel -v --no-build-isolation --no-deps . -w "$BUILD/dist" ) > "$LOG" 2>&1 \
  || { tail -n 40 "$LOG" >&2; die "compiling mmcv failed; full log: $LOG. Needs g++ and the Python headers (Debian: apt install build-essential python3-dev)."; }
BUILT=$(ls -t "$BUILD"/dist/mmcv-$MMCV_VERSION-*.whl | head -n1)
# Copy then rename, so an interrupted build never leaves a half wheel in OUT.
cp "$BUILT" "$OUT/.partial.whl"
mv "$OUT/.partial.whl" "$OUT/$(basename "$BUILT")"
say "built $OUT/$(basename "$BUILT") ($(du -m "$BUILT" | cut -f1) MB) in $(( ($(date +%s) - T0) / 60 )) min $(( ($(date +%s) - T0) % 60 )) s"
[[ $KEEP == 1 ]] || rm -rf "$BUILD"

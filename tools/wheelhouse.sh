#!/usr/bin/env bash
# Download everything tools/setup_env.sh installs into one folder, for an offline install:
#   tools/wheelhouse.sh DIR [--python 3.11] [--platform manylinux_2_28_x86_64] [--with-torch] [--with-pypi-cuda]
#   PROTUNE_WHEELHOUSE=DIR make setup      # on the offline machine: pip never touches an index
# The mmcv source archive is included (mmcv is compiled there, against that machine's torch).
# torch is left out unless --with-torch: GPU clusters bring their own CUDA build of torch.
# --with-pypi-cuda adds the nvcc / nvvm / crt / cccl / cudart wheels of torch's CUDA (13.0 by
# default) for PROTUNE_PYPI_CUDA=DIR builds where no CUDA toolkit is installed.
# Defaults: the Python version and platform of this machine's python3 (or $PY).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup_specs.sh
source "$REPO/tools/setup_specs.sh"
[[ $# -ge 1 && $1 != -* ]] || { sed -n 2,9p "$0" >&2; exit 2; }
DIR="$1"; shift
PYV=""; PLAT=(); WITH_TORCH=0; WITH_CUDA=0; CUDA_VER="${PROTUNE_CUDA_VERSION:-13.0}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PYV="$2"; shift 2 ;;
    --platform)
      PLAT+=(--platform "$2")
      # pip matches a named platform tag exactly: manylinux_2_28 also runs the wheels of
      # older glibc (manylinux_2_17 = manylinux2014, ...), so name those too.
      if [[ $2 =~ ^manylinux_2_([0-9]+)_(.+)$ ]]; then
        for ((v = BASH_REMATCH[1] - 1; v >= 5; v--)); do PLAT+=(--platform "manylinux_2_${v}_${BASH_REMATCH[2]}"); done
        for old in manylinux2014 manylinux2010 manylinux1; do PLAT+=(--platform "${old}_${BASH_REMATCH[2]}"); done
      fi
      shift 2 ;;
    --with-torch) WITH_TORCH=1; shift ;;
    --with-pypi-cuda) WITH_CUDA=1; shift ;;
    *) echo "wheelhouse.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PY="${PY:-python3}"
PIP=("$PY" -m pip --disable-pip-version-check)
mkdir -p "$DIR"
# A named Python version or platform means wheels only (pip cannot run another Python's
# build steps); without either, pip resolves for this machine.
TARGET=()
if [[ -n "$PYV" || ${#PLAT[@]} -gt 0 ]]; then
  TARGET=(--only-binary :all: --implementation cp)
  [[ -n "$PYV" ]] && TARGET+=(--python-version "$PYV" --abi "cp${PYV//./}")
  TARGET+=("${PLAT[@]}")
fi
SPECS=("${BUILD_SPECS[@]}" "${MMCV_DEPS[@]}" "${STACK_SPECS[@]}")
# shellcheck disable=SC2206
SPECS+=($TORCH_SPEC)  # resolved with the rest (timm needs torch), downloaded only if asked
echo "[wheelhouse] resolving ${#SPECS[@]} requirements and their dependencies"
# Resolve first (nothing downloaded but metadata), then download the pinned set minus
# torch and the CUDA libraries it pulls in (torch, torchvision, triton, nvidia-*, cuda-*).
"${PIP[@]}" install -q --dry-run --ignore-installed --report "$DIR/.resolved.json" \
  --target "$DIR/.unused" "${TARGET[@]}" "${SPECS[@]}"
mapfile -t PINS < <("$PY" - "$DIR/.resolved.json" "$WITH_TORCH" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1]))
for item in report['install']:
    name, version = item['metadata']['name'], item['metadata']['version']
    if sys.argv[2] == '0' and re.match(r'^(torch|torchvision|triton|nvidia[-_].*|cuda[-_].*)$',
                                       name, re.I):
        continue
    print(f'{name}=={version}')
PY
)
rm -rf "$DIR/.resolved.json" "$DIR/.unused"
echo "[wheelhouse] downloading ${#PINS[@]} packages -> $DIR"
"${PIP[@]}" download -q --no-deps "${TARGET[@]}" -d "$DIR" "${PINS[@]}"
echo "[wheelhouse] mmcv $MMCV_VERSION source archive"
"${PIP[@]}" download -q --no-deps --no-binary :all: -d "$DIR" "mmcv==$MMCV_VERSION"
if [[ $WITH_CUDA == 1 ]]; then
  echo "[wheelhouse] CUDA $CUDA_VER compiler wheels"
  "${PIP[@]}" download -q --no-deps "${TARGET[@]}" -d "$DIR" "nvidia-cuda-nvcc==$CUDA_VER.*" \
    "nvidia-nvvm==$CUDA_VER.*" "nvidia-cuda-crt==$CUDA_VER.*" "nvidia-cuda-cccl==$CUDA_VER.*" "nvidia-cuda-runtime==$CUDA_VER.*"
fi
echo "[wheelhouse] $(ls "$DIR" | wc -l) files, $(du -sh "$DIR" | cut -f1) in $DIR"

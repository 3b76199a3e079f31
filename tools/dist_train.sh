#!/usr/bin/env bash
# Distributed training on one machine: bash tools/dist_train.sh CONFIG GPUS [train.py args]
# Several machines: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 bash tools/dist_train.sh ...
# On a CPU-only machine add: --cfg-options env_cfg.dist_cfg.backend=gloo
set -euo pipefail
# shellcheck source=tools/launch_common.sh
source "$(dirname "$0")/launch_common.sh"
need_args 2 "CONFIG GPUS [tools/train.py arguments]" "$@"
CONFIG=$1 GPUS=$2
dist_run "$GPUS" "$TOOLS_DIR/train.py" "$CONFIG" --launcher pytorch "${@:3}"

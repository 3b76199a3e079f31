#!/usr/bin/env bash
# Distributed testing on one machine: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
set -euo pipefail
# shellcheck source=tools/launch_common.sh
source "$(dirname "$0")/launch_common.sh"
need_args 3 "CONFIG CHECKPOINT GPUS [tools/test.py arguments]" "$@"
CONFIG=$1 CHECKPOINT=$2 GPUS=$3
dist_run "$GPUS" "$TOOLS_DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"

# What tools/dist_train.sh, dist_test.sh and slurm_train.sh share (mmdet's launcher
# conventions). Sourced, not run.
# shellcheck shell=bash

# need_args N USAGE "$@": exit 2 with "usage: <script> USAGE" unless at least N arguments.
need_args() {
  if (( $# - 2 < $1 )); then
    echo "usage: $0 $2" >&2
    exit 2
  fi
}

# The repository first on the path, so tools/*.py import this checkout's protune_mm.
TOOLS_DIR=$(dirname "$0")
export PYTHONPATH="$TOOLS_DIR/..":${PYTHONPATH:-}

# dist_run GPUS SCRIPT ARGS...: GPUS processes of SCRIPT on this machine; NNODES,
# NODE_RANK, MASTER_ADDR and PORT join several machines.
dist_run() {
  local gpus=$1
  shift
  python -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$gpus" \
    --master_port="${PORT:-29500}" \
    "$@"
}

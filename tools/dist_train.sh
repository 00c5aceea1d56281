#!/usr/bin/env bash
# Distributed training of one row on one or several nodes, as mmdet's tools/dist_train.sh:
#   bash tools/dist_train.sh configs/table1/retinanet_r50_fpn_1x_coco.py 8 [--data-root /data/coco]
#   bash tools/dist_train.sh configs/mini/retinanet_mini.py 2    # CPU-only machine: 2 gloo ranks
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment. GPUS is the number of
# processes per node: one per GPU, or CPU ranks over gloo where CUDA is absent (tools/train.py).
set -euo pipefail
# Check the arguments first: under `set -u` a missing one would stop the script with a bare
# "$1: unbound variable".
if [ $# -lt 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py options...]" >&2
  echo "  e.g. bash tools/dist_train.sh configs/table1/retinanet_r50_fpn_1x_coco.py 8" >&2
  [ $# -ge 2 ] && echo "GPUS must be a positive integer (processes per node), got '$2'" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
status=0
PYTHONPATH="$(dirname "$0")/..:${PYTHONPATH:-}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}" || status=$?
if [ "$status" -ne 0 ]; then
  # torch.distributed.run stops every rank as soon as one ends with an error; its summary above
  # names the rank and its exit code.
  echo "dist_train.sh: training failed (exit $status): a rank ended with an error or was killed," \
       "and the other ranks were stopped. Add --resume to continue from the last checkpoint." >&2
fi
exit "$status"

#!/usr/bin/env bash
# Distributed training of one row on one or several nodes, as mmdet's tools/dist_train.sh:
#   bash tools/dist_train.sh configs/table1/retinanet_r50_fpn_1x_coco.py 8 [--data-root /data/coco]
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment.
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
PYTHONPATH="$(dirname "$0")/..:${PYTHONPATH:-}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"

#!/usr/bin/env bash
# Distributed training of one row on a slurm cluster, as mmdet's tools/slurm_train.sh:
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh dev ap-loss \
#       configs/table1/retinanet_r50_fpn_1x_coco_ap-loss.py work_dirs/ap-loss --data-root data/coco
# GPUS is the number of processes (ranks) in all, GPUS_PER_NODE per node. On CPU-only nodes set
# GRES= (empty): no GPU is requested and the ranks train over gloo (tools/train.py,
# mmdet_imbalance/engine/distributed.py). CPUS_PER_TASK and SRUN_ARGS are passed on to srun.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]" >&2
  echo "  environment: GPUS (ranks, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (5)," >&2
  echo "  GRES (default gpu:GPUS_PER_NODE; empty on CPU-only nodes), SRUN_ARGS" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:${GPUS_PER_NODE}}
read -r -a SRUN_EXTRA <<< "${SRUN_ARGS:-}"
GRES_ARG=()
if [ -n "$GRES" ]; then GRES_ARG=("--gres=$GRES"); fi
PYTHONPATH="$(dirname "$0")/..:${PYTHONPATH:-}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES_ARG[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    "${SRUN_EXTRA[@]}" \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"

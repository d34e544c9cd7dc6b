#!/usr/bin/env bash
# One run on this machine, every local device (CPU, one GPU or several).
#   bash launch/local.sh configs/contrastive.py:demo runs/contrastive [--config.train.num_steps=1000 ...]
# Re-running the same command resumes from the latest checkpoint.
set -euo pipefail
config=${1:?usage: launch/local.sh CONFIG[:VARIANT] WORKDIR [overrides...]}
workdir=${2:?usage: launch/local.sh CONFIG[:VARIANT] WORKDIR [overrides...]}
shift 2
python="${PYTHON:-python3}"
exec "$python" -m pretrain_jax.main --config "$config" --workdir "$workdir" "$@"

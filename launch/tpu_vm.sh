#!/usr/bin/env bash
# All workers of a Cloud TPU VM slice run the same entry point; JAX's distributed runtime
# finds the coordinator from the TPU metadata.
#   bash launch/tpu_vm.sh TPU_NAME ZONE configs/contrastive.py:full gs://BUCKET/runs/contrastive
# The workdir must be shared by all hosts (a GCS bucket or NFS): Orbax writes it together.
set -euo pipefail
tpu=${1:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [overrides...]}
zone=${2:?zone}
config=${3:?config}
workdir=${4:?workdir}
shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "
  cd ~/pretrain_jax && python3 -m pretrain_jax.main --distributed \
    --config '$config' --workdir '$workdir' $*"

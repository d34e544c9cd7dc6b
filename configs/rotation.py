"""Rotation prediction, 0/90/180/270 degrees (Gidaris et al. 2018).

  python -m pretrain_jax.main --config configs/rotation.py:demo --workdir runs/rotation
"""

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("rotation", arg)
  # Each image is shown at 4 rotations, so a step sees 4x the batch: a smaller demo batch
  # and fewer steps keep the demo table within its 10 minutes.
  config.train.batch_size = {"smoke": 64, "demo": 64, "full": 512}[config.variant]  # Images before rotation.
  config.train.num_steps = {"smoke": 30, "demo": 400, "full": 8000}[config.variant]  # Optimiser steps.
  config.lock()
  return config

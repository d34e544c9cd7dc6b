"""Denoising autoencoder, L2 reconstruction (the tables' "Autoencoder" row).

  python -m pretrain_jax.main --config configs/autoencoder.py:demo --workdir runs/autoencoder
"""

import ml_collections

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("autoencoder", arg)
  config.autoencoder = ml_collections.ConfigDict()
  config.autoencoder.noise_std = 0.3  # Std of the Gaussian pixel noise (pixels in [0, 1]).
  config.train.num_steps = {"smoke": 30, "demo": 300, "full": 8000}[config.variant]  # Optimiser steps.
  config.lock()
  return config

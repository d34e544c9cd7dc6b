"""Supervised pretraining on the class labels (the tables' upper reference).

  python -m pretrain_jax.main --config configs/supervised.py:demo --workdir runs/supervised
"""

import ml_collections

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("supervised", arg)
  config.supervised = ml_collections.ConfigDict()
  config.supervised.crop_scale = (0.7, 1.0)  # Area range of the random resized crop.
  # Demo: 1,000 steps (~2 epochs of 55k images) so the labels' reference row clears raw
  # pixels, affordable since the CPU defaults doubled the step rate.
  config.train.num_steps = {"smoke": 30, "demo": 1000, "full": 8000}[config.variant]  # Optimiser steps.
  config.lock()
  return config

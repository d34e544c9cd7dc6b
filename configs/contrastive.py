"""Contrastive pretraining: two augmented views, NT-Xent / InfoNCE (SimCLR, Chen et al. 2020).

  python -m pretrain_jax.main --config configs/contrastive.py:demo --workdir runs/contrastive
"""

import ml_collections

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("contrastive", arg)
  config.contrastive = ml_collections.ConfigDict()
  config.contrastive.temperature = 0.2  # τ of NT-Xent (cosine similarities divided by τ).
  config.contrastive.projection_dim = 64  # Output size of the MLP projection head.
  config.contrastive.crop_scale = (0.3, 1.0)  # Area range of the random resized crop.
  config.contrastive.brightness = 0.4  # Max brightness shift (pixel units).
  config.contrastive.contrast = 0.4  # Max relative contrast change.
  config.contrastive.blur_probability = 0.5  # Chance a view is Gaussian-blurred.
  config.train.num_steps = {"smoke": 30, "demo": 400, "full": 8000}[config.variant]  # Optimiser steps.
  config.lock()
  return config

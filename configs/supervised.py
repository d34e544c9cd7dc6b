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
  config.lock()
  return config

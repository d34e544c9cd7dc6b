"""Rotation prediction, 0/90/180/270 degrees (Gidaris et al. 2018).

  python -m pretrain_jax.main --config configs/rotation.py:demo --workdir runs/rotation
"""

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("rotation", arg)
  config.lock()
  return config

"""Raw pixels: the linear probe on the images themselves (a sanity check of the probe).

  python -m pretrain_jax.main --config configs/raw_pixels.py:demo --workdir runs/raw_pixels
"""

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("raw_pixels", arg)
  config.lock()
  return config

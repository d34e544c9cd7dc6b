"""Random init: the encoder untrained (the tables' "Random Gaussian initialization" row).

  python -m pretrain_jax.main --config configs/random_init.py:demo --workdir runs/random_init
"""

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("random_init", arg)
  config.train.num_steps = 0  # Nothing is trained: features of the initial weights.
  config.lock()
  return config

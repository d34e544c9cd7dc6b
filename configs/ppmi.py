"""Positive PMI + truncated SVD on the English corpora (methods/ppmi.py), the count baseline.

  python -m pretrain_jax.main --config configs/ppmi.py:full --workdir runs/ppmi
"""

from pretrain_jax.train.config import word_vector_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = word_vector_config("ppmi", arg)
  config.lock()
  return config

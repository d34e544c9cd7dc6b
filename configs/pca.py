"""PCA features (scikit-learn), a classical baseline.

  python -m pretrain_jax.main --config configs/pca.py:demo --workdir runs/pca
"""

import ml_collections

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("pca", arg)
  config.pca = ml_collections.ConfigDict()
  config.pca.num_components = {"smoke": 32, "demo": 128, "full": 128}[config.variant]  # Components kept (<= pixels).
  config.pca.whiten = False  # Scale components to unit variance.
  config.lock()
  return config

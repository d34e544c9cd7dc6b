"""k-means features on whitened patches (Coates, Lee & Ng 2011), a classical baseline.

  python -m pretrain_jax.main --config configs/kmeans.py:demo --workdir runs/kmeans
"""

import ml_collections

from pretrain_jax.train.config import base_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = base_config("kmeans", arg)
  config.kmeans = ml_collections.ConfigDict()
  config.kmeans.num_centroids = {"smoke": 32, "demo": 200, "full": 400}[config.variant]  # K; 4K feature dims.
  config.kmeans.patch_size = {"smoke": 3, "demo": 6, "full": 6}[config.variant]  # Patch side, pixels.
  config.kmeans.num_patches = {"smoke": 5000, "demo": 50000, "full": 100000}[config.variant]  # Patches k-means fits.
  config.kmeans.stride = 1  # Step of dense patch extraction, pixels.
  config.kmeans.normalize_eps = 10.0  # ε of per-patch contrast normalisation (0..255 pixel units squared).
  config.kmeans.zca_eps = 0.1  # ε added to the patch covariance's eigenvalues in ZCA whitening.
  config.lock()
  return config

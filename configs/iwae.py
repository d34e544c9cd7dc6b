"""IWAE: the VAE network trained on the k-sample importance-weighted bound (Burda et al. 2016).

  python -m pretrain_jax.main --config configs/iwae.py:demo --workdir runs/iwae

k = 50 in the full variant, the paper's best one-layer model (84.78 nats).
"""

from pretrain_jax.train.config import vae_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  return vae_config(arg, objective="iwae", num_samples=(5, 5, 50), conditional=False)

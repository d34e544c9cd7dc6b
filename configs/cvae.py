"""Conditional VAE: the class is fed to the encoder and the decoder (the slides' conditional model).

  python -m pretrain_jax.main --config configs/cvae.py:demo --workdir runs/cvae

Its samples.png has one row per digit class; its NLL is −ln p(x | y), not comparable with
the unconditional rows' −ln p(x).
"""

from pretrain_jax.train.config import vae_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  return vae_config(arg, objective="elbo", num_samples=(1, 1, 1), conditional=True)

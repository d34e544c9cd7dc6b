"""VAE on binarized MNIST trained on the ELBO (methods/vae.py; the generative table's "vae" row).

  python -m pretrain_jax.data.fetch mnist
  python -m pretrain_jax.main --config configs/vae.py:demo --workdir runs/vae

configs/iwae.py trains the same network on the importance-weighted bound, configs/cvae.py
conditions it on the class; the fields are ``train.config.vae_config``'s.
"""

from pretrain_jax.train.config import vae_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  return vae_config(arg, objective="elbo", num_samples=(1, 1, 1), conditional=False)

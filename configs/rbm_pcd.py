"""RBM trained by persistent contrastive divergence (Tieleman 2008), scored by AIS.

  python -m pretrain_jax.main --config configs/rbm_pcd.py:demo --workdir runs/rbm_pcd
"""

from pretrain_jax.train.config import rbm_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  return rbm_config(arg, persistent=True)

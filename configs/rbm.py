"""RBM on binarized MNIST trained by contrastive divergence (methods/rbm.py), scored by AIS.

  python -m pretrain_jax.data.fetch mnist
  python -m pretrain_jax.main --config configs/rbm.py:demo --workdir runs/rbm

500 hidden units; CD-25 in the full variant (Salakhutdinov & Murray 2008: 86.34 nats),
CD-1 in smoke and demo. configs/rbm_pcd.py trains with persistent chains instead.
"""

from pretrain_jax.train.config import rbm_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  return rbm_config(arg, persistent=False)

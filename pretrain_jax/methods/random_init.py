"""The untrained encoder: the tables' "Random Gaussian initialization" row.

Zero pretraining steps; the linear probe reads features of the encoder at its
initialisation (LeCun-normal conv kernels, Flax's default). Its config sets
``train.num_steps = 0``; the loss exists only so that a run with more steps fails loudly.
"""

from __future__ import annotations

from flax import nnx
import ml_collections

from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.methods import common

NAME = "random_init"
SUPERVISION = "none (random weights)"
features = common.features
evaluate = common.evaluate


class Model(nnx.Module):
  """Just the encoder."""

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs):
    self.encoder = common.make_encoder(config, info, rngs=rngs)


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> Model:
  """The untrained encoder."""
  return Model(config, info, rngs=rngs)


def loss_fn(model, batch, key, config):
  """Raises ValueError: random_init has nothing to train (set train.num_steps=0)."""
  raise ValueError("random_init has no pretraining loss: keep --config.train.num_steps=0.")

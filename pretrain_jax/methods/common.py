"""Pieces the neural methods share: the encoder built from the config, its features."""

from __future__ import annotations

from flax import nnx
import jax
import ml_collections

from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.nn.encoder import ConvEncoder


def make_encoder(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> ConvEncoder:
  """The shared ``ConvEncoder`` for ``info.image_shape`` at ``config.model.width``."""
  return ConvEncoder(info.image_shape[-1], config.model.width, rngs=rngs)


def features(model: nnx.Module, images: jax.Array) -> jax.Array:
  """The representation every neural method is evaluated on.

  Args:
    model: a method's model with an ``encoder`` attribute.
    images: float32 ``[B, H, W, C]`` in [0, 1].

  Returns:
    float32 ``[B, 4 * width]``: the encoder's globally pooled features.
  """
  return model.encoder(images)

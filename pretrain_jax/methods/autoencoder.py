"""Denoising autoencoder with L2 reconstruction (Vincent et al. 2008).

The tables' "Autoencoder" row: Gaussian pixel noise in, clean image out; the encoder's
pooled features are the bottleneck read by the probe, the decoder mirrors the encoder.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from pretrain_jax.data import augment
from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.methods import common
from pretrain_jax.nn.encoder import ConvDecoder

NAME = "autoencoder"
SUPERVISION = "none (denoise pixels)"
features = common.features
evaluate = common.evaluate


class Model(nnx.Module):
  """Encoder + mirrored decoder."""

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs):
    self.encoder = common.make_encoder(config, info, rngs=rngs)
    self.decoder = ConvDecoder(self.encoder.feature_dim, info.image_shape, config.model.width, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    """Reconstruction in [0, 1]: ``[B, H, W, C]`` -> ``[B, H, W, C]``."""
    return jax.nn.sigmoid(self.decoder(self.encoder(images)))


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> Model:
  """Encoder and decoder for ``info.image_shape``."""
  return Model(config, info, rngs=rngs)


def loss_fn(model: Model, batch: dict, key: jax.Array, config: ml_collections.ConfigDict):
  """Squared error between the clean image and the reconstruction of a noisy copy.

  Args:
    model: the ``Model``.
    batch: ``{"image": uint8 [B, H, W, C] (or float32 in [0, 1]), ...}``; labels are not read.
    key: PRNG key of the step (the noise).
    config: the run's config (``config.autoencoder.noise_std``, pixel units).

  Returns:
    (loss = sum of squared pixel errors per image, averaged over the batch;
    {"mse": mean squared error per pixel}).
  """
  images = common.to_float_images(batch["image"])
  noisy = augment.add_noise(key, images, config.autoencoder.noise_std)
  squared_error = jnp.square(model(noisy) - images)
  return squared_error.sum(axis=(1, 2, 3)).mean(), {"mse": squared_error.mean()}

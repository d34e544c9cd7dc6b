"""Contrastive pretraining: two augmented views, NT-Xent over in-batch negatives.

SimCLR (Chen et al. 2020): each image gives two views (random resized crop, flip,
intensity jitter, blur — the grayscale-suited subset of the paper's augmentations), the
encoder and an MLP projection head map them to vectors, and ``contrastive_loss`` (InfoNCE
with cosine similarity and temperature, ``pretrain_jax.objectives.infonce``) pulls the two
views of an image together against the other 2B - 2 views. The probe reads the encoder's
features before the projection head (the paper's Sec. 4.2).
"""

from __future__ import annotations

from flax import nnx
import jax
import ml_collections

from pretrain_jax.data import augment
from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.methods import common
from pretrain_jax.nn.encoder import MLP
from pretrain_jax.objectives.infonce import contrastive_loss

NAME = "contrastive"
SUPERVISION = "none (two views, InfoNCE)"
features = common.features
evaluate = common.evaluate


class Model(nnx.Module):
  """Encoder + projection head."""

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs):
    self.encoder = common.make_encoder(config, info, rngs=rngs)
    dim = self.encoder.feature_dim
    self.projection = MLP(dim, dim, config.contrastive.projection_dim, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    """``[B, H, W, C]`` in [0, 1] -> projections ``[B, projection_dim]``."""
    return self.projection(self.encoder(images))


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> Model:
  """Encoder and projection head."""
  return Model(config, info, rngs=rngs)


def loss_fn(model: Model, batch: dict, key: jax.Array, config: ml_collections.ConfigDict):
  """NT-Xent between two augmented views of every image of the batch.

  Args:
    model: the ``Model``.
    batch: ``{"image": uint8 [B, H, W, C] (or float32 in [0, 1]), ...}``; labels are not read.
    key: PRNG key of the step (both views' augmentations).
    config: the run's config (``config.contrastive``: temperature, crop_scale,
      brightness, contrast, blur_probability).

  Returns:
    (loss in nats per view, {"positive_top1": fraction of views whose most similar other
    view is their partner}).
  """
  settings = config.contrastive
  view = lambda k, image: augment.contrastive_view(  # noqa: E731
      k, image, crop_scale=tuple(settings.crop_scale), brightness=settings.brightness,
      contrast=settings.contrast, blur_probability=settings.blur_probability)
  key_a, key_b = jax.random.split(key)
  images = common.to_float_images(batch["image"])
  num_images = images.shape[0]
  views_a = jax.vmap(view)(jax.random.split(key_a, num_images), images)
  views_b = jax.vmap(view)(jax.random.split(key_b, num_images), images)
  projections = model(jax.numpy.concatenate([views_a, views_b]))
  a, b = projections[:num_images], projections[num_images:]
  loss = contrastive_loss(a, b, settings.temperature)
  return loss, {"positive_top1": _positive_top1(a, b)}


def _positive_top1(a: jax.Array, b: jax.Array) -> jax.Array:
  """Fraction of rows of ``a`` whose nearest (cosine) row of ``b`` is their own partner."""
  a = a / jax.numpy.linalg.norm(a, axis=-1, keepdims=True).clip(1e-6)
  b = b / jax.numpy.linalg.norm(b, axis=-1, keepdims=True).clip(1e-6)
  similarity = a @ b.T
  return (similarity.argmax(-1) == jax.numpy.arange(a.shape[0])).mean()

"""Supervised pretraining: cross-entropy on the class labels.

The tables' "ImageNet / 1000 class labels" row, the upper reference: here the encoder is
trained on the dataset's own labels with a linear classifier on its pooled features, with
horizontal flips and light random-resized crops as augmentation.
"""

from __future__ import annotations

from flax import nnx
import jax
import ml_collections
import optax

from pretrain_jax.data import augment
from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.methods import common

NAME = "supervised"
SUPERVISION = "class labels"
features = common.features
evaluate = common.evaluate


class Model(nnx.Module):
  """Encoder + linear classifier."""

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs):
    self.encoder = common.make_encoder(config, info, rngs=rngs)
    self.classifier = nnx.Linear(self.encoder.feature_dim, info.num_classes, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    """``[B, H, W, C]`` in [0, 1] -> logits ``[B, num_classes]``."""
    return self.classifier(self.encoder(images))


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> Model:
  """Encoder and classifier for ``info.num_classes`` classes."""
  return Model(config, info, rngs=rngs)


def loss_fn(model: Model, batch: dict, key: jax.Array, config: ml_collections.ConfigDict):
  """Mean softmax cross-entropy on augmented images.

  Args:
    model: the ``Model``.
    batch: ``{"image": uint8 [B, H, W, C] (or float32 in [0, 1]), "label": int32 [B]}``.
    key: PRNG key of the step (augmentations).
    config: the run's config (``config.supervised.crop_scale``).

  Returns:
    (loss in nats per example, {"accuracy": fraction of the batch classified right}).
  """
  def crop_and_flip(image_key, image):
    crop_key, flip_key = jax.random.split(image_key)
    image = augment.random_resized_crop(crop_key, image, scale=tuple(config.supervised.crop_scale))
    return augment.random_flip(flip_key, image)

  images = common.to_float_images(batch["image"])
  images = jax.vmap(crop_and_flip)(jax.random.split(key, images.shape[0]), images)
  logits = model(images)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
  accuracy = (logits.argmax(-1) == batch["label"]).mean()
  return loss, {"accuracy": accuracy}

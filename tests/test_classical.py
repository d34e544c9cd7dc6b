"""Tests for the classical baselines: raw pixels, PCA, Coates–Lee–Ng k-means features."""

import chex
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl.testing import parameterized
from sklearn import decomposition

from pretrain_jax.methods import common
from pretrain_jax.methods import kmeans
from pretrain_jax.methods import pca
from pretrain_jax.methods import raw_pixels


def _images(n, height, width, channels, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, channels),
                                              dtype=np.uint8)


@pytest.mark.parametrize("module", [raw_pixels, pca, kmeans])
def test_method_interface(module):
  # Closed-form baselines: fitted once by the loop, no network, evaluated by probe + kNN.
  assert callable(module.fit) and not hasattr(module, "make_model")
  assert module.evaluate is common.evaluate_features
  assert module.NAME == module.__name__.rsplit(".", 1)[-1]
  assert module.SUPERVISION == "none"


def test_raw_pixels_shape_and_scaling():
  images = _images(5, 4, 3, 2)
  features = raw_pixels.fit_features(images, ml_collections.ConfigDict(), seed=0)(images)
  chex.assert_shape(features, (5, 24))
  assert features.dtype == np.float32
  for n in range(5):  # Row-major (H, W, C) flattening of pixel / 255.
    for i in range(4):
      for j in range(3):
        for c in range(2):
          assert features[n, (i * 3 + j) * 2 + c] == np.float32(images[n, i, j, c]) / 255
  assert features.min() >= 0.0 and features.max() <= 1.0
  with pytest.raises(ValueError):
    raw_pixels.raw_pixel_features(images.astype(np.float32))


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_svd(whiten):
  train, test = _images(300, 6, 6, 1, seed=1), _images(20, 6, 6, 1, seed=2)
  config = ml_collections.ConfigDict({"pca": {"num_components": 8, "whiten": whiten}})
  features_fn = pca.fit_features(train, config, seed=0)
  # Oracle: exact SVD of the centred train pixels, in float64.
  x = train.reshape(300, -1) / 255.0
  mean = x.mean(axis=0)
  _, singular_values, vt = np.linalg.svd(x - mean, full_matrices=False)
  expected = (test.reshape(20, -1) / 255.0 - mean) @ vt[:8].T
  if whiten:
    expected /= singular_values[:8] / np.sqrt(300 - 1)
  ours = features_fn(test)
  chex.assert_shape(ours, (20, 8))
  signs = np.sign(np.sum(ours * expected, axis=0))  # Components are defined up to sign.
  np.testing.assert_allclose(ours * signs, expected, rtol=1e-4, atol=1e-5)
  reference = decomposition.PCA(n_components=8, whiten=whiten).fit(x)
  np.testing.assert_allclose(ours * signs, reference.transform(test.reshape(20, -1) / 255.0)
                             * signs, rtol=1e-4, atol=1e-5)
  if whiten:  # Unit (Bessel-corrected) variance on the train split.
    np.testing.assert_allclose(features_fn(train).var(axis=0, ddof=1), 1.0, rtol=1e-4)


def test_pca_rejects_bad_config():
  train = _images(10, 4, 4, 1)
  with pytest.raises(ValueError):
    pca.fit_features(train, ml_collections.ConfigDict(), seed=0)
  with pytest.raises(ValueError):
    pca.fit_features(train, ml_collections.ConfigDict({"pca": {"num_components": 17, "whiten": False}}),
            seed=0)


class KMeansPartsTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_triangle_encoding_matches_loop(self):
    rng = np.random.default_rng(3)
    patches = rng.normal(size=(7, 4)).astype(np.float32)
    centroids = rng.normal(size=(5, 4)).astype(np.float32)
    patches[2] = centroids[3]  # A patch equal to a centroid.
    codes = np.asarray(self.variant(kmeans.triangle_encode)(patches, centroids))
    for m in range(7):
      z = [np.linalg.norm(patches[m].astype(np.float64) - c) for c in centroids]
      for k in range(5):
        np.testing.assert_allclose(codes[m, k], max(0.0, np.mean(z) - z[k]), atol=1e-5)
    # Its own centroid (distance 0) gets the largest activation, the mean distance.
    assert np.argmax(codes[2]) == 3
    np.testing.assert_allclose(
        codes[2, 3], np.mean(np.linalg.norm(centroids - patches[2], axis=1)), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_pool_quadrants_sums(self):
    features = np.random.default_rng(4).normal(size=(2, 5, 4, 3)).astype(np.float32)
    pooled = np.asarray(self.variant(kmeans.pool_quadrants)(features))
    chex.assert_shape(pooled, (2, 12))
    expected = np.zeros((2, 4, 3))
    for r in range(5):  # Top half: rows 0..2 (ceil(5/2) = 3); left half: cols 0..1.
      for c in range(4):
        expected[:, 2 * (r >= 3) + (c >= 2)] += features[:, r, c]
    np.testing.assert_allclose(pooled, expected.reshape(2, 12), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled.reshape(2, 4, 3).sum(1), features.sum((1, 2)),
                               rtol=1e-5, atol=1e-5)

  @parameterized.parameters(1, 2)
  def test_extract_patches_matches_slicing(self, stride):
    images = _images(2, 7, 6, 2, seed=5)
    patches = np.asarray(kmeans.extract_patches(images, 3, stride))
    rows, cols = (7 - 3) // stride + 1, (6 - 3) // stride + 1
    chex.assert_shape(patches, (2, rows, cols, 18))
    for n in range(2):
      for r in range(rows):
        for c in range(cols):
          np.testing.assert_array_equal(
              patches[n, r, c],
              images[n, r * stride:r * stride + 3, c * stride:c * stride + 3].ravel())

  def test_sampled_patches_are_image_patches(self):
    # Pixel values encode (image, row, col), so a patch reveals where it came from.
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8, 1)
    patches = kmeans.sample_patches(images, 50, 3, np.random.default_rng(6))
    dense = np.asarray(kmeans.extract_patches(images, 3, 1))
    for patch in patches:
      n, top, left = int(patch[0]) // 64, (int(patch[0]) % 64) // 8, int(patch[0]) % 8
      np.testing.assert_array_equal(patch, dense[n, top, left])

  def test_zca_whitens(self):
    rng = np.random.default_rng(7)
    mixing = rng.normal(size=(5, 5))
    data = rng.normal(size=(4000, 5)) @ mixing + 3.0
    mean, zca = kmeans.fit_zca(data, zca_eps=1e-9)
    whitened = (data - mean) @ zca.astype(np.float64)
    np.testing.assert_allclose(np.cov(whitened, rowvar=False), np.eye(5), atol=1e-4)
    np.testing.assert_allclose(zca, zca.T, atol=1e-5)  # ZCA is the symmetric whitener.

  def test_normalize_patches(self):
    patches = np.random.default_rng(8).uniform(0, 255, size=(6, 9)).astype(np.float32)
    normalized = np.asarray(kmeans.normalize_patches(jnp.asarray(patches), 10.0))
    for m in range(6):
      x = patches[m].astype(np.float64)
      np.testing.assert_allclose(
          normalized[m], (x - x.mean()) / np.sqrt(x.var(ddof=1) + 10.0), rtol=1e-4, atol=1e-5)


def _encode_loop(encoder, images):
  """Independent per-image, per-position implementation of the k-means feature map."""
  p, s = encoder.patch_size, encoder.stride
  num, height, width, _ = images.shape
  rows, cols = (height - p) // s + 1, (width - p) // s + 1
  centroids = encoder.centroids.astype(np.float64)
  out = np.zeros((num, 4, centroids.shape[0]))
  for n in range(num):
    for r in range(rows):
      for c in range(cols):
        x = images[n, r * s:r * s + p, c * s:c * s + p].astype(np.float64).ravel()
        x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + encoder.normalize_eps)
        x = (x - encoder.patch_mean) @ encoder.zca_matrix.astype(np.float64)
        z = np.linalg.norm(centroids - x, axis=1)
        quadrant = 2 * (r >= (rows + 1) // 2) + (c >= (cols + 1) // 2)
        out[n, quadrant] += np.maximum(z.mean() - z, 0.0)
  return out.reshape(num, -1)


@pytest.mark.parametrize("stride,channels", [(1, 1), (2, 2)])
def test_kmeans_features_match_loop(stride, channels):
  train, test = _images(40, 10, 10, channels, seed=9), _images(3, 10, 10, channels, seed=10)
  encoder = kmeans.fit_encoder(train, patch_size=3, num_patches=500, num_centroids=5,
                               stride=stride, normalize_eps=10.0, zca_eps=0.1, seed=0)
  chex.assert_shape(encoder.centroids, (5, 9 * channels))
  ours = kmeans.encode(encoder, test, batch_size=2)  # 2 batches, the last one padded.
  chex.assert_shape(ours, (3, 20))
  np.testing.assert_allclose(ours, _encode_loop(encoder, test), rtol=1e-5, atol=1e-4)


def test_kmeans_fit_from_config():
  train = _images(30, 8, 8, 1, seed=11)
  config = ml_collections.ConfigDict({"kmeans": {
      "patch_size": 3, "num_patches": 300, "num_centroids": 6, "stride": 1,
      "normalize_eps": 10.0, "zca_eps": 0.1}})
  features_fn = kmeans.fit_features(train, config, seed=0)
  features = features_fn(train[:4])
  chex.assert_shape(features, (4, 24))
  assert features.dtype == np.float32 and np.all(features >= 0)
  # Same seed, same features.
  np.testing.assert_array_equal(kmeans.fit_features(train, config, seed=0)(train[:4]), features)
  del config.kmeans["zca_eps"]
  with pytest.raises(ValueError, match="zca_eps"):
    kmeans.fit_features(train, config, seed=0)

"""Tests of pretrain_jax.data.augment against closed forms and numpy oracles."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from pretrain_jax.data import augment

H = W = 12


def _images(batch=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, H, W, 1), jnp.float32)


class ContrastiveViewsTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_views_shape_dtype_range_and_randomness(self):
    images = _images()
    views_fn = self.variant(augment.contrastive_views)
    first = views_fn(jax.random.key(1), images)
    second = views_fn(jax.random.key(2), images)
    chex.assert_shape(first, images.shape)
    assert first.dtype == jnp.float32
    chex.assert_tree_all_finite(first)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert not np.allclose(first, second), "different keys must give different views"
    np.testing.assert_array_equal(views_fn(jax.random.key(1), images), first)

  @chex.variants(with_jit=True, without_jit=True)
  def test_components_keep_shape_dtype_and_range(self):
    image = _images(1)[0]
    key = jax.random.key(4)
    for fn in (lambda k, x: augment.random_resized_crop(k, x),
               augment.random_flip,
               lambda k, x: augment.intensity_jitter(k, x, brightness=0.4, contrast=0.4),
               lambda k, x: augment.gaussian_blur(k, x, probability=1.0)):
      out = self.variant(fn)(key, image)
      chex.assert_shape(out, image.shape)
      assert out.dtype == jnp.float32
      assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_random_resized_crop_full_square_box_is_identity():
  image = _images(1)[0]
  out = augment.random_resized_crop(jax.random.key(0), image, scale=(1.0, 1.0), ratio=(1.0, 1.0))
  chex.assert_trees_all_close(out, image, atol=1e-6)


def test_crop_and_resize_matches_bilinear_closed_form_on_a_ramp():
  # Bilinear interpolation reproduces an affine image f(a, b) = 2a - 3b + 1 exactly at any
  # sample point between pixel centres, so the output is f at the documented sample points.
  rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
  image = jnp.asarray((2.0 * rows - 3.0 * cols + 1.0)[..., None], jnp.float32)
  top, left, height, width = 1.5, 2.25, 6.0, 8.0
  out = augment.crop_and_resize(image, jnp.array([top, left, height, width], jnp.float32))
  # Continuous coordinate of output centre i, minus 1/2 to get the fractional pixel index.
  sample_rows = top + (np.arange(H) + 0.5) * height / H - 0.5
  sample_cols = left + (np.arange(W) + 0.5) * width / W - 0.5
  expected = 2.0 * sample_rows[:, None] - 3.0 * sample_cols[None, :] + 1.0
  chex.assert_trees_all_close(out[..., 0], jnp.asarray(expected, jnp.float32), atol=1e-4)


def test_sample_crop_box_stays_inside_and_respects_scale():
  keys = jax.random.split(jax.random.key(0), 256)
  boxes = np.asarray(jax.jit(jax.vmap(lambda k: augment.sample_crop_box(k, 20, 20, scale=(0.3, 0.6),
                                                                        ratio=(0.75, 4 / 3))))(keys))
  top, left, height, width = boxes.T
  assert np.all(top >= 0) and np.all(left >= 0)
  assert np.all(top + height <= 20 + 1e-4) and np.all(left + width <= 20 + 1e-4)
  area = height * width / 400.0
  assert np.all(area <= 0.6 + 1e-5) and np.all(area >= 0.3 - 1e-5)  # sqrt(0.6 * 4/3) < 1: no clipping.
  aspect = width / height
  assert np.all(aspect >= 0.75 - 1e-5) and np.all(aspect <= 4 / 3 + 1e-5)


def test_random_flip_twice_is_identity_and_flip_is_mirror():
  image = _images(1)[0]
  flips = [bool(np.array_equal(augment.random_flip(jax.random.key(s), image), image[:, ::-1]))
           for s in range(16)]
  assert any(flips) and not all(flips), "p=1/2 flip: both outcomes appear in 16 keys"
  for s in range(4):
    key = jax.random.key(s)
    np.testing.assert_array_equal(augment.random_flip(key, augment.random_flip(key, image)), image)


def test_gaussian_blur_preserves_constant_image_and_matches_numpy_oracle():
  constant = jnp.full((H, W, 1), 0.3, jnp.float32)
  blurred = augment.gaussian_blur(jax.random.key(0), constant, sigma_range=(0.5, 1.0), probability=1.0)
  chex.assert_trees_all_close(blurred, constant, atol=1e-6)
  # Fixed sigma: compare with a direct 2-D sum over the outer-product kernel (edge padding).
  image = _images(1)[0]
  sigma = 0.8
  out = augment.gaussian_blur(jax.random.key(1), image, sigma_range=(sigma, sigma), probability=1.0)
  radius = 3
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  kernel = np.outer(taps, taps) / taps.sum() ** 2
  padded = np.pad(np.asarray(image[..., 0], np.float64), radius, mode="edge")
  expected = np.zeros((H, W))
  for i in range(H):
    for j in range(W):
      expected[i, j] = np.sum(kernel * padded[i:i + 2 * radius + 1, j:j + 2 * radius + 1])
  chex.assert_trees_all_close(out[..., 0], jnp.asarray(expected, jnp.float32), atol=1e-5)
  # probability=0 never blurs.
  np.testing.assert_array_equal(augment.gaussian_blur(jax.random.key(1), image, probability=0.0), image)


def test_intensity_jitter_identity_at_zero_and_bounded_shift():
  image = _images(1)[0]
  for s in range(3):
    out = augment.intensity_jitter(jax.random.key(s), image, brightness=0.0, contrast=0.0)
    chex.assert_trees_all_close(out, image, atol=1e-6)
  # contrast=0: a pure shift b with |b| <= brightness, identical for every pixel before clipping.
  mid = jnp.full((H, W, 1), 0.5, jnp.float32)
  shifted = augment.intensity_jitter(jax.random.key(3), mid, brightness=0.2, contrast=0.0)
  shift = float(shifted[0, 0, 0] - 0.5)
  assert abs(shift) <= 0.2
  chex.assert_trees_all_close(shifted, mid + shift, atol=1e-6)


def test_rotate_batch_matches_numpy_and_four_quarter_turns_are_identity():
  images = _images(2)
  rotated, labels = augment.rotate_batch(images)
  chex.assert_shape(rotated, (8, H, W, 1))
  assert labels.dtype == jnp.int32
  np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3])
  for k in range(4):
    np.testing.assert_array_equal(rotated[2 * k:2 * k + 2], np.rot90(np.asarray(images), k, axes=(1, 2)))
  # Closed form on a 2x2 image: a quarter turn counter-clockwise maps [[1, 2], [3, 4]] to [[2, 4], [1, 3]].
  tiny = jnp.array([[1, 2], [3, 4]], jnp.float32)[None, :, :, None]
  np.testing.assert_array_equal(augment.rotate_batch(tiny)[0][1, :, :, 0], [[2, 4], [1, 3]])
  # Applying the label-1 rotation four times returns the input.
  x = images
  for _ in range(4):
    x = augment.rotate_batch(x)[0][2:4]
  np.testing.assert_array_equal(x, images)
  with pytest.raises(ValueError, match="square"):
    augment.rotate_batch(jnp.zeros((1, 4, 5, 1)))


def test_add_noise_statistics_and_clipping():
  images = jnp.full((64, H, W, 1), 0.5, jnp.float32)
  noisy = augment.add_noise(jax.random.key(0), images, noise_std=0.1)
  chex.assert_shape(noisy, images.shape)
  residual = np.asarray(noisy - images)
  # 9,216 draws of N(0, 0.01) (clipping at 5 sigma is negligible): mean and std within ~4 s.e.
  assert abs(residual.mean()) < 4 * 0.1 / np.sqrt(residual.size)
  assert abs(residual.std() - 0.1) < 4 * 0.1 / np.sqrt(2 * residual.size)
  clipped = augment.add_noise(jax.random.key(1), images, noise_std=10.0)
  assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0
  np.testing.assert_array_equal(augment.add_noise(jax.random.key(1), images, noise_std=0.0), images)


def test_invalid_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="to_float32"):
    augment.contrastive_view(jax.random.key(0), jnp.zeros((H, W, 1), jnp.uint8))
  with pytest.raises(ValueError, match="scale"):
    augment.random_resized_crop(jax.random.key(0), _images(1)[0], scale=(0.5, 1.5))
  with pytest.raises(ValueError, match="contrast"):
    augment.intensity_jitter(jax.random.key(0), _images(1)[0], brightness=0.1, contrast=2.0)
  np.testing.assert_allclose(augment.to_float32(np.array([0, 255], np.uint8)), [0.0, 1.0])

"""Pure, jittable JAX augmentations for small grayscale images.

Per-image functions take ``key`` first and one image float32 ``[H, W, C]`` with pixels in
``[0, 1]`` (convert host batches with ``to_float32``); batch versions vmap them with one
key per image. Nothing here is jitted: callers jit their own step. Hyper-parameters are
static Python numbers; the random draws are the only traced quantities.

Sources: SimCLR augmentation pipeline (Chen, Kornblith, Norouzi & Hinton 2020, "A Simple
Framework for Contrastive Learning of Visual Representations", ICML, Appendix A: random
crop + resize, flip, color distortion, Gaussian blur), rotation prediction (Gidaris, Singh
& Komodakis 2018, "Unsupervised Representation Learning by Predicting Image Rotations",
ICLR, Sec. 2.2), denoising corruption (Vincent et al. 2010, "Stacked Denoising
Autoencoders", JMLR 11: additive isotropic Gaussian noise).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


def _check_images(images: jax.Array, ndim: int, what: str) -> None:
  if images.ndim != ndim or not jnp.issubdtype(images.dtype, jnp.floating):
    layout = "[H, W, C]" if ndim == 3 else "[B, H, W, C]"
    raise ValueError(f"{what} expects float {layout} pixels in [0, 1], got {images.dtype}"
                     f"{list(images.shape)}; convert uint8 images with to_float32.")


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
  if not low < bounds[0] <= bounds[1] <= high:
    raise ValueError(f"{name}={tuple(bounds)} must satisfy {low} < {name}[0] <= {name}[1] "
                     f"<= {high}.")


def to_float32(images: jax.Array) -> jax.Array:
  """Converts uint8 pixels ``[..., H, W, C]`` in ``[0, 255]`` to float32 in ``[0, 1]``."""
  return jnp.asarray(images, jnp.float32) / 255.0


def sample_crop_box(key: jax.Array, height: int, width: int, *,
                    scale: tuple[float, float] = (0.25, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
  """Samples an Inception-style crop box (random area fraction and aspect ratio).

  Area fraction ``s ~ U(scale)``, aspect ratio ``r = w / h`` log-uniform in ``ratio``,
  ``w = sqrt(s H W r)``, ``h = sqrt(s H W / r)``, each clipped to the image side (so a box
  that does not fit ends up with area below ``s H W`` instead of being re-drawn), then a
  uniform position inside the image. Coordinates are continuous (sub-pixel).
  Source: Szegedy et al. 2015, "Going Deeper with Convolutions" (training crops);
  SimCLR, Appendix A.

  Args:
    key: PRNG key.
    height: image height H in pixels (static).
    width: image width W in pixels (static).
    scale: ``(min, max)`` fraction of the image area, ``0 < min <= max <= 1``.
    ratio: ``(min, max)`` aspect ratio w / h, ``0 < min <= max``.

  Returns:
    float32 ``[4]``: ``(top, left, crop_height, crop_width)`` in pixels, with
    ``0 <= top``, ``top + crop_height <= H`` and likewise for the width.

  Raises:
    ValueError: scale or ratio out of range.
  """
  _check_range("scale", scale, 0.0, 1.0)
  _check_range("ratio", ratio, 0.0, math.inf)
  key_area, key_ratio, key_top, key_left = jax.random.split(key, 4)
  area = jax.random.uniform(key_area, (), jnp.float32, scale[0], scale[1]) * (height * width)
  log_ratio = jax.random.uniform(key_ratio, (), jnp.float32, math.log(ratio[0]),
                                 math.log(ratio[1]))
  aspect = jnp.exp(log_ratio)
  crop_width = jnp.minimum(jnp.sqrt(area * aspect), width)
  crop_height = jnp.minimum(jnp.sqrt(area / aspect), height)
  top = jax.random.uniform(key_top, (), jnp.float32) * (height - crop_height)
  left = jax.random.uniform(key_left, (), jnp.float32) * (width - crop_width)
  return jnp.stack([top, left, crop_height, crop_width])


def crop_and_resize(image: jax.Array, box: jax.Array) -> jax.Array:
  """Bilinearly resamples the box ``(top, left, crop_height, crop_width)`` to the full size.

  Pixel ``(i, j)`` of the output, centred at ``(i + 1/2, j + 1/2)``, samples the input at
  ``(top + (i + 1/2) h / H, left + (j + 1/2) w / W)`` in continuous coordinates where input
  pixel ``(a, b)`` is centred at ``(a + 1/2, b + 1/2)`` (``jax.image.scale_and_translate``
  with ``scale = H / h`` and ``translation = -top H / h``).

  Args:
    image: float ``[H, W, C]``.
    box: float ``[4]`` ``(top, left, crop_height, crop_width)`` in pixels, inside the image.

  Returns:
    float ``[H, W, C]``, same dtype as ``image``.
  """
  height, width, _ = image.shape
  size = jnp.array([height, width], jnp.float32)
  zoom = size / box[2:]
  return jax.image.scale_and_translate(
      image, image.shape, spatial_dims=(0, 1), scale=zoom, translation=-box[:2] * zoom,
      method="linear", antialias=False).astype(image.dtype)


def random_resized_crop(key: jax.Array, image: jax.Array, *,
                        scale: tuple[float, float] = (0.25, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
  """Random crop (``sample_crop_box``) resized back to ``H x W`` (``crop_and_resize``).

  Source: SimCLR (Chen et al. 2020), Appendix A, "random crop and resize".

  Args:
    key: PRNG key.
    image: float32 ``[H, W, C]`` in ``[0, 1]``.
    scale: ``(min, max)`` fraction of the image area kept, ``0 < min <= max <= 1``.
    ratio: ``(min, max)`` aspect ratio w / h of the crop.

  Returns:
    float32 ``[H, W, C]`` in ``[0, 1]`` (bilinear interpolation stays in range).

  Raises:
    ValueError: not a float ``[H, W, C]`` image, or scale / ratio out of range.
  """
  _check_images(image, 3, "random_resized_crop")
  box = sample_crop_box(key, image.shape[0], image.shape[1], scale=scale, ratio=ratio)
  return crop_and_resize(image, box)


def random_flip(key: jax.Array, image: jax.Array) -> jax.Array:
  """Mirrors the image left-right (the W axis) with probability 1/2.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` of any dtype.

  Returns:
    ``[H, W, C]``, ``image`` or ``image[:, ::-1]``.
  """
  return jnp.where(jax.random.bernoulli(key), image[:, ::-1], image)


def intensity_jitter(key: jax.Array, image: jax.Array, *, brightness: float,
                     contrast: float) -> jax.Array:
  """Grayscale colour jitter: random contrast scale about the mean, then brightness shift.

  ``out = clip((x - mean(x)) c + mean(x) + b, 0, 1)`` with ``c ~ U(1 - contrast,
  1 + contrast)`` and ``b ~ U(-brightness, brightness)`` (an additive shift in pixel units,
  which also lifts black backgrounds); ``mean`` is over all pixels of the image.
  The grayscale counterpart of SimCLR's colour distortion (Chen et al. 2020, Appendix A,
  ColorJitter brightness/contrast; hue and saturation do not exist for grayscale).

  Args:
    key: PRNG key.
    image: float32 ``[H, W, C]`` in ``[0, 1]``.
    brightness: maximum shift, in pixel units of the ``[0, 1]`` scale, ``>= 0``.
    contrast: maximum relative contrast change, ``0 <= contrast <= 1``.

  Returns:
    float32 ``[H, W, C]`` in ``[0, 1]``.

  Raises:
    ValueError: not a float ``[H, W, C]`` image, or parameters out of range.
  """
  _check_images(image, 3, "intensity_jitter")
  if brightness < 0 or not 0 <= contrast <= 1:
    raise ValueError(f"brightness={brightness} must be >= 0 and contrast={contrast} in [0, 1].")
  key_contrast, key_brightness = jax.random.split(key)
  factor = jax.random.uniform(key_contrast, (), image.dtype, 1 - contrast, 1 + contrast)
  shift = jax.random.uniform(key_brightness, (), image.dtype, -brightness, brightness)
  mean = jnp.mean(image)
  return jnp.clip((image - mean) * factor + mean + shift, 0.0, 1.0)


def _blur_axis(image: jax.Array, weights: jax.Array, radius: int, axis: int) -> jax.Array:
  """Correlates ``image`` with the ``2 radius + 1`` taps ``weights`` along ``axis`` (edge padding)."""
  pad = [(0, 0)] * image.ndim
  pad[axis] = (radius, radius)
  padded = jnp.pad(image, pad, mode="edge")
  size = image.shape[axis]
  return sum(weights[k] * jax.lax.slice_in_dim(padded, k, k + size, axis=axis)
             for k in range(2 * radius + 1))


def gaussian_blur(key: jax.Array, image: jax.Array, *,
                  sigma_range: tuple[float, float] = (0.1, 1.0),
                  probability: float = 0.5) -> jax.Array:
  """Separable Gaussian blur with random width, applied with a given probability.

  ``sigma ~ U(sigma_range)`` pixels; the kernel has ``2 r + 1`` taps with
  ``r = ceil(3 sigma_range[1])`` (static), weights ``exp(-t^2 / (2 sigma^2))`` normalised
  to sum to 1, applied along H then W with edge padding (so a constant image stays
  constant). Source: SimCLR (Chen et al. 2020), Appendix A, Gaussian blur (there
  ``sigma`` in ``[0.1, 2.0]`` for 224-pixel images; smaller defaults here for 28 pixels).

  Args:
    key: PRNG key.
    image: float32 ``[H, W, C]`` in ``[0, 1]``.
    sigma_range: ``(min, max)`` standard deviation in pixels, ``0 < min <= max``.
    probability: chance of blurring, in ``[0, 1]``.

  Returns:
    float32 ``[H, W, C]`` in ``[0, 1]``.

  Raises:
    ValueError: not a float ``[H, W, C]`` image, or parameters out of range.
  """
  _check_images(image, 3, "gaussian_blur")
  _check_range("sigma_range", sigma_range, 0.0, math.inf)
  if not 0 <= probability <= 1:
    raise ValueError(f"probability={probability} must be in [0, 1].")
  key_apply, key_sigma = jax.random.split(key)
  radius = math.ceil(3 * sigma_range[1])
  sigma = jax.random.uniform(key_sigma, (), jnp.float32, sigma_range[0], sigma_range[1])
  taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  weights = jnp.exp(-0.5 * jnp.square(taps / sigma))
  weights = (weights / jnp.sum(weights)).astype(image.dtype)
  blurred = _blur_axis(_blur_axis(image, weights, radius, axis=0), weights, radius, axis=1)
  return jnp.where(jax.random.bernoulli(key_apply, probability), blurred, image)


def contrastive_view(key: jax.Array, image: jax.Array, *,
                     crop_scale: tuple[float, float] = (0.25, 1.0),
                     brightness: float = 0.4, contrast: float = 0.4,
                     blur_probability: float = 0.5,
                     jitter_probability: float = 0.8) -> jax.Array:
  """One SimCLR-style random view: crop + resize, flip, intensity jitter, blur (that order).

  Source: Chen et al. 2020 (SimCLR), Appendix A; jitter is applied with probability 0.8
  as there, and the blur uses ``gaussian_blur``'s default ``sigma_range``.

  Args:
    key: PRNG key.
    image: float32 ``[H, W, C]`` in ``[0, 1]``.
    crop_scale: area fraction range of ``random_resized_crop``.
    brightness: see ``intensity_jitter`` (pixel units on ``[0, 1]``).
    contrast: see ``intensity_jitter`` (relative).
    blur_probability: chance of a Gaussian blur.
    jitter_probability: chance of the intensity jitter.

  Returns:
    float32 ``[H, W, C]`` in ``[0, 1]``.

  Raises:
    ValueError: invalid image or parameters (see the component functions).
  """
  _check_images(image, 3, "contrastive_view")
  if not 0 <= jitter_probability <= 1:
    raise ValueError(f"jitter_probability={jitter_probability} must be in [0, 1].")
  key_crop, key_flip, key_jitter, key_apply_jitter, key_blur = jax.random.split(key, 5)
  view = random_resized_crop(key_crop, image, scale=crop_scale)
  view = random_flip(key_flip, view)
  jittered = intensity_jitter(key_jitter, view, brightness=brightness, contrast=contrast)
  view = jnp.where(jax.random.bernoulli(key_apply_jitter, jitter_probability), jittered, view)
  return gaussian_blur(key_blur, view, probability=blur_probability)


def contrastive_views(key: jax.Array, images: jax.Array, *,
                      crop_scale: tuple[float, float] = (0.25, 1.0),
                      brightness: float = 0.4, contrast: float = 0.4,
                      blur_probability: float = 0.5,
                      jitter_probability: float = 0.8) -> jax.Array:
  """``contrastive_view`` of every image of a batch, one independent key per image.

  Call twice with different keys for the two views of SimCLR (Chen et al. 2020, Alg. 1).

  Args:
    key: PRNG key (split into B keys).
    images: float32 ``[B, H, W, C]`` in ``[0, 1]``.
    crop_scale: see ``contrastive_view``.
    brightness: see ``contrastive_view``.
    contrast: see ``contrastive_view``.
    blur_probability: see ``contrastive_view``.
    jitter_probability: see ``contrastive_view``.

  Returns:
    float32 ``[B, H, W, C]`` in ``[0, 1]``.

  Raises:
    ValueError: invalid images or parameters.
  """
  _check_images(images, 4, "contrastive_views")
  view_fn = functools.partial(contrastive_view, crop_scale=crop_scale, brightness=brightness,
                              contrast=contrast, blur_probability=blur_probability,
                              jitter_probability=jitter_probability)
  return jax.vmap(view_fn)(jax.random.split(key, images.shape[0]), images)


def rotate_batch(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """All four rotations of every image, for rotation prediction (RotNet).

  Block ``k`` (rows ``k B`` to ``(k + 1) B - 1``) is the batch rotated by ``k * 90``
  degrees counter-clockwise (``jnp.rot90(images, k, axes=(1, 2))``), labelled ``k``.
  Source: Gidaris, Singh & Komodakis 2018, ICLR, Sec. 2.2 (the transformations
  ``Rot(X, 0/90/180/270)`` and their 4-way classification).

  Args:
    images: ``[B, H, W, C]`` with ``H == W``, any dtype.

  Returns:
    ``(rotated, labels)``: ``[4 B, H, W, C]`` of the input dtype, and int32 ``[4 B]``
    rotation labels in ``{0, 1, 2, 3}``.

  Raises:
    ValueError: not ``[B, H, W, C]`` or not square.
  """
  if images.ndim != 4 or images.shape[1] != images.shape[2]:
    raise ValueError(f"rotate_batch expects square images [B, H, H, C], got "
                     f"{list(images.shape)}; crop or pad to a square first.")
  rotated = jnp.concatenate([jnp.rot90(images, k, axes=(1, 2)) for k in range(4)], axis=0)
  labels = jnp.repeat(jnp.arange(4, dtype=jnp.int32), images.shape[0])
  return rotated, labels


def add_noise(key: jax.Array, images: jax.Array, noise_std: float) -> jax.Array:
  """Additive isotropic Gaussian corruption for a denoising autoencoder, clipped to [0, 1].

  ``x_tilde = clip(x + noise_std * eps, 0, 1)``, ``eps ~ N(0, I)``.
  Source: Vincent et al. 2010, "Stacked Denoising Autoencoders", JMLR 11 (additive
  isotropic Gaussian noise among the corruption processes).

  Args:
    key: PRNG key.
    images: float ``[...]`` pixels in ``[0, 1]`` (any shape, e.g. ``[B, H, W, C]``).
    noise_std: standard deviation of the noise in pixel units of ``[0, 1]``, ``>= 0``.

  Returns:
    float ``[...]`` of the input shape and dtype, in ``[0, 1]``.

  Raises:
    ValueError: non-float images or negative ``noise_std``.
  """
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"add_noise expects float pixels in [0, 1], got {images.dtype}; convert "
                     "uint8 images with to_float32.")
  if noise_std < 0:
    raise ValueError(f"noise_std={noise_std} must be >= 0.")
  noise = jax.random.normal(key, images.shape, images.dtype)
  return jnp.clip(images + noise_std * noise, 0.0, 1.0)

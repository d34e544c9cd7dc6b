"""Tests for the rotation and autoencoder method losses and the ConvDecoder.

Oracles: cross-entropies and squared errors recomputed in float64 numpy from the model's
raw outputs, on inputs built independently with numpy (``np.rot90`` rotations, exact
enumeration of the 2^B random flips, noise re-drawn from the documented key use), and
central finite differences of a float64 copy of the decoder for its gradient.
"""

import itertools
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pretrain_jax import table
from pretrain_jax.data.datasets import DATASETS
from pretrain_jax.methods import autoencoder
from pretrain_jax.methods import rotation
from pretrain_jax.nn.encoder import ConvDecoder
from pretrain_jax.nn.encoder import ConvEncoder

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _init(build_fn, seed):
  """build_fn(nnx.Rngs(params=key)) under jax.jit, with an "rbg" key for the seed.

  The oracles hold for any initial weights; the rbg generator only keeps the test fast:
  compiling the init with the default threefry keys takes ~15 s of CPU, eager init ~17 s,
  rbg ~2 s.
  """
  key = jax.random.key(seed, impl="rbg")
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_fn(nnx.Rngs(params=key))))
  state = jax.jit(lambda key: nnx.split(build_fn(nnx.Rngs(params=key)))[1])(key)
  return nnx.merge(graphdef, state)


def _make(module, info):
  """The method's smoke config and its model, initialised from seed 0."""
  config = table.load_method_config(CONFIGS, module.NAME, "smoke", seed=0)
  model = _init(lambda rngs: module.make_model(config, info, rngs=rngs), 0)
  return config, model


def _jitted(model, fn):
  """jit(fn(model, *args)) over the model's state: one compilation instead of one per op."""
  graphdef, state = nnx.split(model)
  run = jax.jit(lambda state, *args: fn(nnx.merge(graphdef, state), *args))
  return lambda *args: run(state, *args)


def _batch(images):
  return {"image": jnp.asarray(images, jnp.float32),
          "label": jnp.zeros(images.shape[0], jnp.int32)}


def _numpy_cross_entropy(logits, labels):
  """Mean −log softmax(logits)[label] in float64, with an explicit max shift."""
  logits = np.asarray(logits, np.float64)
  top = logits.max(axis=-1, keepdims=True)
  log_normaliser = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
  return np.mean(log_normaliser - logits[np.arange(len(labels)), labels])


def test_rotation_loss_is_cross_entropy_of_numpy_rotations():
  """Loss = CE of the classifier on the 4 counter-clockwise rotations (label k for k·90°).

  The module flips each image left-right at random (from ``key``) before rotating; with
  B = 3 images the 2^3 flip patterns are enumerated, and the loss must equal the oracle
  of one of them (the oracles of different patterns are checked to differ by far more
  than the tolerance), with the accuracy metric of that same pattern. Rotations use ``np.rot90`` over (H, W),
  which turns the first axis towards the second, i.e. counter-clockwise as displayed.
  """
  config, model = _make(rotation, DATASETS["digits"])
  images = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
  loss, metrics = _jitted(model, lambda m, batch, key: rotation.loss_fn(m, batch, key, config))(
      _batch(images), jax.random.key(1, impl="rbg"))
  chex.assert_shape(loss, ())
  logits_fn = _jitted(model, lambda m, x: m.classifier(m.encoder(x)))

  oracles = []
  for flips in itertools.product([False, True], repeat=len(images)):
    flipped = [image[:, ::-1] if flip else image for image, flip in zip(images, flips)]
    rotated, labels = [], []
    for k in range(4):  # Block k: every image turned by k·90° counter-clockwise.
      for image in flipped:
        rotated.append(np.rot90(image, k, axes=(0, 1)))
        labels.append(k)
    logits = np.asarray(logits_fn(jnp.asarray(np.stack(rotated))), np.float64)
    labels = np.array(labels)
    oracles.append((_numpy_cross_entropy(logits, labels),
                    np.mean(logits.argmax(-1) == labels)))
  cross_entropies = np.array([ce for ce, _ in oracles])
  assert np.abs(cross_entropies[:, None] - cross_entropies[None, :])[
      ~np.eye(len(oracles), dtype=bool)].min() > 1e-4, oracles  # patterns distinguishable
  matches = [(ce, accuracy) for ce, accuracy in oracles if abs(ce - float(loss)) < 1e-5]
  assert len(matches) == 1, (float(loss), oracles)
  np.testing.assert_allclose(metrics["accuracy"], matches[0][1], atol=1e-7)


def test_autoencoder_loss_is_sum_of_squared_pixel_errors():
  """Loss = batch mean of Σ_pixels (sigmoid(decoder(encoder(x̃))) − x)², mse = its pixel mean.

  x̃ = clip(x + σ ε, 0, 1) with ε ~ N(0, I) drawn from the step key (``add_noise``). The
  oracle applies the sigmoid, the clip and the sums in float64 numpy to the decoder's raw
  outputs, once with the noise switched off (σ = 0: x̃ = x exactly) and once with the
  config's σ, re-drawing ε as documented.
  """
  config, model = _make(autoencoder, DATASETS["digits"])
  images = np.random.default_rng(1).uniform(size=(4, 8, 8, 1)).astype(np.float32)
  key = jax.random.key(2, impl="rbg")  # rbg: faster to compile than threefry
  raw_fn = _jitted(model, lambda m, x: m.decoder(m.encoder(x)))

  def oracle(inputs):
    raw = np.asarray(raw_fn(jnp.asarray(inputs, jnp.float32)), np.float64)
    squared_error = (1 / (1 + np.exp(-raw)) - images.astype(np.float64))**2
    return squared_error.sum(axis=(1, 2, 3)).mean(), squared_error.mean()

  noise_std = config.autoencoder.noise_std
  assert noise_std > 0
  noise = np.asarray(jax.random.normal(key, images.shape, jnp.float32), np.float64)
  noisy = np.clip(images + noise_std * noise, 0.0, 1.0)
  results = {}
  for std, inputs in ((0.0, images), (noise_std, noisy)):
    config.autoencoder.noise_std = std
    loss, metrics = _jitted(model, lambda m, b, k: autoencoder.loss_fn(m, b, k, config))(
        _batch(images), key)
    expected_loss, expected_mse = oracle(inputs)
    np.testing.assert_allclose(loss, expected_loss, rtol=2e-6)
    np.testing.assert_allclose(metrics["mse"], expected_mse, rtol=2e-6)
    results[std] = expected_loss
  # The comparison has power: noise moves the (random-init) loss by ~1e-3 relative,
  # far beyond the 2e-6 tolerance, so a loss that skipped or re-drew the noise fails.
  assert abs(results[noise_std] - results[0.0]) > 1e-4 * results[0.0], results


def test_conv_decoder_on_28x28_shape_and_gradient():
  """28×28×1 images -> encoder features [B, 4w] -> decoder [B, 28, 28, 1].

  Every decoder parameter receives gradient, and the gradient along a random direction
  matches a central finite difference of a float64 copy (oracle independent of autodiff).
  """
  info = DATASETS["mnist"]
  assert info.image_shape == (28, 28, 1)
  width = 8
  encoder = _init(lambda rngs: ConvEncoder(1, width, rngs=rngs), 0)
  decoder = _init(lambda rngs: ConvDecoder(4 * width, info.image_shape, width, rngs=rngs),
                  1)
  rng = np.random.default_rng(2)
  images = jnp.asarray(rng.uniform(size=(2, 28, 28, 1)), jnp.float32)
  features = _jitted(encoder, lambda m, x: m(x))(images)
  chex.assert_shape(features, (2, 4 * width))
  graphdef, params = nnx.split(decoder, nnx.Param)
  target = rng.normal(size=(2, 28, 28, 1))

  def loss_fn(params, features):
    out = nnx.merge(graphdef, params)(features)
    return jnp.sum(out * jnp.asarray(target, out.dtype)), out

  (_, out), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, features)
  chex.assert_shape(out, (2, 28, 28, 1))
  chex.assert_tree_all_finite((out, grads))
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.abs(np.asarray(grad)).max() > 0, f"no gradient reaches {path}"

  direction = jax.tree.map(lambda p: rng.normal(size=p.shape), params)
  directional = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads),
                                                          jax.tree.leaves(direction)))
  with jax.enable_x64(True):
    params64 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    features64 = jnp.asarray(features, jnp.float64)
    value_fn = jax.jit(lambda params: loss_fn(params, features64)[0])
    eps = 1e-6
    shifted = [jax.tree.map(lambda p, d, s=s: p + s * eps * d, params64, direction)
               for s in (1, -1)]
    numeric = (float(value_fn(shifted[0])) - float(value_fn(shifted[1]))) / (2 * eps)
  np.testing.assert_allclose(directional, numeric, rtol=1e-3)

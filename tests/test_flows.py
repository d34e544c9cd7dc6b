"""Tests for pretrain_jax.nn.flows: invertibility, autodiff Jacobians, normalisation on a
grid, and bits/dim against hand computations."""

import math

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrain_jax.nn import flows

# One hidden width everywhere: each distinct weight shape costs an initialiser compilation.
HIDDEN = (16,)
MASKS = {
    "alternating": flows.alternating_mask(6),
    "halves": flows.half_mask(6),
    "checkerboard": flows.checkerboard_mask(2, 3),
}


# One jitted dequantisation (and one input shape) shared by the tests that need it.
_dequantize = jax.jit(flows.dequantize)
PIXELS_SHAPE = (1000, 3)


def _round_trip_and_jacobian(module, x_BxD):
  """One jitted pass: z, log_det = forward(x), inverse(z), and the oracle log |det ∂z/∂x|
  per example from jax.jacfwd and slogdet (with its sign)."""
  graphdef, params = nnx.split(module)

  @jax.jit
  def run(params, x_BxD):
    model = nnx.merge(graphdef, params)
    z_BxD, log_det_B = model.forward(x_BxD)
    jacobian_BxDxD = jax.vmap(jax.jacfwd(lambda x: model.forward(x[None])[0][0]))(x_BxD)
    return z_BxD, log_det_B, model.inverse(z_BxD), jacobian_BxDxD

  z_BxD, log_det_B, x_again, jacobian_BxDxD = run(params, x_BxD)
  sign_B, expected_B = np.linalg.slogdet(np.asarray(jacobian_BxDxD, np.float64))
  return z_BxD, log_det_B, x_again, sign_B, expected_B


def test_masks():
  np.testing.assert_array_equal(flows.alternating_mask(5), [1, 0, 1, 0, 1])
  np.testing.assert_array_equal(flows.alternating_mask(5, 1), [0, 1, 0, 1, 0])
  np.testing.assert_array_equal(flows.half_mask(5), [1, 1, 0, 0, 0])
  np.testing.assert_array_equal(flows.half_mask(5, 1), [0, 0, 1, 1, 1])
  # 2 x 3 image, 2 channels, row-major [H, W, C]: pixel (h, w) is on iff h + w is even.
  np.testing.assert_array_equal(
      flows.checkerboard_mask(2, 3, 2).reshape(2, 3, 2)[..., 0], [[1, 0, 1], [0, 1, 0]])
  np.testing.assert_array_equal(
      flows.checkerboard_mask(2, 3, 2, parity=1), 1 - flows.checkerboard_mask(2, 3, 2))


@pytest.mark.parametrize("additive,mask_name", [(False, "alternating"), (False, "halves"),
                                                (False, "checkerboard"), (True, "halves")])
def test_coupling_layer_inverse_and_log_det(additive, mask_name):
  layer = flows.CouplingLayer(mask=MASKS[mask_name], hidden_dims=HIDDEN, additive=additive,
                              rngs=nnx.Rngs(0))
  x_BxD = jax.random.normal(jax.random.key(1), (5, 6)) * 2.0
  z_BxD, log_det_B, x_again, sign, expected = _round_trip_and_jacobian(layer, x_BxD)
  chex.assert_shape((z_BxD, log_det_B), ((5, 6), (5,)))
  chex.assert_trees_all_close(x_again, x_BxD, atol=1e-5, rtol=1e-5)
  # The features with b = 1 pass through unchanged; the others really change.
  keep = MASKS[mask_name].astype(bool)
  np.testing.assert_array_equal(z_BxD[:, keep], x_BxD[:, keep])
  assert np.min(np.abs(z_BxD[:, ~keep] - x_BxD[:, ~keep])) > 0
  assert np.all(sign > 0)
  chex.assert_trees_all_close(log_det_B, expected, atol=1e-5)
  if additive:
    chex.assert_trees_all_close(log_det_B, jnp.zeros(5))
  else:
    assert np.min(np.abs(log_det_B)) > 1e-3  # a non-trivial volume change


@pytest.mark.parametrize("additive,prior", [(False, "gaussian"), (True, "logistic")])
def test_flow_inverse_and_log_det(additive, prior):
  flow = flows.Flow(dim=6, num_layers=4, hidden_dims=HIDDEN, mask=MASKS["halves"],
                    additive=additive, prior=prior, rngs=nnx.Rngs(2))
  if additive:  # make NICE's diagonal scaling non-trivial
    flow.log_scale[...] = jnp.linspace(-0.5, 0.7, 6)
  x_BxD = jax.random.normal(jax.random.key(3), (4, 6))
  z_BxD, log_det_B, x_again, _, expected = _round_trip_and_jacobian(flow, x_BxD)
  chex.assert_trees_all_close(x_again, x_BxD, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(log_det_B, expected, atol=1e-4)
  # log p(x) = log p_Z(z) + log_det with the prior written out here.
  if prior == "gaussian":
    log_prior = np.sum(-0.5 * z_BxD**2 - 0.5 * np.log(2 * np.pi), axis=-1)
  else:
    log_prior = np.sum(-z_BxD - 2 * np.log1p(np.exp(-z_BxD)), axis=-1)
  chex.assert_trees_all_close(flow.log_prob(x_BxD), log_prior + log_det_B, atol=1e-4)


@pytest.mark.parametrize("additive,prior", [(False, "gaussian"), (True, "logistic")])
def test_two_dimensional_density_integrates_to_one(additive, prior):
  # tanh hidden units keep the shifts t bounded, so the tails stay within the grid.
  flow = flows.Flow(dim=2, num_layers=4, hidden_dims=HIDDEN, additive=additive, prior=prior,
                    activation="tanh", rngs=nnx.Rngs(4))
  if additive:
    flow.log_scale[...] = jnp.array([0.3, -0.2])
  graphdef, params = nnx.split(flow)
  half_width, num = (25.0, 1000) if prior == "gaussian" else (30.0, 800)
  grid = np.linspace(-half_width, half_width, num, dtype=np.float32)
  cell = (grid[1] - grid[0])**2
  xx, yy = np.meshgrid(grid, grid, indexing="ij")
  points = np.stack([xx.ravel(), yy.ravel()], axis=-1)
  num_samples, key = 20_000, jax.random.key(5)

  @jax.jit
  def run(params, points):
    model = nnx.merge(graphdef, params)
    samples = model.sample(key, num_samples)
    z, _ = model.forward(samples)
    return model.log_prob(points), samples, z, model.inverse(z)

  log_density, samples, z, samples_again = run(params, points)
  density = np.exp(np.asarray(log_density, np.float64))
  total = density.sum() * cell
  assert abs(total - 1.0) < 2e-3, total
  # Samples are f⁻¹ of the documented prior draws, and go back and forth consistently.
  chex.assert_tree_all_finite(samples)
  draw = jax.random.normal if prior == "gaussian" else jax.random.logistic
  chex.assert_trees_all_close(z, draw(key, (num_samples, 2)), atol=2e-4, rtol=1e-4)
  chex.assert_trees_all_close(samples_again, samples, atol=2e-4, rtol=1e-4)
  # Samples agree with the density: the sample mean of x matches ∫ x p(x) dx on the grid.
  grid_mean = (points * density[:, None]).sum(0) * cell
  standard_error = np.asarray(samples).std(0) / np.sqrt(num_samples)
  assert np.all(np.abs(np.asarray(samples).mean(0) - grid_mean) < 4 * standard_error + 1e-3)


def test_dequantize_stays_in_the_pixel_bin():
  x = np.random.default_rng(8).integers(0, 256, size=PIXELS_SHAPE).astype(np.uint8)
  x[0], x[1] = 255, 0
  y = _dequantize(jax.random.key(9), x)
  assert y.dtype == jnp.float32
  y = np.asarray(y, np.float64)
  assert np.all((y >= 0) & (y < 1))
  np.testing.assert_array_equal(np.floor(y * 256), x)
  offset = y * 256 - x  # ~ U[0, 1)
  assert abs(offset.mean() - 0.5) < 4 * np.sqrt(1 / 12 / offset.size)
  with pytest.raises(ValueError, match="integer"):
    flows.dequantize(jax.random.key(0), x.astype(np.float32) / 255)


def test_bits_per_dim_hand_computations():
  # Uniform density on [0, 1)^D: nll = 0, so 8 bits/dim.
  chex.assert_trees_all_close(flows.bits_per_dim(jnp.zeros(3), 3072), jnp.full((3,), 8.0))
  # The formula by hand for D = 4 and nll = 10 nats.
  expected = (10.0 + 4 * math.log(256)) / (4 * math.log(2))
  chex.assert_trees_all_close(flows.bits_per_dim(10.0, 4), expected, rtol=1e-6)


def test_bits_per_dim_is_tight_for_a_piecewise_constant_density():
  """The density p(y) = Π_d 256 P_d(⌊256 y_d⌋) on [0, 1)^D assigns each 8-bit value x the
  mass P(x) of its bin, and is constant there, so the Theis et al. bound is an equality:
  bits/dim of the dequantised data = −log₂ P(x) / D for every noise draw."""
  rng = np.random.default_rng(10)
  num_dims = PIXELS_SHAPE[1]
  log_pmf_DxV = np.log(rng.dirichlet(np.ones(256), size=num_dims))
  x = rng.integers(0, 256, size=PIXELS_SHAPE)
  y = np.asarray(_dequantize(jax.random.key(11), x.astype(np.uint8)), np.float64)
  bins = np.floor(256 * y).astype(int)
  dims = np.arange(num_dims)[None, :]
  nll = -np.sum(np.log(256.0) + log_pmf_DxV[dims, bins], axis=-1)
  expected = -np.sum(log_pmf_DxV[dims, x], axis=-1) / (num_dims * np.log(2))
  chex.assert_trees_all_close(flows.bits_per_dim(nll, num_dims), expected, rtol=1e-5)


def test_logit_transform_round_trip_and_log_det():
  y = np.random.default_rng(12).uniform(size=(4, 5)).astype(np.float32)

  @jax.jit
  def run(y):
    v, log_det = flows.logit_transform(y)
    jacobian = jax.vmap(jax.jacfwd(lambda row: flows.logit_transform(row[None])[0][0]))(y)
    return flows.inverse_logit_transform(v), log_det, jacobian

  y_again, log_det, jacobian = run(y)
  chex.assert_trees_all_close(y_again, y, atol=1e-5)
  expected = np.linalg.slogdet(np.asarray(jacobian, np.float64))[1]
  chex.assert_trees_all_close(log_det, expected, atol=1e-4)


def test_invalid_arguments_raise():
  with pytest.raises(ValueError, match="0s and 1s"):
    flows.CouplingLayer(mask=np.ones(4), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="prior"):
    flows.Flow(dim=4, prior="laplace", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="mask has"):
    flows.Flow(dim=4, mask=flows.alternating_mask(6), rngs=nnx.Rngs(0))
  flow = flows.Flow(dim=6, num_layers=2, hidden_dims=HIDDEN, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="flatten"):
    flow.log_prob(jnp.zeros((2, 2, 2)))
  with pytest.raises(ValueError, match="num_dims"):
    flows.bits_per_dim(1.0, 0)

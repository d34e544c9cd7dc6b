"""Tests for pretrain_jax.objectives.sparse_coding: ISTA/FISTA against scikit-learn's Lasso,
monotone descent, the proximal operator by brute force, and the tied autoencoder."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import Lasso

from pretrain_jax.objectives import sparse_coding

DIM, NUM_ATOMS, LAM = 16, 24, 0.3


def _problem(seed=0, batch=4):
  """An overcomplete unit-norm dictionary and signals made of 3 atoms plus noise."""
  rng = np.random.default_rng(seed)
  dictionary = rng.normal(size=(DIM, NUM_ATOMS))
  dictionary /= np.linalg.norm(dictionary, axis=0, keepdims=True)
  true_codes = np.zeros((batch, NUM_ATOMS))
  for b in range(batch):
    true_codes[b, rng.choice(NUM_ATOMS, 3, replace=False)] = rng.normal(size=3) * 2
  x = true_codes @ dictionary.T + 0.05 * rng.normal(size=(batch, DIM))
  return x.astype(np.float32), dictionary.astype(np.float32)


def _lasso_codes(x, dictionary, lam):
  """scikit-learn minimises (1/(2n)) ‖y − X w‖² + α ‖w‖₁ with n = D: α = λ / D."""
  codes = []
  for row in np.asarray(x, np.float64):
    lasso = Lasso(alpha=lam / DIM, fit_intercept=False, tol=1e-12, max_iter=100_000)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      lasso.fit(np.asarray(dictionary, np.float64), row)
    codes.append(lasso.coef_)
  return np.stack(codes)


def test_ista_and_fista_converge_to_the_lasso_solution():
  x, dictionary = _problem()
  expected = _lasso_codes(x, dictionary, LAM)
  assert 0 < np.count_nonzero(expected) < expected.size  # a genuinely sparse solution
  solve = jax.jit(lambda x, d: (sparse_coding.ista(x, d, LAM, 3000),
                                sparse_coding.fista(x, d, LAM, 500)))
  ista_codes, fista_codes = solve(x, dictionary)
  chex.assert_shape(ista_codes, (4, NUM_ATOMS))
  chex.assert_trees_all_close(ista_codes, expected, atol=1e-4)
  chex.assert_trees_all_close(fista_codes, expected, atol=1e-4)
  # The same support: exact zeros where the Lasso has them.
  np.testing.assert_array_equal(np.asarray(ista_codes) == 0, np.abs(expected) < 1e-8)


def test_ista_objective_decreases_monotonically():
  x, dictionary = _problem(seed=1)
  step_size = 1.0 / sparse_coding.lipschitz_constant(dictionary)
  chex.assert_trees_all_close(
      step_size, 1.0 / np.linalg.norm(np.asarray(dictionary, np.float64), 2)**2, rtol=1e-5)

  @jax.jit
  def trajectory(x, d):
    def body(codes, _):
      codes = sparse_coding.ista_step(x, d, codes, LAM, step_size)
      return codes, sparse_coding.sparse_coding_loss(x, d, codes, LAM)
    codes = jnp.zeros((x.shape[0], d.shape[1]))
    _, losses = jax.lax.scan(body, codes, None, length=200)
    return jnp.concatenate([sparse_coding.sparse_coding_loss(x, d, codes, LAM)[None], losses])

  losses_TxB = np.asarray(trajectory(x, dictionary))
  increase = np.diff(losses_TxB, axis=0)
  assert np.all(increase <= 1e-5 * np.abs(losses_TxB[:-1])), increase.max()
  assert np.all(losses_TxB[-1] < 0.5 * losses_TxB[0])


def test_soft_threshold_is_the_proximal_operator():
  grid = np.linspace(-4, 4, 80_001)  # spacing 1e-4
  values = np.array([-3.1, -0.7, -0.2, 0.0, 0.15, 0.5, 2.4])
  for threshold in (0.0, 0.3, 1.0):
    objective = 0.5 * (grid[None, :] - values[:, None])**2 + threshold * np.abs(grid)[None, :]
    brute_force = grid[np.argmin(objective, axis=1)]
    result = sparse_coding.soft_threshold(values.astype(np.float32), threshold)
    chex.assert_trees_all_close(result, brute_force, atol=1.5e-4)


def test_dictionary_update_is_a_normalised_gradient_step():
  x, dictionary = _problem(seed=2, batch=8)
  codes = jax.jit(lambda x, d: sparse_coding.ista(x, d, LAM, 50))(x, dictionary)

  def reconstruction(d):
    return jnp.mean(0.5 * jnp.sum((x - codes @ d.T)**2, axis=-1))

  updated, gradient = jax.jit(lambda d: (
      sparse_coding.dictionary_update(x, codes, d, 0.5), jax.grad(reconstruction)(d)))(
          dictionary)
  unnormalised = dictionary - 0.5 * np.asarray(gradient)
  expected = unnormalised / np.linalg.norm(unnormalised, axis=0, keepdims=True)
  chex.assert_trees_all_close(updated, expected, atol=1e-6)

  @jax.jit
  def learn(d):  # a few rounds of alternating minimisation
    for _ in range(3):
      d = sparse_coding.dictionary_update(x, sparse_coding.ista(x, d, LAM, 20), d, 0.5)
    return d

  updated = learn(updated)
  chex.assert_trees_all_close(jnp.linalg.norm(updated, axis=0), jnp.ones(NUM_ATOMS), atol=1e-6)


def test_tied_autoencoder_encoder_is_one_ista_step_from_zero():
  x, dictionary = _problem(seed=3)
  step_size = 0.2

  @jax.jit
  def run(x, d):
    return (sparse_coding.tied_autoencoder_encode(x, d, LAM, step_size),
            sparse_coding.ista(x, d, LAM, 1, step_size=step_size),
            sparse_coding.tied_autoencoder_loss(x, d, LAM, step_size))

  codes, one_step, loss = run(x, dictionary)
  chex.assert_trees_all_close(codes, one_step, atol=1e-7)
  chex.assert_trees_all_close(
      codes, np.sign(step_size * x @ dictionary) * np.maximum(
          np.abs(step_size * x @ dictionary) - step_size * LAM, 0), atol=1e-6)
  expected_loss = (0.5 * np.sum((x - codes @ dictionary.T)**2, axis=-1)
                   + LAM * np.sum(np.abs(codes), axis=-1))
  chex.assert_trees_all_close(loss, expected_loss, rtol=1e-5)


def test_invalid_arguments_raise():
  x, dictionary = _problem()
  with pytest.raises(ValueError, match="atoms as columns"):
    sparse_coding.ista(x, dictionary.T, LAM, 5)
  with pytest.raises(ValueError, match="lam"):
    sparse_coding.sparse_coding_loss(x, dictionary, np.zeros((4, NUM_ATOMS)), -1.0)
  with pytest.raises(ValueError, match="codes must be"):
    sparse_coding.dictionary_update(x, np.zeros((4, 3)), dictionary, 0.1)

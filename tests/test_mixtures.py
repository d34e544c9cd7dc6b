"""Tests for pretrain_jax.objectives.mixtures: EM against scikit-learn, the E step against a
per-point scipy loop, and the noisy-OR against hand values and exact enumeration."""

import itertools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from pretrain_jax.objectives import mixtures


def _synthetic_data(seed=0, num_points=400):
  """Three overlapping 2-D Gaussian clusters."""
  rng = np.random.default_rng(seed)
  centers = np.array([[0.0, 0.0], [2.5, 1.0], [-1.0, 3.0]])
  scales = [np.array([[1.0, 0.4], [0.0, 0.6]]), np.eye(2) * 0.8,
            np.array([[0.5, 0.0], [0.3, 1.2]])]
  labels = rng.choice(3, size=num_points, p=[0.5, 0.3, 0.2])
  noise = rng.normal(size=(num_points, 2))
  return np.stack([centers[k] + scales[k] @ e for k, e in zip(labels, noise)])


def _initial_params(x, covariance_type, seed=1):
  """Means at random data points, the data covariance everywhere, uniform weights."""
  rng = np.random.default_rng(seed)
  means = x[rng.choice(len(x), size=3, replace=False)]
  covariance = np.cov(x.T)
  if covariance_type == "diag":
    covariances = np.tile(np.diag(covariance), (3, 1))
  else:
    covariances = np.tile(covariance, (3, 1, 1))
  return mixtures.GMMParams(np.full(3, 1 / 3), means, covariances)


def _sklearn_fit(x, init, covariance_type, num_iters, reg_covar):
  gm = GaussianMixture(
      n_components=3, covariance_type=covariance_type, weights_init=init.weights,
      means_init=init.means, precisions_init=1 / init.covariances if covariance_type == "diag"
      else np.linalg.inv(init.covariances), max_iter=num_iters, tol=0, reg_covar=reg_covar)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    gm.fit(x)
  return gm


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_matches_sklearn_and_never_decreases(covariance_type):
  x = _synthetic_data()
  init = _initial_params(x, covariance_type)
  num_iters, reg_covar = 30, 1e-3
  gm = _sklearn_fit(x, init, covariance_type, num_iters, reg_covar)
  em = jax.jit(mixtures.gmm_em, static_argnums=(2,))
  params, history = em(x.astype(np.float32), mixtures.GMMParams(
      *(np.asarray(a, np.float32) for a in init)), num_iters, reg_covar)
  chex.assert_shape(history, (num_iters + 1,))
  # EM never decreases the likelihood (float32 rounding aside) and makes real progress.
  assert np.all(np.diff(np.asarray(history)) > -1e-5), np.diff(history)
  assert history[-1] - history[0] > 0.1
  chex.assert_trees_all_close(params.weights, gm.weights_, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(params.means, gm.means_, rtol=1e-4, atol=1e-4)
  chex.assert_trees_all_close(params.covariances, gm.covariances_, rtol=1e-4, atol=1e-4)
  chex.assert_trees_all_close(history[:-1], np.array(gm.lower_bounds_), rtol=1e-5)
  chex.assert_trees_all_close(history[-1], gm.score(x), rtol=1e-5)


def test_em_in_float64_matches_sklearn_tightly():
  x = _synthetic_data(seed=2)
  init = _initial_params(x, "full", seed=3)
  gm = _sklearn_fit(x, init, "full", 20, 1e-6)
  with jax.enable_x64(True):
    params, history = jax.jit(mixtures.gmm_em, static_argnums=(2,))(x, init, 20, 1e-6)
    assert history.dtype == jnp.float64
    chex.assert_trees_all_close(tuple(params), (gm.weights_, gm.means_, gm.covariances_),
                                rtol=1e-9, atol=1e-10)
    chex.assert_trees_all_close(history[-1], gm.score(x), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_e_step_and_log_likelihood_against_scipy_loop(covariance_type):
  rng = np.random.default_rng(4)
  x = rng.normal(size=(20, 3)) * 2
  weights = np.array([0.2, 0.5, 0.3])
  means = rng.normal(size=(3, 3))
  if covariance_type == "full":
    factors = rng.normal(size=(3, 3, 3))
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(3)
  else:
    covariances = rng.uniform(0.3, 2.0, size=(3, 3))
  responsibilities = np.zeros((20, 3))
  log_likelihood = np.zeros(20)
  for n in range(20):
    joint = np.array([
        weights[k] * scipy.stats.multivariate_normal.pdf(
            x[n], means[k], covariances[k] if covariance_type == "full"
            else np.diag(covariances[k])) for k in range(3)])
    responsibilities[n] = joint / joint.sum()
    log_likelihood[n] = np.log(joint.sum())
  args = tuple(np.asarray(a, np.float32) for a in (x, weights, means, covariances))
  result, result_log_likelihood = jax.jit(
      lambda *a: (mixtures.gmm_e_step(*a), mixtures.gmm_log_likelihood(*a)))(*args)
  chex.assert_shape(result, (20, 3))
  chex.assert_trees_all_close(result, responsibilities, atol=1e-5)
  chex.assert_trees_all_close(result_log_likelihood, log_likelihood, rtol=1e-5)


def test_log_likelihood_is_stable_far_from_the_means():
  x = np.array([[1e3, -1e3]], np.float32)  # every component density underflows in float32
  result = jax.jit(mixtures.gmm_log_likelihood)(x, np.array([0.5, 0.5]), np.zeros((2, 2)),
                                                np.ones((2, 2)))
  expected = scipy.stats.multivariate_normal.logpdf(x[0], np.zeros(2), np.eye(2))
  chex.assert_trees_all_close(result, np.array([expected]), rtol=1e-6)


# A two-layer noisy-OR network: 3 parents (diseases), 3 children (symptoms).
PRIORS = np.array([0.3, 0.1, 0.6])
INHIBITIONS = np.array([[0.2, 1.0, 0.5],   # q_cj = P(parent j fails to turn child c on)
                        [0.7, 0.1, 1.0],
                        [0.9, 0.4, 0.3]])
LEAK = np.array([0.05, 0.0, 0.2])


def test_noisy_or_two_parents_by_hand():
  inhibitions, leak = np.array([[0.3, 0.6]]), np.array([0.1])
  parents = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
  # 1 − (1 − leak) Π_j q_j^{u_j}, written out.
  expected = np.array([[0.1], [1 - 0.9 * 0.3], [1 - 0.9 * 0.6], [1 - 0.9 * 0.3 * 0.6]])
  prob, log_likelihood = jax.jit(lambda c, u, q, l: (
      mixtures.noisy_or_prob(u, q, l), mixtures.noisy_or_log_likelihood(c, u, q, l)))(
          np.array([[1], [0], [1], [0]]), parents, inhibitions, leak)
  chex.assert_trees_all_close(prob, expected, atol=1e-6)
  chex.assert_trees_all_close(
      log_likelihood, np.log([0.1, 0.9 * 0.3, 1 - 0.9 * 0.6, 0.9 * 0.18]), rtol=1e-5)


def test_noisy_or_marginal_by_enumeration_matches_ancestral_samples():
  children = np.array(list(itertools.product((0, 1), repeat=3)), np.float32)
  log_marginal = jax.jit(mixtures.noisy_or_marginal_log_likelihood)(
      children, PRIORS, INHIBITIONS, LEAK)
  chex.assert_shape(log_marginal, (8,))
  marginal = np.exp(np.asarray(log_marginal, np.float64))
  assert abs(marginal.sum() - 1) < 1e-5
  num_samples = 200_000
  parents, sampled = jax.jit(mixtures.noisy_or_sample, static_argnums=(4,))(
      jax.random.key(0), PRIORS, INHIBITIONS, LEAK, num_samples)
  chex.assert_shape((parents, sampled), ((num_samples, 3), (num_samples, 3)))
  assert np.all(np.abs(np.asarray(parents).mean(0) - PRIORS)
                < 4 * np.sqrt(PRIORS * (1 - PRIORS) / num_samples))
  codes = np.asarray(sampled, np.int64) @ np.array([4, 2, 1])
  frequency = np.bincount(codes, minlength=8) / num_samples
  bound = 4 * np.sqrt(marginal * (1 - marginal) / num_samples) + 1e-6
  assert np.all(np.abs(frequency - marginal) < bound), (frequency, marginal)


def test_noisy_or_marginal_matches_a_direct_sum():
  children = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
  expected = np.zeros(2)
  for parents in itertools.product((0, 1), repeat=3):
    u = np.array(parents)
    prior = np.prod(np.where(u == 1, PRIORS, 1 - PRIORS))
    p_on = 1 - (1 - LEAK) * np.prod(INHIBITIONS**u[None, :], axis=1)
    expected += prior * np.prod(np.where(children == 1, p_on[None, :], 1 - p_on[None, :]),
                                axis=1)
  result = jax.jit(mixtures.noisy_or_marginal_log_likelihood)(
      children, PRIORS, INHIBITIONS, LEAK)
  chex.assert_trees_all_close(result, np.log(expected), rtol=1e-5)


def test_invalid_arguments_raise():
  with pytest.raises(ValueError, match="covariances must be"):
    mixtures.gmm_log_likelihood(np.zeros((4, 2)), np.ones(3) / 3, np.zeros((3, 2)),
                                np.ones((3, 3)))
  with pytest.raises(ValueError, match="covariance_type"):
    mixtures.gmm_m_step(np.zeros((4, 2)), np.ones((4, 3)) / 3, covariance_type="spherical")
  with pytest.raises(ValueError, match="inhibitions"):
    mixtures.noisy_or_prob(np.zeros((2, 3)), INHIBITIONS, LEAK[:2])
  with pytest.raises(ValueError, match="sampling"):
    mixtures.noisy_or_marginal_log_likelihood(np.zeros(1), np.full(21, 0.5),
                                              np.ones((1, 21)), np.zeros(1))

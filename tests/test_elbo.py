"""Tests for pretrain_jax.objectives.elbo against closed forms, quadrature and scipy."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from pretrain_jax.objectives import elbo


# Linear-Gaussian model, per dimension: z ~ N(0, 1), x | z ~ N(a z + b, s²).
# Then p(x) = N(b, a² + s²) and p(z | x) = N(a (x − b) / (a² + s²), s² / (a² + s²)).
A = np.array([1.5, -0.7, 0.3])
B = np.array([0.2, 1.0, -0.5])
S2 = np.array([0.5, 1.0, 0.2])
X = np.array([1.1, -0.4, 0.3])
LOG_PX = float(np.sum(scipy.stats.norm.logpdf(X, B, np.sqrt(A**2 + S2))))
POSTERIOR_MEAN = A * (X - B) / (A**2 + S2)
POSTERIOR_VAR = S2 / (A**2 + S2)


def _decoder_mean(z):
  return jnp.broadcast_to(A, z.shape) * z + jnp.broadcast_to(B, z.shape)


def _log_joint_minus_log_q(z, mean_q, log_var_q):
  """Log importance weight log p(x, z) − log q(z), z [..., Z], via the library densities."""
  zeros = jnp.zeros_like(z)
  log_likelihood = elbo.gaussian_log_likelihood(X.astype(np.float32), _decoder_mean(z),
                                                np.log(S2))
  log_prior = elbo.gaussian_log_likelihood(z, zeros, zeros)
  log_q = elbo.gaussian_log_likelihood(z, mean_q, log_var_q)
  return log_likelihood + log_prior - log_q


def _kl_between_diagonal_gaussians(mean_q, var_q, mean_p, var_p):
  return 0.5 * np.sum(
      np.log(var_p / var_q) + (var_q + (mean_q - mean_p)**2) / var_p - 1.0)


class GaussianTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_kl_matches_monte_carlo(self):
    rng = np.random.default_rng(0)
    mean, log_var = np.array([0.5, -1.0, 2.0]), np.array([0.3, -1.2, 0.8])
    kl = self.variant(elbo.gaussian_kl)(mean.astype(np.float32), log_var.astype(np.float32))
    chex.assert_shape(kl, ())
    z = mean + np.exp(0.5 * log_var) * rng.normal(size=(200_000, 3))
    log_ratio = np.sum(scipy.stats.norm.logpdf(z, mean, np.exp(0.5 * log_var))
                       - scipy.stats.norm.logpdf(z), axis=-1)
    standard_error = log_ratio.std() / np.sqrt(len(z))
    assert abs(float(kl) - log_ratio.mean()) < 4 * standard_error

  def test_kl_matches_quadrature_in_one_dimension(self):
    for mean, log_var in [(0.0, 0.0), (0.7, -0.5), (-2.0, 1.3)]:
      q = scipy.stats.norm(mean, np.exp(0.5 * log_var))
      integrand = lambda z: q.pdf(z) * (q.logpdf(z) - scipy.stats.norm.logpdf(z))
      expected, _ = scipy.integrate.quad(integrand, -30, 30, epsabs=1e-12)
      kl = elbo.gaussian_kl(jnp.array([mean]), jnp.array([log_var]))
      chex.assert_trees_all_close(kl, expected, rtol=1e-5, atol=1e-7)

  def test_kl_gradient_and_batching(self):
    rng = np.random.default_rng(1)
    mean, log_var = rng.normal(size=(2, 4, 3)).astype(np.float32)
    grad_mean, grad_log_var = jax.grad(
        lambda m, v: jnp.sum(elbo.gaussian_kl(m, v)), argnums=(0, 1))(mean, log_var)
    chex.assert_trees_all_close(grad_mean, mean, rtol=1e-6)
    chex.assert_trees_all_close(grad_log_var, 0.5 * np.expm1(log_var), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(
        jax.vmap(elbo.gaussian_kl)(mean, log_var), elbo.gaussian_kl(mean, log_var))

  @chex.variants(with_jit=True, without_jit=True)
  def test_log_likelihood_matches_scipy(self):
    rng = np.random.default_rng(2)
    x, mean = rng.normal(size=(2, 5, 4))
    log_var = rng.normal(size=(5, 4))
    expected = np.sum(scipy.stats.norm.logpdf(x, mean, np.exp(0.5 * log_var)), axis=-1)
    result = self.variant(elbo.gaussian_log_likelihood)(x, mean, log_var)
    chex.assert_shape(result, (5,))
    chex.assert_trees_all_close(result, expected, rtol=1e-5)
    # A mean [D] and a scalar log-variance broadcast explicitly against x [..., D].
    shared = elbo.gaussian_log_likelihood(x, mean[0], 0.3)
    expected = np.sum(scipy.stats.norm.logpdf(x, mean[0], np.exp(0.15)), axis=-1)
    chex.assert_trees_all_close(shared, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_reparameterize_samples_the_gaussian(self):
    mean, log_var = jnp.array([1.0, -2.0]), jnp.array([0.5, -1.0])
    z = self.variant(elbo.reparameterize)(
        jax.random.key(0), jnp.broadcast_to(mean, (50_000, 2)),
        jnp.broadcast_to(log_var, (50_000, 2)))
    chex.assert_shape(z, (50_000, 2))
    variance = np.exp(np.asarray(log_var))
    assert np.all(np.abs(z.mean(0) - mean) < 4 * np.sqrt(variance / 50_000))
    # Var of the sample variance is 2σ⁴ / n for a Gaussian.
    assert np.all(np.abs(z.var(0) - variance) < 4 * np.sqrt(2 * variance**2 / 50_000))

  def test_reparameterize_gradient_is_the_path(self):
    mean, log_var = jnp.array([0.3, -0.4]), jnp.array([0.2, 0.9])
    key = jax.random.key(1)
    z = elbo.reparameterize(key, mean, log_var)
    jacobian_mean, jacobian_log_var = jax.jacobian(
        elbo.reparameterize, argnums=(1, 2))(key, mean, log_var)
    chex.assert_trees_all_close(jacobian_mean, jnp.eye(2))
    chex.assert_trees_all_close(jacobian_log_var, jnp.diag(0.5 * (z - mean)), rtol=1e-6)


class BernoulliTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_direct_formula(self):
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(3, 6))  # non-binary targets in [0, 1]
    x[0] = rng.integers(0, 2, size=6)
    logits = rng.normal(scale=4.0, size=(3, 6))
    p = scipy.special.expit(logits)
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    result = self.variant(elbo.bernoulli_log_likelihood)(x, logits)
    chex.assert_trees_all_close(result, expected, rtol=1e-5)

  def test_huge_logits(self):
    x = jnp.array([[1.0, 0.0, 1.0, 0.0]])
    logits = jnp.array([[1e4, -1e4, -1e4, 1e4]])
    # Correct confident predictions cost 0; confidently wrong ones cost |logit| each.
    chex.assert_trees_all_close(
        elbo.bernoulli_log_likelihood(x, logits), jnp.array([-2e4]), rtol=1e-7)
    grads = jax.grad(lambda l: jnp.sum(elbo.bernoulli_log_likelihood(x, l)))(logits)
    chex.assert_trees_all_close(grads, x - jax.nn.sigmoid(logits))  # d/dl = x − σ(l)


class LinearGaussianModelTest(chex.TestCase):

  def test_importance_weight_is_constant_under_true_posterior(self):
    @jax.jit
    def log_weights_fn(key):
      mean, log_var = POSTERIOR_MEAN.astype(np.float32), np.log(POSTERIOR_VAR).astype(np.float32)
      z = elbo.reparameterize(key, jnp.broadcast_to(mean, (1000, 3)),
                              jnp.broadcast_to(log_var, (1000, 3)))
      return _log_joint_minus_log_q(z, mean, log_var)

    log_weights = log_weights_fn(jax.random.key(2))
    chex.assert_trees_all_close(log_weights, jnp.full((1000,), LOG_PX), atol=2e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_elbo_equals_log_px_minus_kl_to_posterior(self):
    num_samples = 20_000
    candidates = [
        (POSTERIOR_MEAN, POSTERIOR_VAR),  # the true posterior: ELBO = log p(x)
        (POSTERIOR_MEAN + 0.4, POSTERIOR_VAR),
        (POSTERIOR_MEAN, 3.0 * POSTERIOR_VAR),
        (np.zeros(3), np.ones(3)),  # the prior
    ]

    def elbo_samples(key, mean_q, log_var_q):
      z = elbo.reparameterize(key, jnp.broadcast_to(mean_q, (num_samples, 3)),
                              jnp.broadcast_to(log_var_q, (num_samples, 3)))
      log_likelihood = elbo.gaussian_log_likelihood(
          X.astype(np.float32), _decoder_mean(z), np.log(S2))
      kl = jnp.broadcast_to(elbo.gaussian_kl(mean_q, log_var_q), (num_samples,))
      return elbo.elbo(log_likelihood, kl)

    elbo_fn = self.variant(elbo_samples)
    for i, (mean_q, var_q) in enumerate(candidates):
      samples = np.asarray(elbo_fn(
          jax.random.key(i), mean_q.astype(np.float32), np.log(var_q).astype(np.float32)))
      estimate, standard_error = samples.mean(), samples.std() / np.sqrt(num_samples)
      gap = _kl_between_diagonal_gaussians(mean_q, var_q, POSTERIOR_MEAN, POSTERIOR_VAR)
      assert abs(estimate - (LOG_PX - gap)) < 4 * standard_error + 1e-4
      if i > 0:
        assert LOG_PX - estimate > 4 * standard_error  # strictly below log p(x)

  def test_iwae_bound_rises_with_k_towards_log_px(self):
    mean_q = (POSTERIOR_MEAN + 0.3).astype(np.float32)
    log_var_q = np.log(2.0 * POSTERIOR_VAR).astype(np.float32)
    gap_elbo = _kl_between_diagonal_gaussians(
        mean_q, np.exp(log_var_q), POSTERIOR_MEAN, POSTERIOR_VAR)

    @functools.partial(jax.jit, static_argnums=(1, 2))
    def log_weights(key, num_k, num_repeats):  # [K, repeats]
      shape = (num_k, num_repeats, 3)
      z = elbo.reparameterize(key, jnp.broadcast_to(mean_q, shape),
                              jnp.broadcast_to(log_var_q, shape))
      return _log_joint_minus_log_q(z, mean_q, log_var_q)

    # E[L_K] rises with K (Burda et al. Theorem 1). Nested samples (the first K of one
    # pool) make the differences far larger than their MC error.
    num_repeats = 4000
    pool = log_weights(jax.random.key(3), 16, num_repeats)
    bounds = [np.asarray(jax.jit(elbo.iwae_bound)(pool[:k])) for k in (1, 2, 4, 8, 16)]
    for smaller, larger in zip(bounds[:-1], bounds[1:]):
      difference = larger - smaller
      assert difference.mean() > 3 * difference.std() / np.sqrt(num_repeats)
    # L_1 is the ELBO, log p(x) − KL(q ‖ posterior).
    assert abs(bounds[0].mean() - (LOG_PX - gap_elbo)) < 4 * bounds[0].std() / np.sqrt(
        num_repeats)
    # At K = 1024 the bound is within 2% of the ELBO's gap, and still not above log p(x).
    large = np.asarray(elbo.iwae_bound(log_weights(jax.random.key(4), 1024, 200)))
    assert large.mean() <= LOG_PX + 4 * large.std() / np.sqrt(200)
    assert LOG_PX - large.mean() < 0.02 * gap_elbo, (LOG_PX, large.mean())


class IWAEBoundTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_scipy_logsumexp(self):
    log_weights = np.random.default_rng(4).normal(scale=50.0, size=(7, 2, 3))
    result = self.variant(elbo.iwae_bound)(log_weights.astype(np.float32))
    expected = scipy.special.logsumexp(log_weights, axis=0) - np.log(7)
    chex.assert_shape(result, (2, 3))
    chex.assert_trees_all_close(result, expected, rtol=1e-5)

  def test_closed_forms(self):
    # K = 1 is the ELBO sample itself; K equal weights c give c.
    chex.assert_trees_all_close(elbo.iwae_bound(jnp.array([[-3.0, 4.0]])), jnp.array([-3.0, 4.0]))
    chex.assert_trees_all_close(elbo.iwae_bound(jnp.full((5, 2), -1e4)), jnp.full((2,), -1e4))


class GradientEstimatorTest(chex.TestCase):
  """f(z) = Σ (z − c)²: E_q f = Σ ((μ − c)² + σ²), so ∇_μ = 2(μ − c), ∇_{log σ²} = σ²."""

  C = np.array([0.5, -1.0, 0.0], np.float32)
  MEAN = np.array([0.2, 0.4, -0.3], np.float32)
  LOG_VAR = np.array([-0.5, 0.0, 0.4], np.float32)

  def _f(self, z):
    return jnp.sum((z - self.C)**2)

  @chex.variants(with_jit=True, without_jit=True)
  def test_unbiased_and_reparameterization_has_lower_variance(self):
    num_samples = 20_000
    analytic = (2 * (self.MEAN - self.C), np.exp(self.LOG_VAR))
    variances = {}
    for name, estimator in [("score", elbo.score_function_gradient_samples),
                            ("reparam", elbo.reparameterization_gradient_samples)]:
      run = self.variant(lambda key, m, v: estimator(key, self._f, m, v, num_samples))
      samples = run(jax.random.key(5), self.MEAN, self.LOG_VAR)
      chex.assert_shape(samples, [(num_samples, 3), (num_samples, 3)])
      for sample, expected in zip(samples, analytic):
        standard_error = sample.std(0) / np.sqrt(num_samples)
        assert np.all(np.abs(sample.mean(0) - expected) < 4 * standard_error)
      variances[name] = np.stack([s.var(0) for s in samples])
    assert np.all(variances["reparam"] < variances["score"]), variances

  def test_averaged_estimators_match_closed_form_gradient(self):
    """Oracle: the closed-form gradient (class docstring) and, for the pathwise estimator,
    the closed-form variance of its S-sample average.

    Each estimator is run with R independent keys at S samples; the R averages are i.i.d.
    with mean the analytic gradient, so they must agree within 4 standard errors of
    their spread. For f = Σ (z − c)² the pathwise ∇_μ average is 2(μ − c) + 2σ ε̄, exactly
    N(2(μ − c), 4σ²/S): its spread over R repeats must match 4σ²/S within 4 standard
    errors of a Gaussian sample variance (relative SE √(2/(R − 1)) ≈ 3%), which fails if
    the estimator averaged fewer than S samples, or summed instead of averaging.
    """
    num_samples, num_repeats = 64, 2000
    keys = jax.random.split(jax.random.key(6), num_repeats)
    variance = np.exp(self.LOG_VAR.astype(np.float64))
    analytic = (2 * (self.MEAN - self.C).astype(np.float64), variance)
    for estimator in (elbo.score_function_gradient, elbo.reparameterization_gradient):
      grads = jax.jit(jax.vmap(
          lambda key: estimator(key, self._f, self.MEAN, self.LOG_VAR, num_samples)))(keys)
      chex.assert_shape(grads, [(num_repeats, 3), (num_repeats, 3)])
      for grad, expected in zip(grads, analytic):
        grad = np.asarray(grad, np.float64)
        standard_error = grad.std(0) / np.sqrt(num_repeats)
        assert np.all(np.abs(grad.mean(0) - expected) < 4 * standard_error), (
            estimator.__name__, grad.mean(0), expected, standard_error)
      if estimator is elbo.reparameterization_gradient:
        expected_variance = 4 * variance / num_samples
        relative_error = np.asarray(grads[0], np.float64).var(0, ddof=1) / expected_variance - 1
        assert np.all(np.abs(relative_error) < 4 * np.sqrt(2 / (num_repeats - 1))), (
            relative_error)

  def test_score_function_handles_non_differentiable_f(self):
    # E Σ 1[z > 0] = Σ Φ(μ/σ): ∇_μ = φ(μ/σ)/σ, where the pathwise gradient is 0.
    num_samples = 40_000
    sigma = np.exp(0.5 * self.LOG_VAR)
    samples, _ = jax.jit(lambda key: elbo.score_function_gradient_samples(
        key, lambda z: jnp.sum(z > 0).astype(jnp.float32), self.MEAN, self.LOG_VAR,
        num_samples))(jax.random.key(7))
    expected = scipy.stats.norm.pdf(self.MEAN / sigma) / sigma
    standard_error = samples.std(0) / np.sqrt(num_samples)
    assert np.all(np.abs(samples.mean(0) - expected) < 4 * standard_error)


def test_invalid_shapes_raise():
  with pytest.raises(ValueError, match="same shape"):
    elbo.gaussian_kl(jnp.zeros(3), jnp.zeros(4))
  with pytest.raises(ValueError, match="average samples"):
    elbo.elbo(jnp.zeros((5, 2)), jnp.zeros(2))
  with pytest.raises(ValueError, match="broadcast"):
    elbo.gaussian_log_likelihood(jnp.zeros((2, 3)), jnp.zeros(4), 0.0)
  with pytest.raises(ValueError, match="vmap"):
    elbo.reparameterization_gradient(jax.random.key(0), jnp.sum, jnp.zeros((2, 3)),
                                     jnp.zeros((2, 3)), 4)

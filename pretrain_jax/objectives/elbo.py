"""Variational bounds for latent-variable models: ELBO, IWAE, and gradient estimators.

q(z|x) = N(mean, diag exp(log_var)) throughout; the prior is N(0, I). Everything is in
nats; sums run over the last axis (the latent or data dimension, Z or D), so any leading
axes [...] are batch axes.

Sources:
  Kingma & Welling (2014), "Auto-Encoding Variational Bayes": eq. 3 (ELBO = E_q[log p(x|z)]
    − KL), Section 2.4 (reparameterization z = μ + σ ⊙ ε), Appendix B (Gaussian KL).
  Burda, Grosse, Salakhutdinov (2016), "Importance Weighted Autoencoders", eq. 8.
  Williams (1992), "Simple statistical gradient-following algorithms ..." (REINFORCE).
"""

import math

import jax
import jax.numpy as jnp


def _at_least_float32(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_same_shape(name, **arrays):
  shapes = {key: jnp.shape(value) for key, value in arrays.items()}
  if len(set(shapes.values())) != 1:
    raise ValueError(f"{name}: arguments must have the same shape; got {shapes}.")


def reparameterize(key, mean, log_var):
  """Samples z ~ N(mean, diag exp(log_var)) as z = μ + σ ⊙ ε, ε ~ N(0, I), σ = exp(½ log_var).

  Differentiable in mean and log_var (Kingma & Welling 2014, Section 2.4).

  Args:
    key: PRNG key.
    mean: float array [..., Z], μ.
    log_var: float array [..., Z], log σ² (same shape as mean).

  Returns:
    float array [..., Z], one sample per row, dtype of mean.

  Raises:
    ValueError: if mean and log_var differ in shape.
  """
  _check_same_shape("reparameterize", mean=mean, log_var=log_var)
  mean, log_var = jnp.asarray(mean), jnp.asarray(log_var)
  epsilon = jax.random.normal(key, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * log_var) * epsilon


def gaussian_kl(mean, log_var):
  """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_z (μ² + σ² − 1 − log σ²), summed over the last axis.

  Kingma & Welling (2014), Appendix B (their −D_KL).

  Args:
    mean: float array [..., Z], μ.
    log_var: float array [..., Z], log σ² (same shape as mean).

  Returns:
    float array [...], KL in nats, ≥ 0.

  Raises:
    ValueError: if mean and log_var differ in shape.
  """
  _check_same_shape("gaussian_kl", mean=mean, log_var=log_var)
  mean, log_var = jnp.asarray(mean), jnp.asarray(log_var)
  return 0.5 * jnp.sum(mean**2 + jnp.exp(log_var) - 1.0 - log_var, axis=-1)


def gaussian_log_likelihood(x, mean, log_var):
  """log N(x; μ, diag σ²) = −½ Σ_d (log 2π + log σ² + (x − μ)² / σ²), summed over the last axis.

  Args:
    x: float array [..., D], observations.
    mean: float array [..., D], μ; broadcast explicitly against x.
    log_var: float array [..., D], log σ²; broadcast explicitly against x (a scalar
      gives one shared variance).

  Returns:
    float array [...], log density in nats.

  Raises:
    ValueError: if the three shapes do not broadcast together.
  """
  try:
    x, mean, log_var = jnp.broadcast_arrays(x, mean, log_var)
  except ValueError as error:
    raise ValueError(
        f"gaussian_log_likelihood: x {jnp.shape(x)}, mean {jnp.shape(mean)} and log_var "
        f"{jnp.shape(log_var)} must broadcast together.") from error
  squared_error = (x - mean)**2 * jnp.exp(-log_var)
  return -0.5 * jnp.sum(math.log(2 * math.pi) + log_var + squared_error, axis=-1)


def bernoulli_log_likelihood(x, logits):
  """Σ_d [x log σ(l) + (1 − x) log(1 − σ(l))], summed over the last axis.

  Written with log σ(l) = −softplus(−l) and log(1 − σ(l)) = −softplus(l), stable for any
  logit. x may be non-binary in [0, 1] (then it is minus the binary cross-entropy, as
  used for grey-scale images; not a normalised density).

  Args:
    x: float array [..., D], targets in [0, 1].
    logits: float array [..., D], l = logit of p(x_d = 1 | z); broadcast against x.

  Returns:
    float array [...], log-likelihood in nats, ≤ 0 for x in {0, 1}.

  Raises:
    ValueError: if x and logits do not broadcast together.
  """
  try:
    x, logits = jnp.broadcast_arrays(x, logits)
  except ValueError as error:
    raise ValueError(
        f"bernoulli_log_likelihood: x {jnp.shape(x)} and logits {jnp.shape(logits)} "
        "must broadcast together.") from error
  log_terms = x * jax.nn.softplus(-logits) + (1.0 - x) * jax.nn.softplus(logits)
  return -jnp.sum(log_terms, axis=-1)


def elbo(log_likelihood, kl):
  """Evidence lower bound: ELBO = log p(x|z) − KL(q(z|x) ‖ p(z)) ≤ log p(x).

  Kingma & Welling (2014), eq. 3 (one-sample estimate when log_likelihood is evaluated
  at a single z ~ q).

  Args:
    log_likelihood: float array [...], log p(x|z) in nats (a sample or an average over z).
    kl: float array [...], KL(q ‖ p) in nats, e.g. from `gaussian_kl`.

  Returns:
    float array [...], the ELBO in nats.

  Raises:
    ValueError: if the shapes differ (average samples of log p(x|z) first).
  """
  if jnp.shape(log_likelihood) != jnp.shape(kl):
    raise ValueError(
        f"elbo: log_likelihood {jnp.shape(log_likelihood)} and kl {jnp.shape(kl)} must have "
        "the same shape; average samples of log p(x|z) over their axis first.")
  return jnp.asarray(log_likelihood) - jnp.asarray(kl)


def iwae_bound(log_weights):
  """Importance-weighted bound L_K = log (1/K) Σ_k exp(w_k) ≤ log p(x).

  w_k = log p(x, z_k) − log q(z_k|x) for z_k ~ q. L_1 is the ELBO; E[L_K] increases with K
  and tends to log p(x) (Burda et al. 2016, eq. 8 and Theorem 1). Log-sum-exp in float32.

  Args:
    log_weights: float array [K, ...], log importance weights in nats.

  Returns:
    float32 (or wider) array [...], the bound in nats.

  Raises:
    ValueError: if log_weights is a scalar or K = 0.
  """
  log_weights = _at_least_float32(log_weights)
  if log_weights.ndim == 0 or log_weights.shape[0] == 0:
    raise ValueError(
        f"iwae_bound: log_weights must be [K, ...] with K ≥ 1; got shape {log_weights.shape}.")
  num_samples = log_weights.shape[0]
  return jax.nn.logsumexp(log_weights, axis=0) - math.log(num_samples)


def _sample_epsilon(key, mean, log_var, num_samples):
  """Checks the inputs; returns mean, log_var as arrays and ε ~ N(0, I) of shape [S, Z]."""
  _check_same_shape("gradient estimator", mean=mean, log_var=log_var)
  if jnp.ndim(mean) != 1:
    raise ValueError(
        f"gradient estimators take mean and log_var of shape [Z]; got {jnp.shape(mean)}. "
        "vmap over batch axes.")
  if num_samples < 1:
    raise ValueError(f"gradient estimators need num_samples ≥ 1, got {num_samples}.")
  mean, log_var = jnp.asarray(mean), jnp.asarray(log_var)
  epsilon_SxZ = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
  return mean, log_var, epsilon_SxZ


def score_function_gradient_samples(key, f, mean, log_var, num_samples):
  """Per-sample REINFORCE gradients f(z_s) ∇_{μ, log σ²} log q(z_s), z_s ~ q.

  Likelihood-ratio identity ∇ E_q[f] = E_q[f(z) ∇ log q(z)] (Williams 1992), no baseline.
  For q = N(μ, diag σ²): ∇_μ log q = (z − μ)/σ² and ∇_{log σ²} log q = ½((z − μ)²/σ² − 1).

  Args:
    key: PRNG key.
    f: function [Z] -> scalar; only its values are used (need not be differentiable).
    mean: float array [Z], μ.
    log_var: float array [Z], log σ².
    num_samples: int S, number of samples.

  Returns:
    (grad_mean, grad_log_var), two float arrays [S, Z], one unbiased estimate per row.

  Raises:
    ValueError: if mean and log_var are not both [Z], or num_samples < 1.
  """
  mean, log_var, epsilon_SxZ = _sample_epsilon(key, mean, log_var, num_samples)
  z_SxZ = mean[None, :] + jnp.exp(0.5 * log_var)[None, :] * epsilon_SxZ
  z_SxZ = jax.lax.stop_gradient(z_SxZ)
  f_S = jax.vmap(f)(z_SxZ)

  def log_q(mean, log_var, z):
    return gaussian_log_likelihood(z, mean, log_var)

  score_fn = jax.vmap(jax.grad(log_q, argnums=(0, 1)), in_axes=(None, None, 0))
  score_mean_SxZ, score_log_var_SxZ = score_fn(mean, log_var, z_SxZ)
  return f_S[:, None] * score_mean_SxZ, f_S[:, None] * score_log_var_SxZ


def reparameterization_gradient_samples(key, f, mean, log_var, num_samples):
  """Per-sample pathwise gradients ∇_{μ, log σ²} f(μ + σ ⊙ ε_s), ε_s ~ N(0, I).

  Kingma & Welling (2014), Section 2.4: ∇ E_q[f(z)] = E_ε[∇ f(μ + σ ⊙ ε)].

  Args:
    key: PRNG key (the same key gives the same ε as `score_function_gradient_samples`).
    f: differentiable function [Z] -> scalar.
    mean: float array [Z], μ.
    log_var: float array [Z], log σ².
    num_samples: int S, number of samples.

  Returns:
    (grad_mean, grad_log_var), two float arrays [S, Z], one unbiased estimate per row.

  Raises:
    ValueError: if mean and log_var are not both [Z], or num_samples < 1.
  """
  mean, log_var, epsilon_SxZ = _sample_epsilon(key, mean, log_var, num_samples)

  def f_of_parameters(mean, log_var, epsilon):
    return f(mean + jnp.exp(0.5 * log_var) * epsilon)

  grad_fn = jax.vmap(jax.grad(f_of_parameters, argnums=(0, 1)), in_axes=(None, None, 0))
  return grad_fn(mean, log_var, epsilon_SxZ)


def score_function_gradient(key, f, mean, log_var, num_samples):
  """REINFORCE estimate of ∇_{(μ, log σ²)} E_{z~N(μ, diag σ²)}[f(z)]: mean over S samples
  of f(z) ∇ log q(z) (see `score_function_gradient_samples`).

  Args:
    key: PRNG key.
    f: function [Z] -> scalar (vmapped internally over samples).
    mean: float array [Z], μ.
    log_var: float array [Z], log σ².
    num_samples: int S ≥ 1.

  Returns:
    (grad_mean, grad_log_var), two float arrays [Z].

  Raises:
    ValueError: if mean and log_var are not both [Z], or num_samples < 1.
  """
  grads = score_function_gradient_samples(key, f, mean, log_var, num_samples)
  return tuple(jnp.mean(g, axis=0) for g in grads)


def reparameterization_gradient(key, f, mean, log_var, num_samples):
  """Pathwise estimate of ∇_{(μ, log σ²)} E_{z~N(μ, diag σ²)}[f(z)]: mean over S samples
  of ∇ f(μ + σ ⊙ ε) (see `reparameterization_gradient_samples`).

  Args:
    key: PRNG key.
    f: differentiable function [Z] -> scalar (vmapped internally over samples).
    mean: float array [Z], μ.
    log_var: float array [Z], log σ².
    num_samples: int S ≥ 1.

  Returns:
    (grad_mean, grad_log_var), two float arrays [Z].

  Raises:
    ValueError: if mean and log_var are not both [Z], or num_samples < 1.
  """
  grads = reparameterization_gradient_samples(key, f, mean, log_var, num_samples)
  return tuple(jnp.mean(g, axis=0) for g in grads)

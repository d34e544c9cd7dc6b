"""Latent-variable models with exact posteriors: Gaussian mixtures fitted by EM, noisy-OR.

Gaussian mixture: p(x) = Σ_k π_k N(x; μ_k, Σ_k), with the component k as the latent
variable. EM alternates the E step (the posterior of the component, the responsibilities
r_nk = p(k | x_n)) and the M step (closed-form weighted maximum likelihood), and never
decreases log p(x) (Dempster, Laird, Rubin 1977, Theorem 1; Bishop 2006, Sec. 9.2.2).
Covariances are full [K, D, D] or diagonal [K, D]; the layout is read from their shape.

Noisy-OR: binary parents u_j (independent, P(u_j = 1) = prior_j) and binary children y_c
with P(y_c = 1 | u) = 1 − (1 − leak_c) Π_j q_cj^{u_j}, where q_cj = 1 − p_cj is the
*inhibition* probability that an active parent j fails to turn child c on and leak_c the
probability that the child is on with no active parent (Pearl 1988, Sec. 4.3.2; leak:
Henrion 1989). This is the Bayesian-network example of the slides (diseases -> symptoms,
as in QMR-DT).

Everything is in nats, computed in float32, or float64 when jax_enable_x64 is on and the
inputs are float64. Log-sum-exp for the mixture; log1p/expm1 for the noisy-OR.
Shape letters: N points, D data dim, K components, J parents, C children, S samples.

Sources:
  Dempster, Laird, Rubin (1977), "Maximum likelihood from incomplete data via the EM
    algorithm", JRSS B.
  Bishop (2006), "Pattern Recognition and Machine Learning", Sec. 9.2.2 (EM for Gaussian
    mixtures, eq. 9.23-9.28).
  Pearl (1988), "Probabilistic Reasoning in Intelligent Systems", Sec. 4.3.2 (noisy-OR).
  Henrion (1989), "Some practical issues in constructing belief networks" (leaky noisy-OR).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

COVARIANCE_TYPES = ("full", "diag")

# Enumerating 2^J parent configurations is meant for small networks only.
_MAX_ENUMERATED_PARENTS = 20


class GMMParams(NamedTuple):
  """Parameters of a Gaussian mixture (a pytree).

  Attributes:
    weights: float [K], mixing proportions π_k ≥ 0 summing to 1.
    means: float [K, D], μ_k.
    covariances: float [K, D, D] (full, symmetric positive definite) or [K, D] (diagonal
      variances).
  """

  weights: jax.Array
  means: jax.Array
  covariances: jax.Array


def _float_dtype(*arrays):
  """float32, or float64 when x64 is on and an input is float64."""
  dtype = jnp.result_type(*arrays)
  return jnp.promote_types(dtype, jnp.float32)


def _check_gmm(name, x, weights, means, covariances):
  x, weights, means, covariances = (jnp.asarray(a) for a in (x, weights, means, covariances))
  if x.ndim != 2 or means.ndim != 2 or weights.ndim != 1:
    raise ValueError(f"{name}: expected x [N, D], weights [K], means [K, D]; got "
                     f"{x.shape}, {weights.shape}, {means.shape}.")
  num_components, dim = means.shape
  if x.shape[1] != dim or weights.shape[0] != num_components:
    raise ValueError(f"{name}: x {x.shape}, weights {weights.shape} and means {means.shape} "
                     "disagree on D or K.")
  if covariances.shape not in ((num_components, dim, dim), (num_components, dim)):
    raise ValueError(f"{name}: covariances must be [K, D, D] (full) or [K, D] (diag) = "
                     f"{(num_components, dim, dim)} or {(num_components, dim)}; got "
                     f"{covariances.shape}.")
  dtype = _float_dtype(x, weights, means, covariances)
  return tuple(a.astype(dtype) for a in (x, weights, means, covariances))


def _component_log_densities(x_NxD, means_KxD, covariances):
  """log N(x_n; μ_k, Σ_k): float [N, K] (Cholesky solve for full covariances)."""
  dim = x_NxD.shape[1]
  diff_NxKxD = x_NxD[:, None, :] - means_KxD[None, :, :]
  if covariances.ndim == 2:  # diagonal variances [K, D]
    mahalanobis_NxK = jnp.sum(diff_NxKxD**2 / covariances[None, :, :], axis=-1)
    log_det_K = jnp.sum(jnp.log(covariances), axis=-1)
  else:
    cholesky_KxDxD = jnp.linalg.cholesky(covariances)
    # Solve L_k y = (x − μ_k) for every k; ‖y‖² = (x − μ)ᵀ Σ⁻¹ (x − μ).
    solve = jax.vmap(lambda chol, diff: jax.scipy.linalg.solve_triangular(
        chol, diff.T, lower=True), in_axes=(0, 1))
    y_KxDxN = solve(cholesky_KxDxD, diff_NxKxD)
    mahalanobis_NxK = jnp.sum(y_KxDxN**2, axis=1).T
    log_det_K = 2.0 * jnp.sum(
        jnp.log(jnp.diagonal(cholesky_KxDxD, axis1=-2, axis2=-1)), axis=-1)
  return -0.5 * (dim * math.log(2 * math.pi) + log_det_K[None, :] + mahalanobis_NxK)


def _log_joint(x, weights, means, covariances):
  """log π_k + log N(x_n; μ_k, Σ_k): float [N, K]."""
  return jnp.log(weights)[None, :] + _component_log_densities(x, means, covariances)


def gmm_log_likelihood(x: jax.Array, weights: jax.Array, means: jax.Array,
                       covariances: jax.Array) -> jax.Array:
  """Per-point log-likelihood log Σ_k π_k N(x_n; μ_k, Σ_k), by log-sum-exp over k.

  Args:
    x: float [N, D].
    weights: float [K], π.
    means: float [K, D], μ.
    covariances: float [K, D, D] (full) or [K, D] (diagonal variances), Σ.

  Returns:
    float32 [N] nats (float64 under jax_enable_x64 with float64 inputs).

  Raises:
    ValueError: if the shapes disagree.
  """
  x, weights, means, covariances = _check_gmm(
      "gmm_log_likelihood", x, weights, means, covariances)
  return jax.nn.logsumexp(_log_joint(x, weights, means, covariances), axis=-1)


def gmm_e_step(x: jax.Array, weights: jax.Array, means: jax.Array,
               covariances: jax.Array) -> jax.Array:
  """E step: responsibilities r_nk = p(k | x_n) = π_k N(x_n; μ_k, Σ_k) / Σ_j π_j N(x_n; μ_j, Σ_j).

  Bishop (2006), eq. 9.23. Computed as exp(log joint − log-sum-exp).

  Args:
    x: float [N, D].
    weights: float [K].
    means: float [K, D].
    covariances: float [K, D, D] or [K, D].

  Returns:
    float32 [N, K], rows summing to 1 (float64 under x64 with float64 inputs).

  Raises:
    ValueError: if the shapes disagree.
  """
  x, weights, means, covariances = _check_gmm("gmm_e_step", x, weights, means, covariances)
  return jax.nn.softmax(_log_joint(x, weights, means, covariances), axis=-1)


def gmm_m_step(x: jax.Array, responsibilities: jax.Array, reg_covar: float = 1e-6,
               covariance_type: str = "full") -> GMMParams:
  """M step: the weighted maximum-likelihood parameters given responsibilities r [N, K].

  N_k = Σ_n r_nk (+ 10 ε of the dtype, as scikit-learn, so empty components give no 0/0),
  π_k = N_k / N, μ_k = Σ_n r_nk x_n / N_k,
  Σ_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / N_k + reg_covar · I   (full), or its diagonal
  (diag). Bishop (2006), eq. 9.24-9.26; reg_covar is scikit-learn's ridge on the diagonal.

  Args:
    x: float [N, D].
    responsibilities: float [N, K], rows summing to 1 (e.g. from ``gmm_e_step``).
    reg_covar: non-negative float added to every variance (may be traced).
    covariance_type: "full" ([K, D, D]) or "diag" ([K, D]).

  Returns:
    ``GMMParams`` (weights [K], means [K, D], covariances [K, D, D] or [K, D]).

  Raises:
    ValueError: if the shapes disagree, reg_covar < 0, or the covariance type is unknown.
  """
  if covariance_type not in COVARIANCE_TYPES:
    raise ValueError(f"gmm_m_step: covariance_type must be one of {COVARIANCE_TYPES}, got "
                     f"{covariance_type!r}.")
  if isinstance(reg_covar, (int, float)) and reg_covar < 0:
    raise ValueError(f"gmm_m_step: reg_covar must be >= 0, got {reg_covar}.")
  x, responsibilities = jnp.asarray(x), jnp.asarray(responsibilities)
  if x.ndim != 2 or responsibilities.ndim != 2 or x.shape[0] != responsibilities.shape[0]:
    raise ValueError(f"gmm_m_step: expected x [N, D] and responsibilities [N, K]; got "
                     f"{x.shape} and {responsibilities.shape}.")
  dtype = _float_dtype(x, responsibilities)
  x_NxD, r_NxK = x.astype(dtype), responsibilities.astype(dtype)
  num_points, dim = x_NxD.shape
  counts_K = jnp.sum(r_NxK, axis=0) + 10 * jnp.finfo(dtype).eps
  weights_K = counts_K / num_points
  means_KxD = (r_NxK.T @ x_NxD) / counts_K[:, None]
  diff_NxKxD = x_NxD[:, None, :] - means_KxD[None, :, :]
  if covariance_type == "diag":
    covariances = jnp.einsum("nk,nkd->kd", r_NxK, diff_NxKxD**2) / counts_K[:, None]
    covariances = covariances + reg_covar
  else:
    covariances = jnp.einsum("nk,nkd,nke->kde", r_NxK, diff_NxKxD, diff_NxKxD)
    covariances = covariances / counts_K[:, None, None]
    covariances = covariances + reg_covar * jnp.eye(dim, dtype=dtype)[None, :, :]
  return GMMParams(weights_K, means_KxD, covariances)


def gmm_em(x: jax.Array, init_params: GMMParams, num_iters: int,
           reg_covar: float = 1e-6) -> tuple[GMMParams, jax.Array]:
  """EM for a Gaussian mixture: num_iters rounds of E step + M step under ``lax.scan``.

  The covariance type (full or diag) is that of ``init_params.covariances``. The same
  iteration as scikit-learn's ``GaussianMixture.fit`` started from these parameters
  (``weights_init``, ``means_init``, ``precisions_init`` = inverse covariances) with
  ``max_iter=num_iters, tol=0``: history[:-1] is its ``lower_bounds_`` and history[-1] its
  ``score(x)``.

  Args:
    x: float [N, D].
    init_params: ``GMMParams``, the starting point.
    num_iters: number of EM rounds ≥ 0 (static).
    reg_covar: non-negative float added to every variance in the M step (may be traced).

  Returns:
    (params, log_likelihood_history): the ``GMMParams`` after num_iters rounds, and float
    [num_iters + 1], the mean per-point log-likelihood (nats) of the initial parameters and
    after each round; non-decreasing up to rounding (Dempster et al. 1977, Theorem 1).

  Raises:
    ValueError: if the shapes disagree, num_iters < 0 or reg_covar < 0.
  """
  if num_iters < 0:
    raise ValueError(f"gmm_em: num_iters must be >= 0, got {num_iters}.")
  if isinstance(reg_covar, (int, float)) and reg_covar < 0:
    raise ValueError(f"gmm_em: reg_covar must be >= 0, got {reg_covar}.")
  x, weights, means, covariances = _check_gmm("gmm_em", x, *init_params)
  covariance_type = "diag" if covariances.ndim == 2 else "full"

  def em_round(params, _):
    log_joint_NxK = _log_joint(x, *params)
    log_likelihood_N = jax.nn.logsumexp(log_joint_NxK, axis=-1)
    responsibilities_NxK = jnp.exp(log_joint_NxK - log_likelihood_N[:, None])
    new_params = gmm_m_step(x, responsibilities_NxK, reg_covar, covariance_type)
    return new_params, jnp.mean(log_likelihood_N)

  params, history = lax.scan(em_round, GMMParams(weights, means, covariances), None,
                             length=num_iters)
  final = jnp.mean(gmm_log_likelihood(x, *params))
  return params, jnp.concatenate([history, final[None]])


def _check_noisy_or(name, inhibitions, leak):
  inhibitions, leak = jnp.asarray(inhibitions), jnp.asarray(leak)
  if inhibitions.ndim != 2 or leak.shape != inhibitions.shape[:1]:
    raise ValueError(f"{name}: expected inhibitions [C, J] and leak [C]; got "
                     f"{inhibitions.shape} and {leak.shape}.")
  dtype = _float_dtype(inhibitions, leak)
  return inhibitions.astype(dtype), leak.astype(dtype)


def _log_prob_off(parents, inhibitions_CxJ, leak_C):
  """log P(y_c = 0 | u) = log(1 − leak_c) + Σ_j u_j log q_cj: float [..., C]."""
  parents = jnp.asarray(parents, inhibitions_CxJ.dtype)
  if parents.ndim < 1 or parents.shape[-1:] != inhibitions_CxJ.shape[1:]:
    raise ValueError(f"noisy-OR: parents [..., J] must have J = {inhibitions_CxJ.shape[1]} "
                     f"to match inhibitions [C, J]; got {parents.shape}.")
  lead = (1,) * (parents.ndim - 1)
  log_inhibitions_CxJ = jnp.log(inhibitions_CxJ).reshape(lead + inhibitions_CxJ.shape)
  u_1xJ = parents[..., None, :]
  # An inactive parent contributes nothing, even with q = 0 (no 0 · log 0 = NaN).
  terms = jnp.where(u_1xJ > 0, u_1xJ * log_inhibitions_CxJ, 0.0)
  return jnp.log1p(-leak_C).reshape(lead + leak_C.shape) + jnp.sum(terms, axis=-1)


def noisy_or_prob(parents: jax.Array, inhibitions: jax.Array, leak: jax.Array) -> jax.Array:
  """P(y_c = 1 | u) = 1 − (1 − leak_c) Π_j q_cj^{u_j}  (leaky noisy-OR).

  q_cj = 1 − p_cj is the inhibition probability: parent j, when on, turns child c on by
  itself with probability p_cj, independently of the other parents; leak_c is the
  probability that child c is on with every parent off (Pearl 1988, Sec. 4.3.2; Henrion
  1989). Computed as −expm1(log(1 − leak) + Σ_j u_j log q_cj).

  Args:
    parents: float or int array [..., J], u_j ∈ {0, 1}.
    inhibitions: float [C, J], q_cj ∈ [0, 1].
    leak: float [C], leak_c ∈ [0, 1).

  Returns:
    float32 [..., C] probabilities (float64 under x64 with float64 inputs).

  Raises:
    ValueError: if the shapes disagree.
  """
  inhibitions, leak = _check_noisy_or("noisy_or_prob", inhibitions, leak)
  return -jnp.expm1(_log_prob_off(parents, inhibitions, leak))


def noisy_or_log_likelihood(children: jax.Array, parents: jax.Array, inhibitions: jax.Array,
                            leak: jax.Array) -> jax.Array:
  """log P(y | u) = Σ_c [y_c log P(y_c = 1 | u) + (1 − y_c) log P(y_c = 0 | u)].

  Args:
    children: float or int array [..., C], y_c ∈ {0, 1}.
    parents: float or int array [..., J], u_j ∈ {0, 1} (same leading axes as children).
    inhibitions: float [C, J].
    leak: float [C].

  Returns:
    float32 [...] nats (−inf for an impossible configuration, e.g. a child on with leak 0
    and no active parent).

  Raises:
    ValueError: if the shapes disagree.
  """
  inhibitions, leak = _check_noisy_or("noisy_or_log_likelihood", inhibitions, leak)
  children = jnp.asarray(children, inhibitions.dtype)
  if jnp.shape(children)[-1:] != leak.shape or jnp.shape(children)[:-1] != jnp.shape(
      parents)[:-1]:
    raise ValueError(f"noisy_or_log_likelihood: children [..., C] with C = {leak.shape[0]} "
                     f"and the leading axes of parents {jnp.shape(parents)}; got "
                     f"{children.shape}.")
  log_off = _log_prob_off(parents, inhibitions, leak)
  log_on = jnp.log(-jnp.expm1(log_off))
  return jnp.sum(jnp.where(children > 0, log_on, log_off), axis=-1)


def noisy_or_sample(key: jax.Array, priors: jax.Array, inhibitions: jax.Array,
                    leak: jax.Array, num_samples: int) -> tuple[jax.Array, jax.Array]:
  """Ancestral sampling of the two-layer network: u_j ~ Bernoulli(prior_j), then
  y_c | u ~ Bernoulli(noisy_or_prob(u)).

  Args:
    key: PRNG key.
    priors: float [J], P(u_j = 1).
    inhibitions: float [C, J].
    leak: float [C].
    num_samples: S ≥ 1 (static).

  Returns:
    (parents, children): float32 [S, J] and float32 [S, C] of 0s and 1s.

  Raises:
    ValueError: if the shapes disagree or num_samples < 1.
  """
  inhibitions, leak = _check_noisy_or("noisy_or_sample", inhibitions, leak)
  priors = jnp.asarray(priors, inhibitions.dtype)
  if priors.shape != inhibitions.shape[1:] or num_samples < 1:
    raise ValueError(f"noisy_or_sample: priors must be [J] = {inhibitions.shape[1:]} and "
                     f"num_samples >= 1; got {priors.shape} and {num_samples}.")
  parents_key, children_key = jax.random.split(key)
  priors_SxJ = jnp.broadcast_to(priors[None, :], (num_samples,) + priors.shape)
  parents_SxJ = jax.random.bernoulli(parents_key, priors_SxJ).astype(jnp.float32)
  prob_SxC = noisy_or_prob(parents_SxJ, inhibitions, leak)
  children_SxC = jax.random.bernoulli(children_key, prob_SxC).astype(jnp.float32)
  return parents_SxJ, children_SxC


def noisy_or_marginal_log_likelihood(children: jax.Array, priors: jax.Array,
                                     inhibitions: jax.Array, leak: jax.Array) -> jax.Array:
  """Exact log P(y) = log Σ_u Π_j P(u_j) P(y | u), enumerating all 2^J parent states.

  Log-sum-exp over the configurations; meant for small networks (J ≤ 20).

  Args:
    children: float or int array [..., C], y ∈ {0, 1}.
    priors: float [J], P(u_j = 1) ∈ [0, 1].
    inhibitions: float [C, J].
    leak: float [C].

  Returns:
    float32 [...] nats.

  Raises:
    ValueError: if the shapes disagree or J > 20.
  """
  inhibitions, leak = _check_noisy_or("noisy_or_marginal_log_likelihood", inhibitions, leak)
  priors = jnp.asarray(priors, inhibitions.dtype)
  num_parents = inhibitions.shape[1]
  if priors.shape != (num_parents,):
    raise ValueError(f"noisy_or_marginal_log_likelihood: priors must be [J] = "
                     f"{(num_parents,)}, got {priors.shape}.")
  if num_parents > _MAX_ENUMERATED_PARENTS:
    raise ValueError(f"noisy_or_marginal_log_likelihood enumerates 2^J parent states; J = "
                     f"{num_parents} > {_MAX_ENUMERATED_PARENTS}: use sampling instead.")
  children = jnp.asarray(children, inhibitions.dtype)
  configs_UxJ = jnp.asarray(
      np.array(list(itertools.product((0, 1), repeat=num_parents)), np.float32).reshape(
          -1, num_parents), inhibitions.dtype)
  log_prior_U = jnp.sum(jnp.where(configs_UxJ > 0, jnp.log(priors)[None, :],
                                  jnp.log1p(-priors)[None, :]), axis=-1)
  batch_shape = children.shape[:-1]
  num_configs = configs_UxJ.shape[0]
  children_UxBxC = jnp.broadcast_to(children.reshape(1, -1, children.shape[-1]),
                                    (num_configs,) + (math.prod(batch_shape),) + leak.shape)
  parents_UxBxJ = jnp.broadcast_to(configs_UxJ[:, None, :], children_UxBxC.shape[:2] +
                                   (num_parents,))
  log_likelihood_UxB = noisy_or_log_likelihood(children_UxBxC, parents_UxBxJ, inhibitions,
                                               leak)
  log_marginal_B = jax.nn.logsumexp(log_prior_U[:, None] + log_likelihood_UxB, axis=0)
  return log_marginal_B.reshape(batch_shape)

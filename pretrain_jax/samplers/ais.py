"""Annealed importance sampling (AIS) of the log partition function of a binary RBM.

Follows Salakhutdinov & Murray (2008), "On the Quantitative Analysis of Deep Belief
Networks", ICML, Sections 3-4, and Neal (2001), "Annealed importance sampling",
Statistics and Computing 11(2). The RBM uses the conventions of ``gibbs``:
``params = {"W": [H, V], "b": [H], "c": [V]}``, E(v, h) = -hᵀWv - bᵀh - cᵀv and
p(v) = exp(-F(v)) / Z with F the free energy, so the test log-likelihood in nats is
log p(v) = -F(v) - log Z (``rbm_log_likelihood``).

AIS anneals from a base-rate model A (W = 0, b = 0, visible biases c_A; exact samples,
log Z_A = Σ_i softplus(c_A_i) + H ln 2) to the target RBM B through the intermediate
distributions of the paper's Eqs. 10-12, on the joint (v, h_A, h_B):

    p*_k(v) = exp((1-β_k) c_Aᵀv) · 2^H · exp(β_k cᵀv) · Π_j (1 + exp(β_k (b_j + W_j·v))),

with 0 = β_0 < β_1 < ... < β_K = 1 (the 2^H of the weightless h_A is constant in β).
Each chain starts at v_1 ~ p_A, adds log p*_k(v_k) - log p*_{k-1}(v_k) to its log-weight
and moves by one block-Gibbs step that leaves p_k invariant: h ~ σ(β_k (b + Wv)),
v ~ σ((1-β_k) c_A + β_k (c + Wᵀh)). Then Z_B / Z_A ≈ mean_chains exp(log-weight).

Exact log Z by enumerating the smaller layer (``rbm_log_partition_exact``) is the
oracle for RBMs with at most 25 units in their smaller layer.
"""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.samplers import gibbs

__all__ = [
    "AISResult",
    "rbm_log_partition_exact",
    "base_rate_visible_bias",
    "annealing_schedule",
    "ais_log_partition",
    "rbm_log_likelihood",
]

_MAX_ENUMERATED_UNITS = 25
_CHUNK_ELEMENTS = 1 << 22  # configurations x other-layer size per enumeration chunk


def _rbm_sizes(params: dict) -> tuple[int, int]:
  """Validates RBM params (as ``gibbs`` does) and returns (num_hidden, num_visible)."""
  if "W" in params and jnp.ndim(params["W"]) != 2:
    raise ValueError(f"RBM params W must be [H, V], got shape {jnp.shape(params['W'])}.")
  num_visible = jnp.shape(params["W"])[-1] if "W" in params else 0
  # pylint: disable-next=protected-access
  return gibbs._check_rbm(params, np.zeros((num_visible,), np.float32), "V")


def _softplus64(x: np.ndarray) -> np.ndarray:
  return np.logaddexp(0.0, x)


def rbm_log_partition_exact(params: dict) -> np.float64:
  """Exact log Z of a binary RBM by enumerating its smaller layer, in float64.

  With H <= V, log Z = log Σ_h exp(bᵀh + Σ_i softplus(c_i + (Wᵀh)_i)) over the 2^H
  hidden vectors; with V < H, log Z = log Σ_v exp(-F(v)) over the 2^V visible vectors.
  The configurations are visited in chunks, so 2^20 or more never sit in memory at once.

  Args:
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.

  Returns:
    float64 scalar (``np.float64``), log Z in nats.

  Raises:
    ValueError: if the params have the wrong shapes, or the smaller layer has more than
      25 units (2^25 terms): use ``ais_log_partition`` instead.

  Source: Salakhutdinov & Murray (2008), ICML, Section 4.1 (exact log Z of RBMs with
  few hidden units, used to check AIS); Hinton (2010), "A Practical Guide to Training
  RBMs", Section 16.1 (free energy).
  """
  num_hidden, num_visible = _rbm_sizes(params)
  w = np.asarray(params["W"], np.float64)
  b = np.asarray(params["b"], np.float64)
  c = np.asarray(params["c"], np.float64)
  if num_hidden <= num_visible:
    # Enumerate h: the bias and weights seen from the hidden side.
    num_units, own_bias, other_bias, weights = num_hidden, b, c, w
  else:
    num_units, own_bias, other_bias, weights = num_visible, c, b, w.T
  if num_units > _MAX_ENUMERATED_UNITS:
    raise ValueError(
        f"exact log Z enumerates 2^{num_units} configurations of the smaller layer "
        f"(H={num_hidden}, V={num_visible}), over the limit of 2^{_MAX_ENUMERATED_UNITS}; "
        "estimate it with ais_log_partition instead."
    )
  num_configs = 1 << num_units
  chunk = max(1, min(num_configs, _CHUNK_ELEMENTS // max(1, weights.shape[1])))
  bits = np.arange(num_units, dtype=np.int64)
  log_z = -np.inf
  for start in range(0, num_configs, chunk):
    index = np.arange(start, min(start + chunk, num_configs), dtype=np.int64)
    configs = ((index[:, None] >> bits[None, :]) & 1).astype(np.float64)
    log_terms = configs @ own_bias + np.sum(
        _softplus64(configs @ weights + other_bias[None, :]), axis=1
    )
    peak = np.max(log_terms)
    log_z = np.logaddexp(log_z, peak + np.log(np.sum(np.exp(log_terms - peak))))
  return np.float64(log_z)


def base_rate_visible_bias(v_data, *, smoothing: float = 1.0) -> np.ndarray:
  """Visible biases of the base-rate model: logits of the smoothed pixel means.

  The base-rate model is an RBM with W = 0 and b = 0 whose visible units are
  independent with p(v_i = 1) = (Σ_n v_ni + α) / (N + 2α) (the data frequency under a
  Beta(α, α) prior, α = ``smoothing``), so c_A = log p - log(1 - p). Its log partition
  function is log Z_A = Σ_i softplus(c_A_i) + H ln 2 and it is sampled exactly, which
  makes it the starting point of ``ais_log_partition``.

  Args:
    v_data: float ``[..., V]`` training vectors (binary or intensities in [0, 1]);
      all leading axes are examples.
    smoothing: float α > 0, pseudo-count added to both outcomes of every pixel, which
      keeps the biases finite for pixels that are always 0 or 1.

  Returns:
    float32 numpy array ``[V]``, the base-rate visible biases c_A (logits, nats).

  Raises:
    ValueError: if ``v_data`` has no examples or values outside [0, 1], or
      ``smoothing`` is not > 0.

  Source: Salakhutdinov & Murray (2008), ICML, Section 4.1 (the "base-rate" model);
  Neal (2001), Section 5.
  """
  v_data = np.asarray(v_data, np.float64)
  if v_data.ndim < 1 or v_data.size == 0:
    raise ValueError(f"v_data must be [..., V] with at least one example, got {v_data.shape}.")
  if not isinstance(smoothing, numbers.Real) or not smoothing > 0:
    raise ValueError(f"smoothing must be a pseudo-count > 0, got {smoothing!r}.")
  if np.any(v_data < 0) or np.any(v_data > 1):
    raise ValueError("v_data must lie in [0, 1] (binary vectors or intensities).")
  v_NxV = v_data.reshape(-1, v_data.shape[-1])
  probs = (v_NxV.sum(axis=0) + smoothing) / (v_NxV.shape[0] + 2.0 * smoothing)
  return (np.log(probs) - np.log1p(-probs)).astype(np.float32)


def annealing_schedule(num_betas: int = 14_500) -> np.ndarray:
  """The paper's inverse temperatures: 0 = β_0 < β_1 < ... < β_K = 1, K = ``num_betas``.

  The K steps are split 1 : 8 : 20 over [0, 0.5], [0.5, 0.9] and [0.9, 1], each spaced
  uniformly; the default K = 14,500 gives the paper's 500, 4,000 and 10,000.

  Args:
    num_betas: Python int K >= 3, the number of intermediate distributions (annealing
      steps) after β_0 = 0.

  Returns:
    float64 numpy array ``[K + 1]``, increasing from 0 to 1.

  Raises:
    ValueError: if ``num_betas`` is not a Python int >= 3.

  Source: Salakhutdinov & Murray (2008), ICML, Section 4.1.
  """
  if not isinstance(num_betas, numbers.Integral) or num_betas < 3:
    raise ValueError(f"num_betas must be a Python int >= 3, got {num_betas!r}.")
  first = max(1, round(num_betas / 29))
  second = max(1, round(8 * num_betas / 29))
  third = num_betas - first - second
  return np.concatenate([
      np.linspace(0.0, 0.5, first + 1)[:-1],
      np.linspace(0.5, 0.9, second + 1)[:-1],
      np.linspace(0.9, 1.0, third + 1),
  ])


class AISResult(NamedTuple):
  """An AIS estimate of log Z.

  Attributes:
    log_z: float, the estimate log Ẑ_B = log mean_c exp(log_weights_c) + log Z_A, in
      nats. Ẑ_B is unbiased for Z_B, so log Ẑ_B is a stochastic lower bound on log Z
      (biased low by Jensen), and log-likelihoods -F(v) - log Ẑ_B are biased high.
    log_z_std_error: float, standard error of ``log_z`` in nats by the delta method,
      std(w) / (mean(w) √C) over the C chains' importance weights w.
    effective_sample_size: float, (Σ w)² / Σ w², between 1 and C.
    log_weights: float32 ``[C]``, each chain's log importance weight log(Z_B/Z_A)
      estimate in nats.
    log_z_base: float, the base-rate model's log Z_A = Σ_i softplus(c_A_i) + H ln 2.
  """

  log_z: float
  log_z_std_error: float
  effective_sample_size: float
  log_weights: jax.Array
  log_z_base: float


def _check_betas(betas) -> np.ndarray:
  betas = np.asarray(betas, np.float64)
  if (
      betas.ndim != 1
      or betas.shape[0] < 2
      or not np.all(np.isfinite(betas))
      or betas[0] != 0.0
      or betas[-1] != 1.0
      or np.any(np.diff(betas) <= 0)
  ):
    raise ValueError(
        "betas must be a 1-D array strictly increasing from 0 to 1 (β_0 = 0, β_K = 1), "
        f"got shape {betas.shape}; build one with annealing_schedule(num_betas)."
    )
  if np.any(np.diff(betas.astype(np.float32)) <= 0):
    raise ValueError("betas are closer than float32 resolution; use fewer betas.")
  return betas.astype(np.float32)


def _softplus_difference(pre: jax.Array, beta: jax.Array, beta_prev: jax.Array) -> jax.Array:
  """softplus(β x) - softplus(β' x) to float32 relative accuracy, for β' < β.

  Equals (β - β') relu(x) + log1p(σ(-β'|x|) · expm1(-(β - β')|x|)): no large terms
  cancel (a plain difference of two softplus values loses ~1e-7 nats per unit per step,
  which over 10^4 steps biases log Z by ~1e-4), and nothing overflows.
  """
  delta = beta - beta_prev
  magnitude = jnp.abs(pre)
  return delta * jax.nn.relu(pre) + jnp.log1p(
      jax.nn.sigmoid(-beta_prev * magnitude) * jnp.expm1(-delta * magnitude)
  )


def _bernoulli(uniforms: jax.Array, logits: jax.Array) -> jax.Array:
  return (uniforms < jax.nn.sigmoid(logits)).astype(jnp.float32)


def _ais_log_weights(key, params, betas, base_visible_bias, num_chains):
  """Runs C AIS chains over ``betas`` [K + 1]; returns float32 log-weights [C]."""
  w_HxV = params["W"].astype(jnp.float32)
  b_H = params["b"].astype(jnp.float32)
  c_V = params["c"].astype(jnp.float32)
  c_base_V = base_visible_bias.astype(jnp.float32)
  num_hidden, num_visible = w_HxV.shape
  key_init, key_run = jax.random.split(key)
  # v_1 ~ p_0 = p_A, the base rate: independent pixels.
  uniforms = jax.random.uniform(key_init, (num_chains, num_visible), jnp.float32)
  v_CxV = _bernoulli(uniforms, c_base_V[None, :])
  bias_gap_V = c_V - c_base_V

  def body(carry, inputs):
    v_CxV, log_weights_C, compensation_C = carry
    beta_prev, beta, step_key = inputs
    pre_CxH = v_CxV @ w_HxV.T + b_H[None, :]
    # log p*_k(v_k) - log p*_{k-1}(v_k), Eq. 12 (the weightless h_A factor cancels).
    increment_C = (beta - beta_prev) * (v_CxV @ bias_gap_V) + jnp.sum(
        _softplus_difference(pre_CxH, beta, beta_prev), axis=1
    )
    # Kahan (compensated) summation keeps K ~ 10^4 float32 additions accurate.
    y_C = increment_C - compensation_C
    total_C = log_weights_C + y_C
    compensation_C = (total_C - log_weights_C) - y_C
    # One block-Gibbs step leaving p_k invariant: h_B | v, then v | h_B.
    uniforms = jax.random.uniform(step_key, (num_chains, num_hidden + num_visible), jnp.float32)
    h_CxH = _bernoulli(uniforms[:, :num_hidden], beta * pre_CxH)
    logits_CxV = (1.0 - beta) * c_base_V[None, :] + beta * (h_CxH @ w_HxV + c_V[None, :])
    v_CxV = _bernoulli(uniforms[:, num_hidden:], logits_CxV)
    return (v_CxV, total_C, compensation_C), None

  num_steps = betas.shape[0] - 1
  zeros_C = jnp.zeros((num_chains,), jnp.float32)
  (_, log_weights_C, _), _ = jax.lax.scan(
      body,
      (v_CxV, zeros_C, zeros_C),
      (betas[:-1], betas[1:], jax.random.split(key_run, num_steps)),
  )
  return log_weights_C


_ais_log_weights_jit = jax.jit(_ais_log_weights, static_argnums=4)


def ais_log_partition(
    key: jax.Array,
    params: dict,
    *,
    num_chains: int = 100,
    betas=None,
    num_betas: int = 14_500,
    base_visible_bias=None,
    max_std_error: float = 0.1,
) -> AISResult:
  """Estimates log Z of a binary RBM by annealed importance sampling from a base rate.

  Runs C independent chains (vectorised, one ``lax.scan`` over the betas, jitted) from
  exact samples of the base-rate model A (W = 0, b = 0, visible biases c_A) through the
  intermediate distributions p_k ∝ p*_A^{1-β_k} p*_B^{β_k} of the module docstring, with
  a block-Gibbs transition at each β_k. Chain c's log-weight is
  Σ_k [log p*_k(v_k) - log p*_{k-1}(v_k)] (free energies at each β; accumulated with
  compensated summation in float32), and

      log Ẑ_B = log mean_c exp(log-weight_c) + log Z_A,   log Z_A = Σ softplus(c_A) + H ln 2.

  The standard error is the delta method's std(w) / (mean(w) √C), with w the
  importance weights (in float64). The paper reports log(Ẑ ± 3σ̂) with σ̂ the
  standard deviation of Ẑ; that interval is ≈ log Ẑ ± 3 ``log_z_std_error`` when small.

  Args:
    key: PRNG key (consumed; never stored).
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``; run in float32.
    num_chains: Python int C >= 2, the number of independent AIS runs.
    betas: optional float ``[K + 1]`` inverse temperatures strictly increasing from
      β_0 = 0 to β_K = 1; by default ``annealing_schedule(num_betas)``.
    num_betas: Python int K, the number of intermediate distributions when ``betas``
      is None (default 14,500, the paper's schedule).
    base_visible_bias: optional float ``[V]``, the base-rate visible biases c_A (logits);
      use ``base_rate_visible_bias(v_train)`` as in the paper. None gives c_A = 0, the
      uniform distribution over the 2^V visible vectors (needs more betas).
    max_std_error: float, in nats; above it a ``UserWarning`` is issued.

  Returns:
    ``AISResult(log_z, log_z_std_error, effective_sample_size, log_weights,
    log_z_base)``; log Z and its standard error in nats (see ``AISResult``).

  Raises:
    ValueError: if the params or ``base_visible_bias`` have the wrong shapes,
      ``num_chains`` is not an int >= 2, or ``betas`` does not increase from 0 to 1.
    FloatingPointError: if a log-weight is not finite (e.g. NaN parameters).

  Warns:
    UserWarning: if the standard error exceeds ``max_std_error`` (too few intermediate
      distributions or chains); the message gives the standard error.

  Source: Salakhutdinov & Murray (2008), "On the Quantitative Analysis of Deep Belief
  Networks", ICML, Section 3 (AIS), Eqs. 10-12 (intermediate distributions and
  transitions), Section 4.1 (base rate, schedule); Neal (2001), "Annealed importance
  sampling", Statistics and Computing 11(2).
  """
  num_hidden, num_visible = _rbm_sizes(params)
  if not isinstance(num_chains, numbers.Integral) or num_chains < 2:
    raise ValueError(f"num_chains must be a Python int >= 2, got {num_chains!r}.")
  betas = _check_betas(annealing_schedule(num_betas) if betas is None else betas)
  if base_visible_bias is None:
    base_visible_bias = np.zeros((num_visible,), np.float32)
  base_visible_bias = np.asarray(base_visible_bias, np.float32)
  if base_visible_bias.shape != (num_visible,):
    raise ValueError(
        f"base_visible_bias must be [V] with V={num_visible}, got {base_visible_bias.shape}."
    )
  if not np.all(np.isfinite(base_visible_bias)):
    raise ValueError("base_visible_bias must be finite; smooth the data means.")

  log_weights = _ais_log_weights_jit(
      key, params, jnp.asarray(betas), jnp.asarray(base_visible_bias), int(num_chains)
  )
  log_weights_64 = np.asarray(log_weights, np.float64)
  if not np.all(np.isfinite(log_weights_64)):
    raise FloatingPointError("AIS log-weights are not finite; check the RBM params.")
  log_z_base = float(np.sum(_softplus64(base_visible_bias.astype(np.float64))))
  log_z_base += num_hidden * np.log(2.0)
  peak = np.max(log_weights_64)
  weights = np.exp(log_weights_64 - peak)
  mean_weight = np.mean(weights)
  log_z = float(peak + np.log(mean_weight) + log_z_base)
  std_error = float(np.std(weights, ddof=1) / (mean_weight * np.sqrt(num_chains)))
  effective_sample_size = float(np.sum(weights) ** 2 / np.sum(weights**2))
  if std_error > max_std_error:
    warnings.warn(
        f"AIS estimate of log Z is unreliable: standard error {std_error:.3g} nats > "
        f"{max_std_error} with {betas.shape[0] - 1} intermediate distributions and "
        f"{num_chains} chains (effective sample size {effective_sample_size:.1f}); "
        "use more betas (the paper uses 14,500) or more chains.",
        UserWarning,
        stacklevel=2,
    )
  return AISResult(log_z, std_error, effective_sample_size, log_weights, log_z_base)


def rbm_log_likelihood(params: dict, v: jax.Array, log_z) -> jax.Array:
  """log p(v) = -F(v) - log Z of a binary RBM, per example.

  Args:
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    v: float ``[..., V]`` binary visible vectors.
    log_z: float scalar, log Z in nats (``rbm_log_partition_exact`` or
      ``ais_log_partition(...).log_z``).

  Returns:
    float32 ``[...]`` log-likelihoods in nats per example.

  Raises:
    ValueError: if the params or the last axis of ``v`` have the wrong shape, or
      ``log_z`` is not a scalar.

  Source: Salakhutdinov & Murray (2008), ICML, Section 4 (test log-probabilities from
  the AIS estimate of Z); Hinton (2010), "A Practical Guide to Training RBMs",
  Section 16.1.
  """
  if jnp.ndim(log_z) != 0:
    raise ValueError(f"log_z must be a scalar, got shape {jnp.shape(log_z)}.")
  return -gibbs.rbm_free_energy(params, v) - jnp.asarray(log_z, jnp.float32)

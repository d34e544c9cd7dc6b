"""Tests for pretrain_jax.samplers.ais.

Oracles: brute-force sums of exp(-E(v, h)) over BOTH layers of tiny RBMs (numpy
float64), exact log Z of a 32 x 16 RBM by enumerating its 2^16 hidden vectors in this
file, the closed form log Z = Σ softplus(b) + Σ softplus(c) of an RBM without weights,
hand-computed base-rate logits, and normalisation of p(v) over all 2^V visible vectors.
"""

from __future__ import annotations

import itertools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrain_jax.samplers import ais


def all_binary(n):
  return np.array(list(itertools.product([0, 1], repeat=n)), np.float64)


def softplus(x):
  return np.logaddexp(0.0, np.asarray(x, np.float64))


def random_rbm(num_visible, num_hidden, seed, scale=1.0):
  rng = np.random.default_rng(seed)
  return {
      "W": jnp.asarray(rng.normal(0, scale, (num_hidden, num_visible)), jnp.float32),
      "b": jnp.asarray(rng.normal(0, 0.5, num_hidden), jnp.float32),
      "c": jnp.asarray(rng.normal(0, 0.5, num_visible), jnp.float32),
  }


def as64(params):
  return [np.asarray(params[name], np.float64) for name in ("W", "b", "c")]


def joint_neg_energy(params):
  """-E(v, h) = hᵀWv + bᵀh + cᵀv for every pair: [2^V, 2^H], plus the enumerations."""
  w, b, c = as64(params)
  vs, hs = all_binary(w.shape[1]), all_binary(w.shape[0])
  neg_energy = np.einsum("hj,jk,vk->vh", hs, w, vs) + (hs @ b)[None, :] + (vs @ c)[:, None]
  return neg_energy, vs


def logsumexp(x, axis=None):
  peak = np.max(x, axis=axis, keepdims=True)
  return np.squeeze(peak, axis=axis) + np.log(np.sum(np.exp(x - peak), axis=axis))


@pytest.mark.parametrize("num_visible,num_hidden", [(5, 4), (4, 4), (3, 6)])
@pytest.mark.parametrize("chunk_elements", [None, 7])
def test_exact_log_partition_matches_joint_enumeration(
    num_visible, num_hidden, chunk_elements, monkeypatch
):
  if chunk_elements is not None:  # force many small chunks
    monkeypatch.setattr(ais, "_CHUNK_ELEMENTS", chunk_elements)
  params = random_rbm(num_visible, num_hidden, seed=num_visible * 10 + num_hidden, scale=1.5)
  neg_energy, _ = joint_neg_energy(params)
  log_z = ais.rbm_log_partition_exact(params)
  assert isinstance(log_z, np.float64)
  np.testing.assert_allclose(log_z, logsumexp(neg_energy), rtol=1e-12)


def exact_hidden_marginal(params):
  """Enumerated p(h) ∝ exp(bᵀh + Σ_i softplus(c_i + (Wᵀh)_i)) and log Z (independent)."""
  w, b, c = as64(params)
  hs = all_binary(w.shape[0])
  log_p = hs @ b + softplus(hs @ w + c[None, :]).sum(axis=1)
  log_z = logsumexp(log_p)
  return hs, np.exp(log_p - log_z), log_z


def sample_rbm(params, num_samples, rng):
  """Exact samples v ~ p(v): h from the enumerated marginal, then v | h."""
  w, _, c = as64(params)
  hs, p_h, _ = exact_hidden_marginal(params)
  h = hs[rng.choice(hs.shape[0], num_samples, p=p_h)]
  probs_v = 1.0 / (1.0 + np.exp(-(h @ w + c[None, :])))
  return (rng.random(probs_v.shape) < probs_v).astype(np.float32)


@pytest.fixture(scope="module")
def mid_rbm():
  """A 32 x 16 RBM with N(0, 1) weights, its exact log Z, and 1,000 exact samples."""
  params = random_rbm(32, 16, seed=0, scale=1.0)
  _, _, log_z = exact_hidden_marginal(params)
  data = sample_rbm(params, 1000, np.random.default_rng(1))
  return params, log_z, data


def test_exact_log_partition_of_mid_rbm(mid_rbm):
  params, log_z, _ = mid_rbm
  np.testing.assert_allclose(ais.rbm_log_partition_exact(params), log_z, rtol=1e-12)


def test_ais_matches_enumeration(mid_rbm):
  params, exact_log_z, data = mid_rbm
  base_visible_bias = ais.base_rate_visible_bias(data)
  num_chains = 500
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a good run must not warn
    result = ais.ais_log_partition(
        jax.random.key(0),
        params,
        num_chains=num_chains,
        num_betas=1000,
        base_visible_bias=base_visible_bias,
    )
  # The annealing is far from trivial: log Z_B - log Z_A is about 7 nats.
  assert exact_log_z - result.log_z_base > 5.0
  # Acceptance criterion of the issue: within 0.05 nats of the exact value (the
  # standard error is ~0.005 nats, so this is a ~10σ margin).
  assert abs(result.log_z - exact_log_z) < 0.05, (result.log_z, exact_log_z)
  assert 0.0 < result.log_z_std_error < 0.02
  assert 0.5 * num_chains < result.effective_sample_size <= num_chains
  chex.assert_shape(result.log_weights, (num_chains,))
  assert result.log_weights.dtype == jnp.float32
  np.testing.assert_allclose(
      result.log_z_base, softplus(base_visible_bias).sum() + 16 * np.log(2.0), rtol=1e-12
  )


def test_ais_without_weights_is_exact():
  """With W = 0 and c_A = c, every importance weight is the same: log Z in closed form.

  The paper's 14,500-step default schedule also checks the float32 accumulation: a
  plain sum of the increments is off by ~1e-3 nats here.
  """
  rng = np.random.default_rng(2)
  num_visible, num_hidden = 20, 16
  b = rng.normal(0, 3.0, num_hidden).astype(np.float32)
  c = rng.normal(0, 1.0, num_visible).astype(np.float32)
  params = {"W": jnp.zeros((num_hidden, num_visible)), "b": jnp.asarray(b), "c": jnp.asarray(c)}
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    result = ais.ais_log_partition(jax.random.key(3), params, num_chains=4, base_visible_bias=c)
  closed_form = softplus(b).sum() + softplus(c).sum()
  np.testing.assert_allclose(result.log_z, closed_form, atol=1e-5, rtol=0)
  assert np.ptp(np.asarray(result.log_weights)) == 0.0
  assert result.log_z_std_error == 0.0
  np.testing.assert_allclose(result.effective_sample_size, 4.0)


def test_annealing_schedule_follows_paper():
  betas = ais.annealing_schedule()
  chex.assert_shape(betas, (14_501,))
  assert betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
  steps = betas[1:]
  assert np.sum(steps <= 0.5 + 1e-12) == 500
  assert np.sum((steps > 0.5 + 1e-12) & (steps <= 0.9 + 1e-12)) == 4000
  assert np.sum(steps > 0.9 + 1e-12) == 10_000
  chex.assert_shape(ais.annealing_schedule(10), (11,))


def test_short_schedule_warns_with_standard_error(mid_rbm):
  # From the uniform base (the default), 9 annealing steps leave a few chains with
  # most of the weight: the standard error is ~0.3-0.7 nats.
  params, _, _ = mid_rbm
  with pytest.warns(UserWarning, match=r"standard error \d[\d.e-]* nats > 0.1 with 9 interm"):
    result = ais.ais_log_partition(
        jax.random.key(4), params, num_chains=100, betas=np.linspace(0.0, 1.0, 10)
    )
  assert result.log_z_std_error > 0.1
  assert result.effective_sample_size < 50.0


def test_base_rate_visible_bias_closed_form():
  data = np.array([[1, 0], [1, 1], [1, 0], [0, 0]], np.float32)
  # Laplace smoothing: p = (3 + 1) / (4 + 2) = 2/3 and (1 + 1) / 6 = 1/3.
  np.testing.assert_allclose(
      ais.base_rate_visible_bias(data), [np.log(2.0), -np.log(2.0)], rtol=1e-6
  )
  # α = 0.5: p = 3.5 / 5 and 1.5 / 5; any leading axes are examples.
  np.testing.assert_allclose(
      ais.base_rate_visible_bias(data.reshape(2, 2, 2), smoothing=0.5),
      [np.log(7 / 3), np.log(3 / 7)],
      rtol=1e-6,
  )


def test_log_likelihood_normalises():
  params = random_rbm(6, 4, seed=5, scale=1.5)
  neg_energy, vs = joint_neg_energy(params)
  log_z = ais.rbm_log_partition_exact(params)
  log_likelihood = ais.rbm_log_likelihood(params, vs, log_z)
  chex.assert_shape(log_likelihood, (64,))
  assert log_likelihood.dtype == jnp.float32
  np.testing.assert_allclose(np.sum(np.exp(np.asarray(log_likelihood, np.float64))), 1.0, rtol=1e-5)
  brute_force = logsumexp(neg_energy, axis=1) - logsumexp(neg_energy)
  np.testing.assert_allclose(log_likelihood, brute_force, atol=1e-5)
  chex.assert_shape(ais.rbm_log_likelihood(params, vs.reshape(8, 8, 6), log_z), (8, 8))


def test_invalid_inputs_raise():
  params = random_rbm(4, 3, seed=6)
  key = jax.random.key(0)
  for betas in ([0.5, 1.0], [0.0, 0.9], [0.0, 0.6, 0.4, 1.0], [[0.0, 1.0]], [0.0]):
    with pytest.raises(ValueError, match="strictly increasing from 0 to 1"):
      ais.ais_log_partition(key, params, num_chains=4, betas=betas)
  with pytest.raises(ValueError, match="num_chains"):
    ais.ais_log_partition(key, params, num_chains=1, betas=[0.0, 1.0])
  with pytest.raises(ValueError, match="num_betas"):
    ais.ais_log_partition(key, params, num_chains=4, num_betas=2)
  with pytest.raises(ValueError, match="base_visible_bias must be \\[V\\]"):
    ais.ais_log_partition(
        key, params, num_chains=4, betas=[0.0, 1.0], base_visible_bias=np.zeros(3)
    )
  with pytest.raises(ValueError, match="W must be \\[H, V\\]"):
    ais.ais_log_partition(key, {**params, "W": jnp.zeros(4)}, num_chains=4)
  with pytest.raises(ValueError, match="b \\[H\\]"):
    ais.rbm_log_partition_exact({**params, "b": jnp.zeros(4)})
  with pytest.raises(ValueError, match="missing \\['c'\\]"):
    ais.rbm_log_partition_exact({"W": params["W"], "b": params["b"]})
  with pytest.raises(ValueError, match="2\\^26 configurations.*ais_log_partition"):
    ais.rbm_log_partition_exact(random_rbm(27, 26, seed=7))
  with pytest.raises(ValueError, match="smoothing"):
    ais.base_rate_visible_bias(np.zeros((3, 4)), smoothing=0.0)
  with pytest.raises(ValueError, match="\\[0, 1\\]"):
    ais.base_rate_visible_bias(np.full((3, 4), 2.0))
  with pytest.raises(ValueError, match="log_z must be a scalar"):
    ais.rbm_log_likelihood(params, jnp.zeros(4), jnp.zeros(2))

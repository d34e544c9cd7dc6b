"""Tests for pretrain_jax.samplers.gibbs.

Oracles: exact enumeration of small Ising models (2^8 and 2^16 states) and of a tiny RBM
(2^4 visible × 2^3 hidden states), the exact RBM log-likelihood gradient by jax.grad of
the enumerated log-likelihood, and a deterministic conditional whose Gibbs sweep can be
replayed by a Python loop. Monte-Carlo tolerances are standard errors over independent
chains (only each chain's final state is used, so samples are independent).
"""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from pretrain_jax.samplers import chains, gibbs


def all_binary(n):
  return np.array(list(itertools.product([0, 1], repeat=n)), np.float64)


def exact_ising_moments(coupling, field):
  """E[s_i] and E[s_i s_j] (s ∈ {0, 1}) of p(σ) ∝ exp(½σᵀJσ + hᵀσ), by enumeration."""
  n = field.shape[0]
  s = all_binary(n)
  sigma = 2 * s - 1
  j0 = coupling * (1 - np.eye(n))
  log_p = 0.5 * np.einsum("si,ij,sj->s", sigma, j0, sigma) + sigma @ field
  p = np.exp(log_p - log_p.max())
  p /= p.sum()
  return p @ s, np.einsum("s,si,sj->ij", p, s, s)


def assert_moments_match(samples_CxN, marginals, pairs, num_se=5.0):
  """Compares sample marginals/pair moments of binary samples with exact values."""
  x = np.asarray(samples_CxN, np.float64)
  num = x.shape[0]
  emp_marg = x.mean(0)
  emp_pair = np.einsum("ci,cj->ij", x, x) / num
  se_marg = np.sqrt(np.maximum(marginals * (1 - marginals), 1e-4) / num)
  se_pair = np.sqrt(np.maximum(pairs * (1 - pairs), 1e-4) / num)
  np.testing.assert_array_less(np.abs(emp_marg - marginals), num_se * se_marg)
  np.testing.assert_array_less(np.abs(emp_pair - pairs), num_se * se_pair)


def random_ising(n, seed, scale=0.6):
  rng = np.random.default_rng(seed)
  coupling = rng.normal(0.0, scale, (n, n))
  coupling = np.triu(coupling, 1)
  coupling = coupling + coupling.T
  field = rng.normal(0.0, 0.4, n)
  return coupling.astype(np.float32), field.astype(np.float32)


@pytest.mark.parametrize("kernel,num_steps", [("random_scan", 240), ("systematic", 30)])
def test_generic_gibbs_matches_ising_enumeration(kernel, num_steps):
  n, num_chains = 8, 4096
  coupling, field = random_ising(n, seed=0, scale=0.3)
  # A diagonal must be ignored: put garbage there.
  fn = gibbs.ising_conditional_logits_fn(coupling + 5.0 * np.eye(n, dtype=np.float32), field)
  step = {"random_scan": gibbs.random_scan_step, "systematic": gibbs.systematic_sweep}[kernel]
  step_fn = lambda k, x: (step(k, x, fn), None)

  def run(key):
    key_init, key_run = jax.random.split(key)
    x0 = jax.random.bernoulli(key_init, 0.5, (num_chains, n)).astype(jnp.int32)
    keys = jax.random.split(key_run, num_chains)
    final, _ = jax.vmap(lambda k, x: chains.run_chain(k, step_fn, x, num_steps))(keys, x0)
    return final

  final = jax.jit(run)(jax.random.key(0))
  chex.assert_shape(final, (num_chains, n))
  assert final.dtype == jnp.int32
  marginals, pairs = exact_ising_moments(coupling.astype(np.float64), field.astype(np.float64))
  assert_moments_match(final, marginals, pairs)


def grid_adjacency(height, width, periodic):
  """Independent neighbour list of a grid (each unordered edge listed once)."""
  adjacency = np.zeros((height * width,) * 2)
  for r in range(height):
    for c in range(width):
      i = r * width + c
      for rr, cc in ((r + 1, c), (r, c + 1)):
        if periodic:
          rr, cc = rr % height, cc % width
        elif rr >= height or cc >= width:
          continue
        j = rr * width + cc
        adjacency[i, j] += 1
        adjacency[j, i] += 1
  return adjacency


def test_ising_grid_coupling_matches_neighbour_list():
  for height, width, periodic in ((4, 4, True), (3, 5, False), (3, 4, True)):
    np.testing.assert_array_equal(
        gibbs.ising_grid_coupling(height, width, periodic=periodic),
        grid_adjacency(height, width, periodic),
    )


def test_checkerboard_sweep_matches_grid_enumeration():
  height = width = 4
  beta, h = 0.35, 0.1
  num_chains, num_sweeps = 4096, 40
  coupling = beta * grid_adjacency(height, width, periodic=True)
  field = np.full(height * width, h)
  marginals, pairs = exact_ising_moments(coupling, field)

  def run(key):
    key_init, key_run = jax.random.split(key)
    x0 = jax.random.bernoulli(key_init, 0.5, (num_chains, height, width)).astype(jnp.int8)

    def body(x, step_key):
      return gibbs.ising_checkerboard_sweep(step_key, x, beta, h), None

    final, _ = jax.lax.scan(body, x0, jax.random.split(key_run, num_sweeps))
    return final

  final = jax.jit(run)(jax.random.key(1))
  assert final.dtype == jnp.int8
  assert_moments_match(final.reshape(num_chains, -1), marginals, pairs)


def test_sweep_order_and_random_scan_locality():
  """A deterministic conditional x_i <- (x_{i-1} + 1) mod 3 replays a Python loop."""
  n, num_values = 6, 3

  def conditional_logits_fn(state, i):
    target = (state[(i - 1) % n] + 1) % num_values
    return 50.0 * jax.nn.one_hot(target, num_values)

  state = jnp.array([2, 0, 1, 1, 0, 2], jnp.int32)
  expected = list(np.asarray(state))
  for i in range(n):
    expected[i] = (expected[(i - 1) % n] + 1) % num_values
  swept = gibbs.systematic_sweep(jax.random.key(0), state, conditional_logits_fn)
  np.testing.assert_array_equal(swept, expected)

  # Random scan changes exactly one site (every site's target differs from its value
  # in the all-zeros state), and over many keys it picks every site.
  state = jnp.zeros(n, jnp.int32)
  keys = jax.random.split(jax.random.key(1), 200)
  stepped = jax.jit(jax.vmap(lambda k: gibbs.random_scan_step(k, state, conditional_logits_fn)))(
      keys
  )
  changed = np.asarray(stepped != state[None])
  np.testing.assert_array_equal(changed.sum(axis=1), 1)
  np.testing.assert_array_equal(np.asarray(stepped)[changed], 1)
  assert set(np.nonzero(changed)[1]) == set(range(n))


def random_rbm(num_visible, num_hidden, seed, scale=1.0):
  rng = np.random.default_rng(seed)
  return {
      "W": jnp.asarray(rng.normal(0, scale, (num_hidden, num_visible)), jnp.float32),
      "b": jnp.asarray(rng.normal(0, 0.5, num_hidden), jnp.float32),
      "c": jnp.asarray(rng.normal(0, 0.5, num_visible), jnp.float32),
  }


def joint_log_weights(params):
  """-E(v, h) for every (v, h) pair: array [2^V, 2^H] plus the enumerations."""
  w = np.asarray(params["W"], np.float64)
  b = np.asarray(params["b"], np.float64)
  c = np.asarray(params["c"], np.float64)
  vs, hs = all_binary(w.shape[1]), all_binary(w.shape[0])
  neg_energy = np.einsum("hj,jk,vk->vh", hs, w, vs) + (hs @ b)[None, :] + (vs @ c)[:, None]
  return neg_energy, vs, hs


def test_rbm_conditionals_and_free_energy_match_enumeration():
  params = random_rbm(4, 3, seed=2)
  neg_energy, vs, hs = joint_log_weights(params)
  # Free energy F(v) = -log Σ_h exp(-E(v, h)).
  free_energy = -np.log(np.exp(neg_energy).sum(1))
  np.testing.assert_allclose(gibbs.rbm_free_energy(params, vs), free_energy, rtol=1e-5)
  # p(h_j = 1 | v) = Σ_h h_j e^{-E} / Σ_h e^{-E}.
  p_h_given_v = np.exp(neg_energy) / np.exp(neg_energy).sum(1, keepdims=True)
  np.testing.assert_allclose(gibbs.rbm_hidden_probs(params, vs), p_h_given_v @ hs, rtol=1e-5)
  p_v_given_h = np.exp(neg_energy) / np.exp(neg_energy).sum(0, keepdims=True)
  np.testing.assert_allclose(gibbs.rbm_visible_probs(params, hs), p_v_given_h.T @ vs, rtol=1e-5)
  # Single vectors and extra leading axes broadcast.
  chex.assert_shape(gibbs.rbm_free_energy(params, vs[3]), ())
  batch = vs.reshape(2, 8, 4)
  np.testing.assert_allclose(
      gibbs.rbm_free_energy(params, batch), free_energy.reshape(2, 8), rtol=1e-5
  )
  chex.assert_shape(gibbs.rbm_hidden_probs(params, batch), (2, 8, 3))
  chex.assert_shape(gibbs.rbm_visible_probs(params, hs[0]), (4,))


def test_rbm_block_gibbs_matches_enumeration():
  params = random_rbm(4, 3, seed=3, scale=1.2)
  neg_energy, vs, _ = joint_log_weights(params)
  p_v = np.exp(neg_energy).sum(1)
  p_v /= p_v.sum()
  marginals, pairs = p_v @ vs, np.einsum("s,si,sj->ij", p_v, vs, vs)
  num_chains, num_steps = 8192, 40

  def run(key):
    def body(v, step_key):
      return gibbs.rbm_block_gibbs_step(step_key, params, v), None

    final, _ = jax.lax.scan(body, jnp.zeros((num_chains, 4)), jax.random.split(key, num_steps))
    return final

  final = jax.jit(run)(jax.random.key(4))
  assert final.dtype == jnp.float32
  assert set(np.unique(np.asarray(final))) <= {0.0, 1.0}
  assert_moments_match(final, marginals, pairs)


def exact_log_likelihood_grad(params, v_data):
  """∂/∂θ of mean_b log p(v_b), by jax.grad through the enumerated log-likelihood."""
  num_hidden, num_visible = params["W"].shape
  vs = jnp.asarray(all_binary(num_visible), jnp.float32)
  hs = jnp.asarray(all_binary(num_hidden), jnp.float32)

  def neg_energy(p, v):  # [N, V] -> [N, 2^H]
    return (
        jnp.einsum("hj,jk,nk->nh", hs, p["W"], v) + (hs @ p["b"])[None, :] + (v @ p["c"])[:, None]
    )

  def mean_log_likelihood(p):
    log_z = jax.scipy.special.logsumexp(neg_energy(p, vs))
    return jnp.mean(jax.scipy.special.logsumexp(neg_energy(p, v_data), axis=1)) - log_z

  return jax.grad(mean_log_likelihood)(params)


def tree_error(update, exact):
  return float(
      np.sqrt(
          sum(np.sum((np.asarray(update[k]) - np.asarray(exact[k])) ** 2) for k in ("W", "b", "c"))
      )
  )


def bimodal_rbm(weight=3.0):
  """Hidden unit 0 couples all visibles: modes "all on" / "all off" of equal mass.

  With c = -w/2 and b_0 = -2w the two modes balance, and p(h_0 flips) ~ σ(-2w) makes
  block Gibbs mix slowly, so CD-k with small k is strongly biased.
  """
  rng = np.random.default_rng(5)
  w = np.concatenate([np.full((1, 4), weight), rng.normal(0, 0.3, (2, 4))])
  return {
      "W": jnp.asarray(w, jnp.float32),
      "b": jnp.asarray([-2 * weight, 0.1, -0.2], jnp.float32),
      "c": jnp.full((4,), -weight / 2, jnp.float32),
  }


def test_cd_k_approaches_exact_gradient_and_pcd_matches_it():
  params = bimodal_rbm()
  # Data sits in the "all on" mode only; the model puts half its mass on "all off".
  data = np.array(
      [
          [1, 1, 1, 1],
          [1, 1, 1, 0],
          [1, 1, 0, 1],
          [1, 0, 1, 1],
          [0, 1, 1, 1],
          [1, 1, 1, 1],
          [1, 1, 1, 1],
          [1, 1, 0, 1],
      ],
      np.float32,
  )
  exact = jax.jit(exact_log_likelihood_grad)(params, jnp.asarray(data))
  replicas = 4096  # chains per data vector: the update's noise norm is ~0.01
  v_data = jnp.asarray(np.tile(data, (replicas, 1)))

  ks = (1, 5, 60)
  cd = jax.jit(gibbs.contrastive_divergence, static_argnums=3)
  errors = [tree_error(cd(jax.random.key(k), params, v_data, k), exact) for k in ks]
  assert all(a > b + 0.03 for a, b in zip(errors, errors[1:])), errors
  assert errors[0] > 0.5 and errors[-1] < 0.04, errors

  # PCD at fixed params: the persistent chains reach the model, and the update
  # becomes the exact gradient (the positive phase is exact by construction).
  pcd = jax.jit(gibbs.persistent_contrastive_divergence, static_argnums=4)
  chain_v = jnp.zeros((v_data.shape[0], 4))
  key = jax.random.key(7)
  for _ in range(5):
    key, step_key = jax.random.split(key)
    update, chain_v = pcd(step_key, params, v_data, chain_v, 20)
  chex.assert_shape(chain_v, v_data.shape)
  chex.assert_trees_all_equal_shapes(update, params)
  # A single [V] vector works too (shapes by tracing only, no compilation).
  single = jax.eval_shape(
      functools.partial(gibbs.contrastive_divergence, k=2), key, params, v_data[0]
  )
  chex.assert_trees_all_equal_shapes(single, params)
  single, chain = jax.eval_shape(
      functools.partial(gibbs.persistent_contrastive_divergence, k=2),
      key,
      params,
      v_data[0],
      v_data[:3],
  )
  chex.assert_trees_all_equal_shapes(single, params)
  chex.assert_shape(chain, (3, 4))
  assert tree_error(update, exact) < 0.04


class RbmVariantsTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_rbm_steps_batch_and_single(self):
    params = random_rbm(5, 3, seed=8)
    step = self.variant(gibbs.rbm_block_gibbs_step)
    v_single = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
    v_batch = jnp.tile(v_single, (6, 1))
    chex.assert_shape(step(jax.random.key(0), params, v_single), (5,))
    out_1 = step(jax.random.key(0), params, v_batch)
    out_2 = step(jax.random.key(0), params, v_batch)
    chex.assert_shape(out_1, (6, 5))
    chex.assert_trees_all_equal(out_1, out_2)
    assert set(np.unique(np.asarray(out_1))) <= {0.0, 1.0}

  @chex.variants(with_jit=True, without_jit=True)
  def test_generic_steps_under_jit(self):
    coupling, field = random_ising(5, seed=9)
    fn = gibbs.ising_conditional_logits_fn(coupling, field)
    state = jnp.array([0, 1, 1, 0, 1], jnp.int32)
    for kernel in (gibbs.random_scan_step, gibbs.systematic_sweep):
      step = self.variant(functools.partial(kernel, conditional_logits_fn=fn))
      out = step(jax.random.key(2), state)
      chex.assert_shape(out, (5,))
      assert out.dtype == jnp.int32
      chex.assert_trees_all_equal(out, step(jax.random.key(2), state))


def test_invalid_inputs_raise():
  params = random_rbm(4, 3, seed=10)
  with pytest.raises(ValueError, match="k"):
    gibbs.contrastive_divergence(jax.random.key(0), params, jnp.zeros((2, 4)), 0)
  with pytest.raises(ValueError, match="last axis"):
    gibbs.rbm_hidden_probs(params, jnp.zeros((2, 5)))
  with pytest.raises(ValueError, match="W"):
    gibbs.rbm_free_energy({"W": params["W"]}, jnp.zeros(4))
  with pytest.raises(ValueError, match="int\\[n\\]"):
    gibbs.systematic_sweep(
        jax.random.key(0), jnp.zeros((2, 3), jnp.int32), lambda s, i: jnp.zeros(2)
    )
  with pytest.raises(ValueError, match="even"):
    gibbs.ising_checkerboard_sweep(jax.random.key(0), jnp.zeros((3, 4)), 0.4)

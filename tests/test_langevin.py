"""Tests for pretrain_jax.samplers.langevin and pretrain_jax.samplers.chains.

Oracles: closed-form Gaussian moments, the closed-form stationary variance of ULA on a
Gaussian, the Stein identity E[x⁴] = 1 for p ∝ exp(-x⁴/4), the Metropolis-Hastings
ratio recomputed by hand, and an independent Python loop for ``run_chain``. Monte-Carlo
tolerances come from standard errors over independent chains.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from pretrain_jax.samplers import chains, langevin

MEAN = np.array([1.0, -2.0], np.float32)
COV = np.array([[1.0, 0.8], [0.8, 1.0]], np.float32)
PRECISION = np.linalg.inv(COV).astype(np.float32)


def gaussian_logdensity(x):
  centred = x - jnp.asarray(MEAN)
  return -0.5 * centred @ jnp.asarray(PRECISION) @ centred


def run_many_chains(key, step_fn, logdensity_fn, x0_CxD, num_steps, with_info=False):
  """The vmap idiom of chains.py: vmap over keys and initial states."""
  states = jax.vmap(lambda x: langevin.init(x, logdensity_fn))(x0_CxD)
  keys = jax.random.split(key, x0_CxD.shape[0])
  if with_info:
    run = lambda k, s: chains.run_chain_with_info(k, step_fn, s, num_steps)
  else:
    run = lambda k, s: chains.run_chain(k, step_fn, s, num_steps)
  return jax.vmap(run)(keys, states)


def mean_and_standard_error(values_CxS):
  """Mean over chains and steps; SE from the spread of independent per-chain means."""
  per_chain = values_CxS.mean(axis=1)
  return per_chain.mean(), per_chain.std(ddof=1) / np.sqrt(per_chain.shape[0])


STEP_SIZES = (2.0, 1.0, 0.3, 0.1, 0.03, 0.01)
NUM_CHAINS, NUM_STEPS = 1024, 300


@jax.jit
def mala_on_gaussian(key, x0_CxD):
  """MALA chains on the 2-D Gaussian, one batch of chains per step size in STEP_SIZES.

  Shared by two tests so it compiles once.
  """

  def run(step_key, eta):
    step_fn = lambda k, s: langevin.mala_step(k, s, gaussian_logdensity, eta)
    _, positions, infos = run_many_chains(
        step_key, step_fn, gaussian_logdensity, x0_CxD, NUM_STEPS, with_info=True
    )
    return positions, infos

  keys = jax.random.split(key, len(STEP_SIZES))
  return jax.vmap(run)(keys, jnp.asarray(STEP_SIZES, jnp.float32))


def test_mala_matches_correlated_gaussian():
  burn_in = 100
  x0 = 3.0 * jax.random.normal(jax.random.key(1), (NUM_CHAINS, 2))  # over-dispersed
  positions_ExCxSxD, _ = mala_on_gaussian(jax.random.key(0), x0)
  chex.assert_shape(positions_ExCxSxD, (len(STEP_SIZES), NUM_CHAINS, NUM_STEPS, 2))
  x = np.asarray(positions_ExCxSxD[STEP_SIZES.index(0.3), :, burn_in:], np.float64)
  second_moment = COV + np.outer(MEAN, MEAN)
  for i in range(2):
    mean, se = mean_and_standard_error(x[..., i])
    assert abs(mean - MEAN[i]) < 4.5 * se + 1e-3, (i, mean, se)
    for j in range(2):
      moment, se = mean_and_standard_error(x[..., i] * x[..., j])
      assert abs(moment - second_moment[i, j]) < 4.5 * se + 1e-3, (i, j, moment, se)


def test_ula_variance_follows_closed_form_and_mala_stays_unbiased():
  """1-D N(0, s²): ULA's stationary variance is 2η / (1 - (1 - η/s²)²); MALA's is s²."""
  target_var = 2.0
  logdensity_fn = lambda x: -0.5 * jnp.sum(x**2) / target_var
  step_sizes = jnp.array([0.05, 0.2, 0.5, 1.0, 1.5], jnp.float32)
  num_chains, num_steps = 4096, 300

  def final_positions(key, step, eta):
    step_fn = lambda k, s: step(k, s, logdensity_fn, eta)
    final, _ = run_many_chains(key, step_fn, logdensity_fn, jnp.zeros((num_chains, 1)), num_steps)
    return final.position[:, 0]

  def both(key, eta):
    key_ula, key_mala = jax.random.split(key)
    return (
        final_positions(key_ula, langevin.ula_step, eta),
        final_positions(key_mala, langevin.mala_step, eta),
    )

  keys = jax.random.split(jax.random.key(2), step_sizes.shape[0])
  ula_x, mala_x = jax.jit(jax.vmap(both))(keys, step_sizes)
  ula_var = np.var(np.asarray(ula_x, np.float64), axis=1)
  mala_var = np.var(np.asarray(mala_x, np.float64), axis=1)
  eta = np.asarray(step_sizes, np.float64)
  theory = 2 * eta / (1 - (1 - eta / target_var) ** 2)
  se = theory * np.sqrt(2.0 / (num_chains - 1))  # SE of a Gaussian sample variance
  np.testing.assert_array_less(np.abs(ula_var - theory), 5 * se)
  assert np.all(np.diff(ula_var - target_var) > 0), ula_var  # bias grows with η
  assert ula_var[-1] - target_var > 10 * se[-1]  # and is far outside the noise
  mala_se = target_var * np.sqrt(2.0 / num_chains)
  np.testing.assert_array_less(np.abs(mala_var - target_var), 5 * mala_se)


def test_mala_matches_non_gaussian_target_stein_identity():
  """p ∝ exp(-x⁴/4): integrating by parts, E[x⁴] = 1 and E[x] = E[x³] = 0."""
  logdensity_fn = lambda x: -0.25 * jnp.sum(x**4)
  step_fn = functools.partial(langevin.mala_step, logdensity_fn=logdensity_fn, step_size=0.4)
  num_chains, num_steps, burn_in = 1024, 300, 50
  _, positions = jax.jit(lambda k, x: run_many_chains(k, step_fn, logdensity_fn, x, num_steps))(
      jax.random.key(3), jnp.zeros((num_chains, 1))
  )
  x = np.asarray(positions[:, burn_in:, 0], np.float64)
  for power, expected in ((1, 0.0), (3, 0.0), (4, 1.0)):
    mean, se = mean_and_standard_error(x**power)
    assert abs(mean - expected) < 4.5 * se, (power, mean, se)


def test_acceptance_goes_to_one_as_step_size_shrinks():
  # Start at exact target samples so every step is at stationarity.
  chol = np.linalg.cholesky(COV)
  x0 = jnp.asarray(MEAN)[None] + jax.random.normal(jax.random.key(4), (NUM_CHAINS, 2)) @ chol.T
  _, infos = mala_on_gaussian(jax.random.key(5), x0)
  chex.assert_shape(infos.acceptance_rate, (len(STEP_SIZES), NUM_CHAINS, NUM_STEPS))
  rate = infos.acceptance_rate.mean(axis=(1, 2))
  accepted = infos.is_accepted.mean(axis=(1, 2))
  rate, accepted = np.asarray(rate), np.asarray(accepted)
  assert np.all(np.diff(rate) > 0), rate  # monotone as η decreases
  assert rate[-1] > 0.995 and rate[0] < 0.8, rate
  np.testing.assert_allclose(accepted, rate, atol=0.03)  # E[1{accept}] = E[min(1, α)]


def test_mala_acceptance_rate_is_the_metropolis_hastings_ratio():
  """For accepted moves x -> x', recompute min(1, p(x') q(x|x') / (p(x) q(x'|x)))."""
  eta = 0.8
  x = jnp.array([2.5, -0.5], jnp.float32)
  state = langevin.init(x, gaussian_logdensity)
  keys = jax.random.split(jax.random.key(6), 512)
  new_states, infos = jax.jit(
      jax.vmap(lambda k: langevin.mala_step(k, state, gaussian_logdensity, eta))
  )(keys)
  accepted = np.asarray(infos.is_accepted)
  assert 10 < accepted.sum() < 500
  # Rejected steps keep the old state exactly.
  rejected_positions = np.asarray(new_states.position)[~accepted]
  np.testing.assert_array_equal(rejected_positions, np.tile(x, ((~accepted).sum(), 1)))

  def log_p(y):
    return -0.5 * (y - MEAN) @ PRECISION @ (y - MEAN)

  def grad_log_p(y):
    return -PRECISION @ (y - MEAN)

  def log_q(to, frm):
    return -np.sum((to - frm - eta * grad_log_p(frm)) ** 2) / (4 * eta)

  x64 = np.asarray(x, np.float64)
  for y, rate in zip(
      np.asarray(new_states.position, np.float64)[accepted],
      np.asarray(infos.acceptance_rate)[accepted],
  ):
    log_alpha = log_p(y) - log_p(x64) + log_q(x64, y) - log_q(y, x64)
    np.testing.assert_allclose(rate, min(1.0, np.exp(log_alpha)), rtol=1e-4, atol=1e-5)


def test_pytree_positions_one_key_per_leaf():
  def logdensity_fn(p):
    return -0.5 * jnp.sum(p["a"] ** 2) - 0.5 * jnp.sum((p["b"] - 1.0) ** 2) / 4.0

  position = {"a": jnp.zeros(3), "b": jnp.ones(3)}  # zero gradient for both leaves
  state = langevin.init(position, logdensity_fn)
  new_state, info = jax.jit(
      functools.partial(langevin.ula_step, logdensity_fn=logdensity_fn, step_size=0.5)
  )(jax.random.key(7), state)
  chex.assert_trees_all_equal_shapes(new_state.position, position)
  moved_a = new_state.position["a"] - position["a"]
  moved_b = new_state.position["b"] - position["b"]
  assert not np.allclose(moved_a, moved_b)  # independent noise per leaf
  assert bool(info.is_accepted) and float(info.acceptance_rate) == 1.0

  # MALA on the dict target: a ~ N(0, 1), b ~ N(1, 4).
  step_fn = functools.partial(langevin.mala_step, logdensity_fn=logdensity_fn, step_size=0.5)
  num_chains = 1024
  x0 = {"a": jnp.zeros((num_chains, 3)), "b": jnp.zeros((num_chains, 3))}

  def run(key, x):
    states = jax.vmap(lambda p: langevin.init(p, logdensity_fn))(x)
    keys = jax.random.split(key, num_chains)
    return jax.vmap(lambda k, s: chains.run_chain(k, step_fn, s, 150))(keys, states)

  final, positions = jax.jit(run)(jax.random.key(8), x0)
  chex.assert_shape(positions["a"], (num_chains, 150, 3))
  b = np.asarray(final.position["b"], np.float64)
  a = np.asarray(final.position["a"], np.float64)
  se_mean = np.sqrt(4.0 / num_chains)
  assert np.all(np.abs(b.mean(0) - 1.0) < 5 * se_mean)
  assert np.all(np.abs(b.var(0) - 4.0) < 5 * 4.0 * np.sqrt(2.0 / num_chains))
  assert np.all(np.abs(a.var(0) - 1.0) < 5 * np.sqrt(2.0 / num_chains))


def _numpy_log_p(y):
  """log N(y; MEAN, COV) up to a constant, float64."""
  return -0.5 * (y - MEAN) @ PRECISION @ (y - MEAN)


def _numpy_log_q(to, frm, eta):
  """log q(to | frm) = log N(to; frm + η ∇log p(frm), 2η I) up to a constant, float64."""
  return -np.sum((to - frm + eta * PRECISION @ (frm - MEAN))**2) / (4 * eta)


class StepVariantsTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("ula", "mala")
  def test_steps_are_pure_and_key_first(self, name):
    kernel = {"ula": langevin.ula_step, "mala": langevin.mala_step}[name]
    step = self.variant(functools.partial(kernel, logdensity_fn=gaussian_logdensity, step_size=0.2))
    state = langevin.init(jnp.array([0.5, 0.5]), gaussian_logdensity)
    new_1, info_1 = step(jax.random.key(9), state)
    new_2, _ = step(jax.random.key(9), state)
    new_3, info_3 = step(jax.random.key(10), state)
    chex.assert_trees_all_equal(new_1, new_2)  # same key, same result
    if name == "mala":
      # Oracle: the Metropolis-Hastings ratio recomputed in numpy (float64) from the old
      # and new positions. With these keys both proposals are accepted (the steps head
      # towards the mean, min(1, α) = 1), so the two keys must give different positions.
      x = np.asarray(state.position, np.float64)
      for new, info in ((new_1, info_1), (new_3, info_3)):
        y = np.asarray(new.position, np.float64)
        assert bool(info.is_accepted) and not np.array_equal(y, x)
        log_alpha = (_numpy_log_p(y) - _numpy_log_p(x) + _numpy_log_q(x, y, 0.2)
                     - _numpy_log_q(y, x, 0.2))
        np.testing.assert_allclose(info.acceptance_rate, min(1.0, np.exp(log_alpha)),
                                   rtol=1e-5)
    assert not np.array_equal(new_1.position, new_3.position)
    chex.assert_shape(new_1.position, (2,))
    chex.assert_shape((new_1.logdensity, info_1.acceptance_rate, info_1.is_accepted), ())
    assert info_1.acceptance_rate.dtype == jnp.float32
    assert info_1.is_accepted.dtype == jnp.bool_
    # The cached log-density and gradient are those of the new position.
    value, grad = jax.value_and_grad(gaussian_logdensity)(new_1.position)
    chex.assert_trees_all_close(
        (new_1.logdensity, new_1.logdensity_grad), (value, grad), rtol=1e-5, atol=1e-6
    )
    # States hold no PRNG keys.
    for leaf in jax.tree_util.tree_leaves(new_1):
      assert not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def test_run_chain_equals_python_loop():
  step_fn = functools.partial(langevin.mala_step, logdensity_fn=gaussian_logdensity, step_size=0.5)
  state = langevin.init(jnp.zeros(2), gaussian_logdensity)
  key = jax.random.key(11)
  final, positions = chains.run_chain(key, step_fn, state, 7)
  chex.assert_shape(positions, (7, 2))
  loop_state, loop_positions = state, []
  for step_key in jax.random.split(key, 7):
    loop_state, _ = step_fn(step_key, loop_state)
    loop_positions.append(loop_state.position)
  chex.assert_trees_all_close(final, loop_state, rtol=1e-6)
  chex.assert_trees_all_close(positions, jnp.stack(loop_positions), rtol=1e-6)


def test_invalid_inputs_raise():
  state = langevin.init(jnp.zeros(2), gaussian_logdensity)
  for bad in (0.0, -0.1):
    with pytest.raises(ValueError, match="step_size"):
      langevin.mala_step(jax.random.key(0), state, gaussian_logdensity, bad)
    with pytest.raises(ValueError, match="step_size"):
      langevin.ula_step(jax.random.key(0), state, gaussian_logdensity, bad)
  with pytest.raises(ValueError, match="scalar"):
    langevin.init(jnp.zeros(2), lambda x: -0.5 * x**2)  # not a scalar
  step_fn = functools.partial(langevin.ula_step, logdensity_fn=gaussian_logdensity, step_size=0.1)
  with pytest.raises(ValueError, match="num_steps"):
    chains.run_chain(jax.random.key(0), step_fn, state, 0)
  with pytest.raises(ValueError, match="float"):
    langevin.init(jnp.zeros(2, jnp.int32), lambda x: jnp.sum(x).astype(jnp.float32))

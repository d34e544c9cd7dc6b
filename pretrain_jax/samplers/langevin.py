"""Langevin samplers: the unadjusted (ULA) and the Metropolis-adjusted (MALA) kernel.

Both kernels discretise the overdamped Langevin diffusion with the Euler-Maruyama step
of the slides,

    x_{t+1} = x_t - η ∇f(x_t) + √(2η) ξ,   f = -log p,   ξ ~ N(0, I),

where η is ``step_size``. ULA keeps every proposal and is therefore biased by O(η);
MALA adds the Metropolis-Hastings correction of Roberts & Tweedie (1996), which makes
p the exact stationary distribution for every η > 0.

The kernels follow the BlackJAX shape: a ``LangevinState`` NamedTuple that caches the
log-density and its gradient at the current position, ``init``, and pure, key-first
steps ``step(key, state, logdensity_fn, step_size) -> (state, info)``. Nothing is
jitted here; wrap the step (or a whole ``chains.run_chain`` loop) in ``jax.jit``
yourself, and get many chains with ``jax.vmap``.

Positions may be any pytree of float arrays (e.g. a dict of parameters); the Gaussian
noise uses one key per leaf. Each step draws all its random numbers with one call per
leaf (the MH uniform rides on the first leaf's draw): on small targets random-bit
generation is most of the cost.

Example::

    logdensity_fn = lambda x: -0.5 * jnp.sum(x**2)
    state = init(jnp.zeros(2), logdensity_fn)
    step = jax.jit(functools.partial(mala_step, logdensity_fn=logdensity_fn,
                                     step_size=0.1))
    state, info = step(jax.random.key(0), state)
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LangevinState", "LangevinInfo", "init", "ula_step", "mala_step"]

PyTree = Any
LogDensityFn = Callable[[PyTree], jax.Array]


class LangevinState(NamedTuple):
  """State of a Langevin chain.

  Attributes:
    position: pytree of float arrays, the current sample x_t.
    logdensity: float32 scalar, log p(x_t) in nats (up to the constant of ``logdensity_fn``).
    logdensity_grad: pytree with the structure of ``position``, ∇ log p(x_t).
  """

  position: PyTree
  logdensity: jax.Array
  logdensity_grad: PyTree


class LangevinInfo(NamedTuple):
  """Diagnostics of one Langevin transition.

  Attributes:
    acceptance_rate: float32 scalar, min(1, α) of the Metropolis-Hastings test
      (always 1 for ULA).
    is_accepted: bool scalar, whether the proposal became the new position
      (always True for ULA).
  """

  acceptance_rate: jax.Array
  is_accepted: jax.Array


def _check_step_size(step_size) -> None:
  """Raises for a concrete, non-positive step size (traced values pass through)."""
  if isinstance(step_size, numbers.Real) and not step_size > 0:
    raise ValueError(f"step_size must be > 0, got {step_size}; pass a positive float.")


def _check_logdensity(logdensity) -> None:
  if len(getattr(logdensity, "shape", ())) != 0:
    raise ValueError(
        "logdensity_fn must return a scalar, got shape "
        f"{logdensity.shape}; sum over the dimensions of one position and "
        "use jax.vmap for many chains."
    )


def init(position: PyTree, logdensity_fn: LogDensityFn) -> LangevinState:
  """Creates the state of a Langevin chain at ``position``.

  Args:
    position: pytree of float arrays (any shapes), the initial sample x_0 of ONE chain.
      For C chains, ``jax.vmap(lambda x: init(x, logdensity_fn))(positions)``.
    logdensity_fn: maps a position to the scalar log p(x) in nats (unnormalised is fine).

  Returns:
    A ``LangevinState`` holding x_0, log p(x_0) and ∇ log p(x_0).

  Raises:
    ValueError: if ``position`` has no leaves or a non-float leaf, or
      ``logdensity_fn`` does not return a scalar.

  Source: Roberts & Tweedie (1996), "Exponential convergence of Langevin distributions
  and their discrete approximations", Bernoulli 2(4); BlackJAX ``mcmc/mala.py``.
  """
  leaves = jax.tree_util.tree_leaves(position)
  if not leaves or not all(jnp.issubdtype(jnp.result_type(x), jnp.floating) for x in leaves):
    raise ValueError(
        "position must be a pytree with at least one leaf, all float arrays; got "
        f"dtypes {[jnp.result_type(x) for x in leaves]}. Cast it with .astype(float)."
    )
  _check_logdensity(jax.eval_shape(logdensity_fn, position))
  logdensity, logdensity_grad = jax.value_and_grad(logdensity_fn)(position)
  return LangevinState(position, logdensity, logdensity_grad)


def _noise_and_uniform(
    key: jax.Array, position: PyTree, with_uniform: bool
) -> tuple[PyTree, jax.Array | None]:
  """Standard normal noise shaped like ``position`` and, optionally, one U(0, 1) scalar.

  Random-bit generation dominates the cost of low-dimensional chains, so each leaf gets
  one key and ONE draw of uniforms on (-1, 1), mapped to N(0, 1) by √2·erfinv (as
  ``jax.random.normal`` does); the Metropolis-Hastings uniform rides along as one extra
  element of the first leaf's draw instead of costing a key split and a second draw.
  """
  leaves, treedef = jax.tree_util.tree_flatten(position)
  keys = [key] if len(leaves) == 1 else list(jax.random.split(key, len(leaves)))
  noise, uniform = [], None
  for index, (leaf_key, leaf) in enumerate(zip(keys, leaves)):
    dtype = jnp.promote_types(jnp.result_type(leaf), jnp.float32)
    size = int(np.prod(jnp.shape(leaf)))
    extra = 1 if (with_uniform and index == 0) else 0
    low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    draw = jax.random.uniform(leaf_key, (size + extra,), dtype, low, 1.0)
    normal = np.sqrt(2.0).astype(dtype) * jax.scipy.special.erfinv(draw[:size])
    noise.append(normal.reshape(jnp.shape(leaf)).astype(jnp.result_type(leaf)))
    if extra:
      uniform = (0.5 * (draw[size] + 1.0)).astype(jnp.float32)  # U(0, 1)
  return jax.tree_util.tree_unflatten(treedef, noise), uniform


def _langevin_proposal(
    key: jax.Array,
    state: LangevinState,
    logdensity_fn: LogDensityFn,
    step_size,
    with_uniform: bool,
) -> tuple[LangevinState, PyTree, jax.Array | None]:
  """One Euler-Maruyama step x + η∇log p(x) + √(2η)ξ; returns the new state, ξ, and
  a U(0, 1) scalar if ``with_uniform``."""
  noise, uniform = _noise_and_uniform(key, state.position, with_uniform)
  scale = jnp.sqrt(2.0 * step_size)
  position = jax.tree_util.tree_map(
      lambda x, g, n: (x + step_size * g + scale * n).astype(jnp.result_type(x)),
      state.position,
      state.logdensity_grad,
      noise,
  )
  logdensity, logdensity_grad = jax.value_and_grad(logdensity_fn)(position)
  return LangevinState(position, logdensity, logdensity_grad), noise, uniform


def ula_step(
    key: jax.Array, state: LangevinState, logdensity_fn: LogDensityFn, step_size
) -> tuple[LangevinState, LangevinInfo]:
  """One step of the unadjusted Langevin algorithm (ULA).

  x_{t+1} = x_t - η ∇f(x_t) + √(2η) ξ with f = -log p and ξ ~ N(0, I). Every proposal
  is kept, so the chain's stationary law differs from p by O(η): for p = N(0, s²) its
  variance is 2η / (1 - (1 - η/s²)²) instead of s².

  Args:
    key: PRNG key (consumed; never stored).
    state: ``LangevinState`` at x_t (from ``init`` or a previous step).
    logdensity_fn: maps a position to the scalar log p(x) in nats.
    step_size: float scalar η > 0, the step size in
      x' = x + η∇log p(x) + √(2η)ξ (units of position², i.e. a time step).

  Returns:
    ``(new_state, info)`` where ``info.acceptance_rate`` is 1 and ``info.is_accepted``
    is True.

  Raises:
    ValueError: if ``step_size`` is a concrete non-positive number.

  Source: Roberts & Tweedie (1996), "Exponential convergence of Langevin distributions
  and their discrete approximations", Bernoulli 2(4) (the "ULA" chain); the course
  slide's Langevin update.
  """
  _check_step_size(step_size)
  new_state, _, _ = _langevin_proposal(key, state, logdensity_fn, step_size, False)
  info = LangevinInfo(jnp.ones((), jnp.float32), jnp.ones((), jnp.bool_))
  return new_state, info


def _sum_of_squares(tree: PyTree) -> jax.Array:
  """Σ over all leaves and entries of x², in float32."""
  squares = [
      jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree_util.tree_leaves(tree)
  ]
  return sum(squares[1:], squares[0])


def mala_step(
    key: jax.Array, state: LangevinState, logdensity_fn: LogDensityFn, step_size
) -> tuple[LangevinState, LangevinInfo]:
  """One step of the Metropolis-adjusted Langevin algorithm (MALA).

  Proposes x' = x + η∇log p(x) + √(2η)ξ (the ULA step) and accepts it with probability
  min(1, α), log α = log p(x') - log p(x) + log q(x | x') - log q(x' | x), where
  q(y | x) = N(y; x + η∇log p(x), 2η I). Since x' - x - η∇log p(x) = √(2η)ξ, the
  forward term is log q(x' | x) = -|ξ|²/2 (+ const), and the reverse term is
  -|x - x' - η∇log p(x')|² / (4η). The test is done in float32 by comparing log u,
  u ~ U(0, 1), with log α. p is then exactly stationary for every η > 0.

  Args:
    key: PRNG key (consumed; never stored).
    state: ``LangevinState`` at x_t (from ``init`` or a previous step).
    logdensity_fn: maps a position to the scalar log p(x) in nats.
    step_size: float scalar η > 0, the step size in
      x' = x + η∇log p(x) + √(2η)ξ (units of position², i.e. a time step).

  Returns:
    ``(new_state, info)``: the accepted proposal or the unchanged state, and
    ``LangevinInfo(acceptance_rate=min(1, α) (float32), is_accepted (bool))``.

  Raises:
    ValueError: if ``step_size`` is a concrete non-positive number.

  Source: Roberts & Tweedie (1996), "Exponential convergence of Langevin distributions
  and their discrete approximations", Bernoulli 2(4) (the "MALA" chain).
  """
  _check_step_size(step_size)
  proposal, noise, uniform = _langevin_proposal(key, state, logdensity_fn, step_size, True)
  reverse_residual = jax.tree_util.tree_map(
      lambda x, y, g: x.astype(jnp.float32)
      - y.astype(jnp.float32)
      - step_size * g.astype(jnp.float32),
      state.position,
      proposal.position,
      proposal.logdensity_grad,
  )
  log_q_reverse = -_sum_of_squares(reverse_residual) / (4.0 * step_size)
  log_q_forward = -0.5 * _sum_of_squares(noise)
  log_alpha = (
      proposal.logdensity.astype(jnp.float32)
      - state.logdensity.astype(jnp.float32)
      + log_q_reverse
      - log_q_forward
  )
  # A NaN proposal (e.g. log p = -inf there) is rejected.
  log_alpha = jnp.where(jnp.isnan(log_alpha), -jnp.inf, log_alpha)
  is_accepted = jnp.log(uniform) < log_alpha
  new_state = jax.tree_util.tree_map(
      lambda new, old: jnp.where(is_accepted, new, old), proposal, state
  )
  acceptance_rate = jnp.exp(jnp.minimum(log_alpha, 0.0))
  return new_state, LangevinInfo(acceptance_rate, is_accepted)

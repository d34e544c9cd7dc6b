"""Running Markov chains: a ``lax.scan`` loop over any pure, key-first kernel.

A kernel here is any ``step_fn(key, state) -> (state, info)``; close over the
kernel's other arguments with ``functools.partial``::

    step_fn = functools.partial(langevin.mala_step, logdensity_fn=logdensity_fn,
                                step_size=0.1)
    state = langevin.init(x0, logdensity_fn)
    final_state, positions = run_chain(key, step_fn, state, num_steps=1000)

Many chains (C of them) come from ``jax.vmap`` over keys and initial states, with the
kernel and the number of steps closed over (they are not arrays)::

    keys = jax.random.split(key, C)
    states = jax.vmap(lambda x: langevin.init(x, logdensity_fn))(x0_CxD)
    run = jax.jit(jax.vmap(lambda k, s: run_chain(k, step_fn, s, num_steps)))
    final_states, positions_CxSxD = run(keys, states)   # S = num_steps

Gibbs kernels in ``gibbs`` return the new state only; adapt them with
``lambda k, x: (gibbs.systematic_sweep(k, x, conditional_logits_fn), None)``.

Nothing here is jitted; ``jax.jit`` the whole loop yourself (one compilation per
``num_steps`` and ``step_fn``).
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import jax

__all__ = ["run_chain", "run_chain_with_info"]

PyTree = Any
StepFn = Callable[[jax.Array, PyTree], tuple[PyTree, PyTree]]


def _check_num_steps(num_steps) -> int:
  try:
    num_steps = operator.index(num_steps)
  except TypeError:
    raise ValueError(
        f"num_steps must be a Python int (static), got {type(num_steps).__name__}; "
        "close over it instead of tracing it."
    ) from None
  if num_steps < 1:
    raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
  return num_steps


def run_chain_with_info(
    key: jax.Array, step_fn: StepFn, state: PyTree, num_steps: int
) -> tuple[PyTree, PyTree, PyTree]:
  """Runs ``num_steps`` transitions of ``step_fn`` and keeps positions and infos.

  Args:
    key: PRNG key; split into one key per step (never stored).
    step_fn: pure kernel ``step_fn(key, state) -> (state, info)``.
    state: initial state of ONE chain. If it has a ``position`` attribute (e.g. a
      ``LangevinState``), that is what is recorded; otherwise the whole state is.
    num_steps: Python int S >= 1, the number of transitions.

  Returns:
    ``(final_state, positions, infos)``: the state after S steps, the positions after
    each step stacked on a leading axis (each leaf ``[S, ...]``; the initial position
    is not included), and the infos stacked the same way.

  Raises:
    ValueError: if ``num_steps`` is not a Python int >= 1.

  Source: the BlackJAX "inference loop" idiom (``lax.scan`` over split keys).
  """
  num_steps = _check_num_steps(num_steps)

  def one_step(carry, step_key):
    new_state, info = step_fn(step_key, carry)
    position = getattr(new_state, "position", new_state)
    return new_state, (position, info)

  keys = jax.random.split(key, num_steps)
  final_state, (positions, infos) = jax.lax.scan(one_step, state, keys)
  return final_state, positions, infos


def run_chain(
    key: jax.Array, step_fn: StepFn, state: PyTree, num_steps: int
) -> tuple[PyTree, PyTree]:
  """Runs ``num_steps`` transitions of ``step_fn`` with ``lax.scan``.

  For C chains, ``jax.vmap(lambda k, s: run_chain(k, step_fn, s, num_steps))``
  over ``jax.random.split(key, C)`` and a batched initial state (see the module
  docstring). Use ``run_chain_with_info`` for acceptance rates.

  Args:
    key: PRNG key; split into one key per step (never stored).
    step_fn: pure kernel ``step_fn(key, state) -> (state, info)``.
    state: initial state of ONE chain. If it has a ``position`` attribute (e.g. a
      ``LangevinState``), that is what is recorded; otherwise the whole state is.
    num_steps: Python int S >= 1, the number of transitions.

  Returns:
    ``(final_state, positions)``: the state after S steps and the positions after each
    step, each leaf stacked as ``[S, ...]`` (the initial position is not included).

  Raises:
    ValueError: if ``num_steps`` is not a Python int >= 1.

  Source: the BlackJAX "inference loop" idiom (``lax.scan`` over split keys).
  """
  final_state, positions, _ = run_chain_with_info(key, step_fn, state, num_steps)
  return final_state, positions

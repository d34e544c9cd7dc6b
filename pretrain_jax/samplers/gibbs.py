"""Gibbs samplers for discrete models, the binary RBM with CD-k / PCD, and Ising helpers.

Generic Gibbs kernels act on a state ``int[n]`` (site values in {0, ..., num_values-1})
and a ``conditional_logits_fn(state, i) -> [num_values]`` giving the unnormalised
log P(X_i = v | x_{-i}) (float32). ``random_scan_step`` resamples one uniformly chosen
site, ``systematic_sweep`` visits every site once in order. Both return the new state
(the state is the array itself); for ``chains.run_chain`` wrap them as
``lambda k, x: (systematic_sweep(k, x, fn), None)``; for C chains ``jax.vmap`` over keys
and states.

The restricted Boltzmann machine uses the course slides' names,
``params = {"W": [H, V], "b": [H], "c": [V]}`` with energy
E(x, h) = -hᵀWx - bᵀh - cᵀx, so p(h_j = 1 | x) = σ(b_j + W_j·x) and
p(x_k = 1 | h) = σ(c_k + hᵀW_{·k}). All RBM functions accept one visible vector ``[V]``
or any batch ``[..., V]``.

The Ising helpers map spins s ∈ {0, 1} to σ = 2s - 1 ∈ {-1, +1} with
p(σ) ∝ exp(½ σᵀJσ + hᵀσ); inverse temperature is folded into J and h (J = βJ', h = βh').

Nothing here is jitted.
"""

from __future__ import annotations

import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "random_scan_step",
    "systematic_sweep",
    "rbm_hidden_probs",
    "rbm_visible_probs",
    "rbm_block_gibbs_step",
    "rbm_free_energy",
    "contrastive_divergence",
    "persistent_contrastive_divergence",
    "ising_conditional_logits_fn",
    "ising_grid_coupling",
    "ising_checkerboard_sweep",
]

ConditionalLogitsFn = Callable[[jax.Array, jax.Array], jax.Array]


# --------------------------------------------------------------------------------------
# Generic Gibbs kernels.
# --------------------------------------------------------------------------------------


def _check_sites(state: jax.Array) -> None:
  if jnp.ndim(state) != 1:
    raise ValueError(
        f"Gibbs state must be int[n] for one chain, got shape {jnp.shape(state)}; "
        "use jax.vmap for many chains."
    )


def _check_logits_shape(shape) -> None:
  if len(shape) != 1:
    raise ValueError(
        "conditional_logits_fn(state, i) must return logits [num_values], got shape " f"{shape}."
    )


def _resample_site(key: jax.Array, state: jax.Array, i, conditional_logits_fn) -> jax.Array:
  logits = conditional_logits_fn(state, i).astype(jnp.float32)
  _check_logits_shape(logits.shape)
  value = jax.random.categorical(key, logits)
  return state.at[i].set(value.astype(state.dtype))


def random_scan_step(
    key: jax.Array, state: jax.Array, conditional_logits_fn: ConditionalLogitsFn
) -> jax.Array:
  """One random-scan Gibbs step: pick a site uniformly and resample it.

  Picks i ~ U{0, ..., n-1} and draws x_i ~ P(X_i | x_{-i}) = softmax(logits), leaving
  every other site unchanged. Each step leaves P invariant; composed over many steps it
  converges to P for any connected model with positive conditionals.

  Args:
    key: PRNG key (consumed; never stored).
    state: int array ``[n]``, the current configuration of one chain.
    conditional_logits_fn: ``fn(state int[n], i int scalar) -> float [num_values]``,
      unnormalised log P(X_i = v | x_{-i}) in nats (must not depend on ``state[i]``).

  Returns:
    The new configuration, int ``[n]`` with the dtype of ``state``.

  Raises:
    ValueError: if ``state`` is not 1-D or the logits are not 1-D.

  Source: Geman & Geman (1984), IEEE TPAMI 6(6); the course slide "Gibbs sampling"
  (random-scan version).
  """
  _check_sites(state)
  key_site, key_value = jax.random.split(key)
  i = jax.random.randint(key_site, (), 0, state.shape[0])
  return _resample_site(key_value, state, i, conditional_logits_fn)


def systematic_sweep(
    key: jax.Array, state: jax.Array, conditional_logits_fn: ConditionalLogitsFn
) -> jax.Array:
  """One systematic-scan Gibbs sweep: resample sites i = 0, 1, ..., n-1 in order.

  Each site is drawn from P(X_i | x_{-i}) given the already updated sites < i, by
  Gumbel-max (argmax of logits + Gumbel noise, with the sweep's noise drawn at once).

  Args:
    key: PRNG key (consumed; never stored).
    state: int array ``[n]``, the current configuration of one chain.
    conditional_logits_fn: ``fn(state int[n], i int scalar) -> float [num_values]``,
      unnormalised log P(X_i = v | x_{-i}) in nats (must not depend on ``state[i]``).

  Returns:
    The configuration after the sweep, int ``[n]`` with the dtype of ``state``.

  Raises:
    ValueError: if ``state`` is not 1-D or the logits are not 1-D.

  Source: Geman & Geman (1984), IEEE TPAMI 6(6); the course slide "Gibbs sampling"
  (deterministic sweep).
  """
  _check_sites(state)
  n = state.shape[0]
  logits_shape = jax.eval_shape(conditional_logits_fn, state, jnp.zeros((), jnp.int32)).shape
  _check_logits_shape(logits_shape)
  # Gumbel-max sampling with the whole sweep's noise drawn at once (one RNG call).
  gumbels_NxK = jax.random.gumbel(key, (n,) + logits_shape, jnp.float32)

  def body(x, gumbels_and_site):
    gumbels, i = gumbels_and_site
    logits = conditional_logits_fn(x, i).astype(jnp.float32)
    value = jnp.argmax(logits + gumbels)
    return x.at[i].set(value.astype(x.dtype)), None

  state, _ = jax.lax.scan(body, state, (gumbels_NxK, jnp.arange(n)))
  return state


# --------------------------------------------------------------------------------------
# Restricted Boltzmann machine.
# --------------------------------------------------------------------------------------


def _check_rbm(params: dict, x: jax.Array, axis_size_name: str) -> tuple[int, int]:
  missing = {"W", "b", "c"} - set(params)
  if missing:
    raise ValueError(f"RBM params need keys W [H, V], b [H], c [V]; missing {sorted(missing)}.")
  num_hidden, num_visible = jnp.shape(params["W"])
  if jnp.shape(params["b"]) != (num_hidden,) or jnp.shape(params["c"]) != (num_visible,):
    raise ValueError(
        f"RBM params must be W [H, V], b [H], c [V]; got W {jnp.shape(params['W'])}, "
        f"b {jnp.shape(params['b'])}, c {jnp.shape(params['c'])}."
    )
  expected = num_visible if axis_size_name == "V" else num_hidden
  if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != expected:
    raise ValueError(
        f"expected a last axis of size {axis_size_name}={expected}, got shape " f"{jnp.shape(x)}."
    )
  return num_hidden, num_visible


def _lead(vector: jax.Array, ndim: int) -> jax.Array:
  """Reshapes a 1-D vector to rank ``ndim`` by adding leading unit axes."""
  return jnp.reshape(vector, (1,) * (ndim - 1) + vector.shape)


def rbm_hidden_probs(params: dict, v: jax.Array) -> jax.Array:
  """p(h_j = 1 | x) = σ(b_j + W_j·x) for a binary RBM.

  Args:
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    v: float ``[..., V]`` visible vectors (binary, or probabilities).

  Returns:
    float32 ``[..., H]`` hidden activation probabilities.

  Raises:
    ValueError: if the params or the last axis of ``v`` have the wrong shape.

  Source: Hinton (2010), "A Practical Guide to Training RBMs", eq. (7); course slides.
  """
  _check_rbm(params, v, "V")
  v = jnp.asarray(v, jnp.float32)
  pre = v @ params["W"].astype(jnp.float32).T
  return jax.nn.sigmoid(pre + _lead(params["b"].astype(jnp.float32), pre.ndim))


def rbm_visible_probs(params: dict, h: jax.Array) -> jax.Array:
  """p(x_k = 1 | h) = σ(c_k + hᵀW_{·k}) for a binary RBM.

  Args:
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    h: float ``[..., H]`` hidden vectors (binary, or probabilities).

  Returns:
    float32 ``[..., V]`` visible activation probabilities.

  Raises:
    ValueError: if the params or the last axis of ``h`` have the wrong shape.

  Source: Hinton (2010), "A Practical Guide to Training RBMs", eq. (8); course slides.
  """
  _check_rbm(params, h, "H")
  h = jnp.asarray(h, jnp.float32)
  pre = h @ params["W"].astype(jnp.float32)
  return jax.nn.sigmoid(pre + _lead(params["c"].astype(jnp.float32), pre.ndim))


def rbm_block_gibbs_step(key: jax.Array, params: dict, v: jax.Array) -> jax.Array:
  """One block-Gibbs step v -> h ~ p(h | v) -> v' ~ p(v | h) of a binary RBM.

  Args:
    key: PRNG key (consumed; never stored).
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    v: float ``[..., V]`` binary visible vectors (each leading index is a chain).

  Returns:
    float32 ``[..., V]``, the sampled binary visible vectors v'.

  Raises:
    ValueError: if the params or the last axis of ``v`` have the wrong shape.

  Source: Hinton (2002), "Training products of experts by minimizing contrastive
  divergence", Neural Computation 14(8); course slides (alternating Gibbs sampling).
  """
  probs_h = rbm_hidden_probs(params, v)
  num_hidden = probs_h.shape[-1]
  # One RNG call for both half-steps: uniforms [..., H + V].
  uniforms = jax.random.uniform(
      key, probs_h.shape[:-1] + (num_hidden + jnp.shape(v)[-1],), jnp.float32
  )
  h = (uniforms[..., :num_hidden] < probs_h).astype(jnp.float32)
  probs_v = rbm_visible_probs(params, h)
  return (uniforms[..., num_hidden:] < probs_v).astype(jnp.float32)


def rbm_free_energy(params: dict, v: jax.Array) -> jax.Array:
  """Free energy F(v) = -log Σ_h exp(-E(v, h)) = -cᵀv - Σ_j softplus(b_j + W_j·v).

  p(v) = exp(-F(v)) / Z, so -F is the unnormalised log-marginal of the visibles.

  Args:
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    v: float ``[..., V]`` visible vectors.

  Returns:
    float32 ``[...]`` free energies in nats.

  Raises:
    ValueError: if the params or the last axis of ``v`` have the wrong shape.

  Source: Hinton (2010), "A Practical Guide to Training RBMs", Section 16.1.
  """
  _check_rbm(params, v, "V")
  v = jnp.asarray(v, jnp.float32)
  pre = v @ params["W"].astype(jnp.float32).T
  pre = pre + _lead(params["b"].astype(jnp.float32), pre.ndim)
  return -(v @ params["c"].astype(jnp.float32)) - jnp.sum(jax.nn.softplus(pre), axis=-1)


def _check_k(k) -> int:
  if not isinstance(k, numbers.Integral) or k < 1:
    raise ValueError(f"k (Gibbs steps) must be a Python int >= 1, got {k!r}.")
  return int(k)


def _run_block_gibbs(key: jax.Array, params: dict, v: jax.Array, k: int) -> jax.Array:
  def body(x, step_key):
    return rbm_block_gibbs_step(step_key, params, x), None

  v, _ = jax.lax.scan(body, v, jax.random.split(key, k))
  return v


def _sufficient_statistics(params: dict, v: jax.Array) -> dict:
  """Batch means of (p(h|v) vᵀ, p(h|v), v), the RBM's Rao-Blackwellised statistics."""
  v = jnp.asarray(v, jnp.float32)
  probs_h = rbm_hidden_probs(params, v)
  num_hidden, num_visible = params["W"].shape
  v_BxV = v.reshape(-1, num_visible)
  ph_BxH = probs_h.reshape(-1, num_hidden)
  count = v_BxV.shape[0]
  return {
      "W": (ph_BxH.T @ v_BxV) / count,
      "b": jnp.mean(ph_BxH, axis=0),
      "c": jnp.mean(v_BxV, axis=0),
  }


def _difference(positive: dict, negative: dict, params: dict) -> dict:
  return {
      name: (positive[name] - negative[name]).astype(jnp.result_type(params[name]))
      for name in ("W", "b", "c")
  }


def contrastive_divergence(key: jax.Array, params: dict, v_data: jax.Array, k: int) -> dict:
  """CD-k update of a binary RBM: the ascent direction for the log-likelihood.

  Runs k block-Gibbs steps from each data vector v⁰ to a sample v^k and returns
  ΔW = ⟨p(h|v⁰) v⁰ᵀ⟩_data - ⟨p(h|v^k) v^kᵀ⟩,  Δb = ⟨p(h|v⁰)⟩ - ⟨p(h|v^k)⟩,
  Δc = ⟨v⁰⟩ - ⟨v^k⟩, averaged over all leading axes of ``v_data``. As k → ∞ its
  expectation is the exact gradient ∂ mean log p(v⁰) / ∂θ. Following Hinton's guide,
  the statistics use the hidden PROBABILITIES p(h=1|v) (a Rao-Blackwellised,
  lower-variance estimate with the same expectation), while the chain itself samples
  binary hiddens and visibles. Add ``learning_rate * update`` to the params to train.

  Args:
    key: PRNG key (consumed; never stored).
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    v_data: float ``[..., V]`` binary data vectors (a batch ``[B, V]`` or one ``[V]``).
    k: Python int >= 1, the number of block-Gibbs steps.

  Returns:
    ``{"W": [H, V], "b": [H], "c": [V]}`` in the params' dtypes, the CD-k estimate of
    the log-likelihood gradient (nats per example per unit parameter).

  Raises:
    ValueError: if ``k`` is not a Python int >= 1 or shapes do not match.

  Source: Hinton (2002), "Training products of experts by minimizing contrastive
  divergence", Neural Computation 14(8); Hinton (2010), "A Practical Guide to Training
  RBMs", Section 3 (which statistics use probabilities); course slides (CD-k).
  """
  k = _check_k(k)
  _check_rbm(params, v_data, "V")
  v_data = jnp.asarray(v_data, jnp.float32)
  v_model = _run_block_gibbs(key, params, v_data, k)
  positive = _sufficient_statistics(params, v_data)
  negative = _sufficient_statistics(params, jax.lax.stop_gradient(v_model))
  return _difference(positive, negative, params)


def persistent_contrastive_divergence(
    key: jax.Array, params: dict, v_data: jax.Array, chain_v: jax.Array, k: int
) -> tuple[dict, jax.Array]:
  """PCD-k update of a binary RBM (stochastic maximum likelihood).

  Like ``contrastive_divergence`` but the negative phase comes from persistent
  "fantasy" chains ``chain_v`` advanced k block-Gibbs steps under the current params
  (and carried to the next update) instead of chains restarted at the data.

  Args:
    key: PRNG key (consumed; never stored).
    params: ``{"W": float [H, V], "b": float [H], "c": float [V]}``.
    v_data: float ``[..., V]`` binary data vectors.
    chain_v: float ``[..., V]`` binary persistent chain states (any number of chains,
      e.g. ``[C, V]``; initialise from data or at random).
    k: Python int >= 1, the number of block-Gibbs steps per update.

  Returns:
    ``(update, new_chain_v)``: the update dict ``{"W": [H, V], "b": [H], "c": [V]}``
    (positive minus negative statistics, with hidden probabilities as in CD-k), and
    the advanced chains, float32 with the shape of ``chain_v``.

  Raises:
    ValueError: if ``k`` is not a Python int >= 1 or shapes do not match.

  Source: Tieleman (2008), "Training restricted Boltzmann machines using
  approximations to the likelihood gradient", ICML; Younes (1989).
  """
  k = _check_k(k)
  _check_rbm(params, v_data, "V")
  _check_rbm(params, chain_v, "V")
  v_data = jnp.asarray(v_data, jnp.float32)
  new_chain_v = _run_block_gibbs(key, params, jnp.asarray(chain_v, jnp.float32), k)
  positive = _sufficient_statistics(params, v_data)
  negative = _sufficient_statistics(params, jax.lax.stop_gradient(new_chain_v))
  return _difference(positive, negative, params), new_chain_v


# --------------------------------------------------------------------------------------
# Ising models.
# --------------------------------------------------------------------------------------


def ising_conditional_logits_fn(coupling: jax.Array, field: jax.Array) -> ConditionalLogitsFn:
  """Builds the Gibbs conditionals of an Ising model on spins s ∈ {0, 1}.

  With σ = 2s - 1 and p(σ) ∝ exp(½ σᵀJσ + hᵀσ), the conditional of site i is
  P(s_i = 1 | s_{-i}) = σ(2 m_i) with local field m_i = Σ_{j≠i} J_ij σ_j + h_i, i.e.
  logits ``[-m_i, m_i]`` for values (0, 1).

  Args:
    coupling: float ``[n, n]`` symmetric J, in units of 1/temperature (β J'). The
      diagonal is ignored.
    field: float ``[n]`` external field h, in units of 1/temperature (β h').

  Returns:
    ``conditional_logits_fn(state int[n], i) -> float32 [2]`` for ``random_scan_step``
    and ``systematic_sweep``.

  Raises:
    ValueError: if the shapes are not ``[n, n]`` and ``[n]``.

  Source: Ising (1925); Geman & Geman (1984); course slides (Gibbs on an Ising grid).
  """
  coupling = jnp.asarray(coupling, jnp.float32)
  field = jnp.asarray(field, jnp.float32)
  if coupling.ndim != 2 or coupling.shape[0] != coupling.shape[1]:
    raise ValueError(f"coupling must be [n, n], got shape {coupling.shape}.")
  if field.shape != (coupling.shape[0],):
    raise ValueError(f"field must be [n] with n={coupling.shape[0]}, got {field.shape}.")
  coupling = coupling * (1.0 - jnp.eye(coupling.shape[0], dtype=jnp.float32))

  def conditional_logits_fn(state: jax.Array, i: jax.Array) -> jax.Array:
    spins = 2.0 * state.astype(jnp.float32) - 1.0
    local_field = coupling[i] @ spins + field[i]
    return jnp.stack([-local_field, local_field])

  return conditional_logits_fn


def ising_grid_coupling(height: int, width: int, *, periodic: bool = True) -> np.ndarray:
  """Nearest-neighbour adjacency of a ``height × width`` grid, sites in row-major order.

  Entry (i, j) counts how many of the four moves (up, down, left, right) lead from i to
  j, so a periodic dimension of size 2 gives 2 (both moves reach the same neighbour),
  matching the roll-based ``ising_checkerboard_sweep``. Multiply by βJ for a coupling.

  Args:
    height: Python int >= 2, grid rows.
    width: Python int >= 2, grid columns.
    periodic: wrap around the edges (a torus) if True, free boundaries otherwise.

  Returns:
    float32 numpy array ``[height*width, height*width]``, symmetric, zero diagonal.

  Raises:
    ValueError: if a side is < 2.

  Source: Ising (1925); course slides (2-D Ising grid).
  """
  if height < 2 or width < 2:
    raise ValueError(f"grid sides must be >= 2, got {height}x{width}.")
  n = height * width
  adjacency = np.zeros((n, n), np.float32)
  for r in range(height):
    for c in range(width):
      for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        rr, cc = r + dr, c + dc
        if periodic:
          rr, cc = rr % height, cc % width
        elif not (0 <= rr < height and 0 <= cc < width):
          continue
        adjacency[r * width + c, rr * width + cc] += 1.0
  return adjacency


def ising_checkerboard_sweep(key: jax.Array, spins: jax.Array, coupling, field=0.0) -> jax.Array:
  """One checkerboard block-Gibbs sweep of a periodic 2-D Ising grid.

  The sites with (row + col) even are conditionally independent given the odd ones
  (and vice versa), so each colour is resampled in parallel:
  P(s = 1 | neighbours) = σ(2 (J Σ_nn σ + h)). One sweep updates every site once and
  targets the same p(σ) ∝ exp(J Σ_⟨ij⟩ σ_iσ_j + h Σ σ_i) as ``systematic_sweep`` with
  ``ising_conditional_logits_fn(J * ising_grid_coupling(H, W), h)``.

  Args:
    key: PRNG key (consumed; never stored).
    spins: int or float ``[..., H, W]`` spins in {0, 1}; leading axes are chains.
      H and W must be even (a torus is two-colourable only then).
    coupling: float scalar J, nearest-neighbour coupling in units of 1/temperature.
    field: float scalar h, external field in units of 1/temperature.

  Returns:
    The new spins with the shape and dtype of ``spins``.

  Raises:
    ValueError: if ``spins`` has rank < 2 or an odd side.

  Source: course slides (Gibbs on an Ising grid); the classic red-black ordering.
  """
  if jnp.ndim(spins) < 2:
    raise ValueError(f"spins must be [..., H, W], got shape {jnp.shape(spins)}.")
  height, width = jnp.shape(spins)[-2:]
  if height % 2 or width % 2:
    raise ValueError(
        f"checkerboard sweep needs even grid sides on a torus, got {height}x{width}; "
        "use systematic_sweep with ising_grid_coupling instead."
    )
  dtype = spins.dtype
  rows = np.arange(height)[:, None]
  cols = np.arange(width)[None, :]
  even_HxW = jnp.asarray((rows + cols) % 2 == 0)
  even = jnp.broadcast_to(even_HxW, jnp.shape(spins))
  sigma = 2.0 * jnp.asarray(spins, jnp.float32) - 1.0
  uniforms = jax.random.uniform(key, (2,) + sigma.shape, jnp.float32)  # one RNG call
  for colour_mask, colour_uniform in ((even, uniforms[0]), (~even, uniforms[1])):
    neighbours = (
        jnp.roll(sigma, 1, axis=-2)
        + jnp.roll(sigma, -1, axis=-2)
        + jnp.roll(sigma, 1, axis=-1)
        + jnp.roll(sigma, -1, axis=-1)
    )
    local_field = coupling * neighbours + field
    probs = jax.nn.sigmoid(2.0 * local_field)
    up = colour_uniform < probs
    sigma = jnp.where(colour_mask, jnp.where(up, 1.0, -1.0), sigma)
  return ((sigma + 1.0) / 2.0).astype(dtype)

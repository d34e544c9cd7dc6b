"""Pure attention functions and positional encodings, in McAllester's notation.

Notation follows David McAllester's TTIC 31230 "Fundamentals of Deep Learning" slides on
the Transformer: ``M[t, J]`` is a sequence of T vectors of dimension J (one row per
position), ``W^Q[h, k, j]`` and ``W^K[h, k, j]`` map a row to a K-dimensional query and
key for head h, and ``W^V[h, i, j]`` maps it to an I-dimensional value. All functions act
on ONE sequence; batch with ``jax.vmap``. Nothing here is jitted: callers decide.

Shape letters in local names: T positions, J model (input) dim, H heads, K query/key
dim, I value dim.

Masks are boolean, ``True`` = may attend. A query position whose mask row is all False
("fully masked") attends to nothing: its attention weights are all zero and its output
is the zero vector (no NaN, finite gradients). Attention scores and the softmax are
computed in float32 whatever the input dtype; the weights are cast back to the value
dtype only for the final weighted sum.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

# Replaces masked scores before the softmax: finite (unlike -inf), and so negative that
# exp(_MASKED_SCORE - shift) underflows to exactly 0 in float32 for any
# shift >= _EMPTY_ROW_SHIFT.
_MASKED_SCORE = -0.7 * float(np.finfo(np.float32).max)
# Lower bound on the max-shift of the softmax: only fully masked rows (max = _MASKED_SCORE)
# reach it, so all their exponentials underflow to 0 and the row comes out as zeros.
_EMPTY_ROW_SHIFT = -1e30
_TINY = float(np.finfo(np.float32).tiny)


@jax.custom_jvp
def _softmax_or_zero(scores):
  """Softmax over the last axis (float32); a row of all _MASKED_SCORE gives all zeros.

  Equal to jax.nn.softmax on every row holding a score above _EMPTY_ROW_SHIFT: there the
  largest exponential is exp(0) = 1, so the denominator is >= 1 and adding float32 tiny
  leaves it unchanged. Rows with all scores below it have zero exponentials and give 0/tiny.
  This avoids a select after the softmax, which slowed XLA:CPU's fused attention by up to
  2x (benchmarks/attention.py).
  """
  shift = jax.lax.stop_gradient(
      jnp.maximum(jnp.max(scores, axis=-1, keepdims=True), _EMPTY_ROW_SHIFT))
  unnormalized = jnp.exp(scores - shift)
  return unnormalized / (jnp.sum(unnormalized, axis=-1, keepdims=True) + _TINY)


@_softmax_or_zero.defjvp
def _softmax_or_zero_jvp(primals, tangents):
  # d softmax = α ⊙ (ds - <α, ds>), as for jax.nn.softmax; zero rows stay zero.
  (scores,), (scores_dot,) = primals, tangents
  alpha = _softmax_or_zero(scores)
  return alpha, alpha * (scores_dot - jnp.sum(alpha * scores_dot, axis=-1, keepdims=True))


def attention_lookup(key, memory):
  """Soft dictionary lookup of one key in a memory (the slides' "Procedure Lookup").

  s[t] = key · M[t],  α = softmax_t s,  V = Σ_t α[t] M[t].

  Source: D. McAllester, TTIC 31230 Fundamentals of Deep Learning, "Transformers"
  slides, Procedure Lookup(key, M) (no scaling, memory rows serve as keys and values).

  Args:
    key: float array [J], the key.
    memory: float array [T, J], the memory M, one vector per row.

  Returns:
    float array [J] (dtype of ``memory``): the α-weighted average of the rows of M.
    The softmax is computed in float32.

  Raises:
    ValueError: if ranks or the dimension J do not match.
  """
  if key.ndim != 1 or memory.ndim != 2 or memory.shape[1] != key.shape[0]:
    raise ValueError(
        f"attention_lookup expects key [J] and memory [T, J]; got key {key.shape} and"
        f" memory {memory.shape}: pass a single key vector and a 2-D memory.")
  scores_T = jnp.einsum("j,tj->t", key, memory, preferred_element_type=jnp.float32)
  alpha_T = jax.nn.softmax(scores_T.astype(jnp.float32), axis=-1)
  return jnp.einsum("t,tj->j", alpha_T.astype(memory.dtype), memory)


def causal_mask(num_positions):
  """Causal (decoder) attention mask: position t may attend to positions t' <= t.

  Source: Vaswani et al. 2017, "Attention Is All You Need", Sec. 3.2.3 (masking of
  illegal connections in the decoder).

  Args:
    num_positions: int T >= 1, the sequence length (a Python int, static under jit).

  Returns:
    bool array [T, T]; entry [t, t'] is True iff t' <= t (lower triangle, diagonal
    included).

  Raises:
    ValueError: if ``num_positions`` < 1.
  """
  if num_positions < 1:
    raise ValueError(f"causal_mask needs num_positions >= 1, got {num_positions}.")
  return jnp.tril(jnp.ones((num_positions, num_positions), dtype=bool))


def _check_projections(m, w_query, w_key, w_value=None):
  """Raises a ValueError unless the shapes fit M[T, J], W^Q, W^K [H, K, J], W^V [H, I, J]."""
  ok = (m.ndim == 2 and w_query.ndim == 3 and w_query.shape == w_key.shape
        and w_query.shape[2] == m.shape[1])
  if w_value is not None:
    ok = ok and (w_value.ndim == 3 and w_value.shape[0] == w_query.shape[0]
                 and w_value.shape[2] == m.shape[1])
  if not ok:
    value_shape = None if w_value is None else w_value.shape
    raise ValueError(
        "expected m [T, J], w_query and w_key [H, K, J], w_value [H, I, J]; got m"
        f" {m.shape}, w_query {w_query.shape}, w_key {w_key.shape}, w_value"
        f" {value_shape}. Batch with jax.vmap over m, not by adding a leading axis.")


def attention_weights(m, w_query, w_key, *, mask=None):
  """Multi-head self-attention weights α[h, t, t'] (the softmax, before the values).

  Query[h, t, k] = Σ_j W^Q[h, k, j] M[t, j],  Key[h, t, k] = Σ_j W^K[h, k, j] M[t, j],
  s[h, t, t'] = Σ_k Query[h, t, k] Key[h, t', k] / √K,  α[h, t, :] = softmax_{t'} s[h, t, :].

  Masked entries (mask[t, t'] False) get α = 0; a fully masked row t gets α[h, t, :] = 0.

  Source: D. McAllester, TTIC 31230 "Transformers" slides (multi-head self-attention
  index equations); Vaswani et al. 2017, Eq. 1 (scaled dot-product attention).

  Args:
    m: float array [T, J], the input sequence M (any float dtype, e.g. bf16).
    w_query: float array [H, K, J], query projection W^Q.
    w_key: float array [H, K, J], key projection W^K.
    mask: optional bool array [T, T]; mask[t, t'] True iff position t may attend to t'.

  Returns:
    float32 array [H, T, T] of attention weights; each row sums to 1 (0 if fully masked).

  Raises:
    ValueError: if the shapes do not fit, or the mask is not [T, T].
  """
  _check_projections(m, w_query, w_key)
  num_positions, key_dim = m.shape[0], w_query.shape[1]
  # 1/√K is folded into the T×K queries rather than the T×T scores (fewer multiplies; for
  # bf16 inputs it costs one extra bf16 rounding of the queries). The [T, H, K] layout and
  # this folding measured fastest on XLA:CPU and as fast as jax.nn.dot_product_attention on
  # GPU (benchmarks/attention.py).
  scale = jnp.asarray(1.0 / math.sqrt(key_dim), dtype=m.dtype)
  query_TxHxK = jnp.einsum("hkj,tj->thk", w_query, m) * scale
  key_TxHxK = jnp.einsum("hkj,tj->thk", w_key, m)
  scores_HxTxT = jnp.einsum("thk,shk->hts", query_TxHxK, key_TxHxK,
                            preferred_element_type=jnp.float32).astype(jnp.float32)
  if mask is not None:
    mask = jnp.asarray(mask)
    if mask.shape != (num_positions, num_positions) or mask.dtype != jnp.bool_:
      raise ValueError(
          f"mask must be a bool array [T, T] = {(num_positions, num_positions)}, got"
          f" {mask.dtype} {mask.shape}; build it with causal_mask(T) or a padding outer"
          " product.")
    scores_HxTxT = jnp.where(mask[None, :, :], scores_HxTxT, _MASKED_SCORE)
  return _softmax_or_zero(scores_HxTxT)


def multi_head_self_attention(m, w_query, w_key, w_value, *, mask=None):
  """Multi-head self-attention of one sequence, heads concatenated (no output projection).

  Value[h, t, i] = Σ_j W^V[h, i, j] M[t, j],  V[h, t, i] = Σ_{t'} α[h, t, t'] Value[h, t', i],
  output[t, (h, i)] = V[h, t, i] with heads in order h = 1..H, i.e. columns
  [V[1, t, :], V[2, t, :], ..., V[H, t, :]]. α is ``attention_weights(m, w_query, w_key,
  mask=mask)``; a fully masked query row outputs zeros.

  Source: D. McAllester, TTIC 31230 "Transformers" slides (multi-head self-attention);
  Vaswani et al. 2017, Eq. 1-2 (without W^O, which lives in the NNX module).

  Args:
    m: float array [T, J], the input sequence M.
    w_query: float array [H, K, J], query projection W^Q.
    w_key: float array [H, K, J], key projection W^K.
    w_value: float array [H, I, J], value projection W^V.
    mask: optional bool array [T, T]; mask[t, t'] True iff position t may attend to t'.

  Returns:
    array [T, H*I] in the value dtype (the float32 weights are cast to it for the sum).

  Raises:
    ValueError: if the shapes do not fit, or the mask is not [T, T].
  """
  _check_projections(m, w_query, w_key, w_value)
  num_positions = m.shape[0]
  num_heads, value_dim = w_value.shape[0], w_value.shape[1]
  alpha_HxTxT = attention_weights(m, w_query, w_key, mask=mask)
  value_TxHxI = jnp.einsum("hij,tj->thi", w_value, m)
  out_TxHxI = jnp.einsum("hts,shi->thi", alpha_HxTxT.astype(value_TxHxI.dtype), value_TxHxI)
  return out_TxHxI.reshape(num_positions, num_heads * value_dim)


def dial_positions(num_positions, num_dials, omega):
  """The slides' "dial" positional encoding: dials e^{i 2^k ω t}, k = 0..num_dials-1.

  Dial k turns by the angle 2^k ω per position, twice as fast as dial k-1, like the hands
  of a clock. Columns are ordered [cos_0, sin_0, cos_1, sin_1, ...]:
  out[t, 2k] = cos(2^k ω t), out[t, 2k+1] = sin(2^k ω t).

  The angles 2^k ω t are formed in float32 (2^k t is exact); keep 2^(num_dials-1) ω T
  below about 1e4 radians for accuracy (e.g. ω = π / T_max with num_dials <= log2(T_max)+1,
  whose fastest dial turns at most half a turn per position).

  Source: D. McAllester, TTIC 31230 "Transformers" slides (positional encoding by dials
  e^{iωt} turning at doubling speeds); cf. Vaswani et al. 2017, Sec. 3.5.

  Args:
    num_positions: int T >= 1 (Python int, static under jit).
    num_dials: int >= 1, number of dials (Python int, static under jit).
    omega: scalar ω > 0, angular speed of the slowest dial in radians per position
      (a Python float or a float32 scalar array; differentiable).

  Returns:
    float32 array [T, 2 * num_dials].

  Raises:
    ValueError: if num_positions < 1 or num_dials < 1.
  """
  if num_positions < 1 or num_dials < 1:
    raise ValueError(
        f"dial_positions needs num_positions >= 1 and num_dials >= 1, got"
        f" {num_positions} and {num_dials}.")
  positions_Tx1 = jnp.arange(num_positions, dtype=jnp.float32)[:, None]
  speeds_1xN = (2.0 ** jnp.arange(num_dials, dtype=jnp.float32))[None, :]
  angles_TxN = (positions_Tx1 * speeds_1xN) * jnp.asarray(omega, dtype=jnp.float32)
  cos_sin_TxNx2 = jnp.stack([jnp.cos(angles_TxN), jnp.sin(angles_TxN)], axis=-1)
  return cos_sin_TxNx2.reshape(num_positions, 2 * num_dials)


def sinusoidal_positions(num_positions, dim):
  """Sinusoidal positional encoding of Vaswani et al. 2017.

  PE[t, 2i] = sin(t / 10000^(2i/dim)),  PE[t, 2i+1] = cos(t / 10000^(2i/dim)).

  Source: Vaswani et al. 2017, "Attention Is All You Need", Sec. 3.5.

  Args:
    num_positions: int T >= 1 (Python int, static under jit).
    dim: even int >= 2, the model dimension d.

  Returns:
    float32 array [T, dim].

  Raises:
    ValueError: if dim is odd or < 2, or num_positions < 1.
  """
  if dim < 2 or dim % 2:
    raise ValueError(f"sinusoidal_positions needs an even dim >= 2, got {dim}.")
  if num_positions < 1:
    raise ValueError(f"sinusoidal_positions needs num_positions >= 1, got {num_positions}.")
  positions_Tx1 = jnp.arange(num_positions, dtype=jnp.float32)[:, None]
  two_i = jnp.arange(0, dim, 2, dtype=jnp.float32)
  inv_wavelength_1xD2 = jnp.power(10000.0, -two_i / dim)[None, :]
  angles_TxD2 = positions_Tx1 * inv_wavelength_1xD2
  sin_cos_TxD2x2 = jnp.stack([jnp.sin(angles_TxD2), jnp.cos(angles_TxD2)], axis=-1)
  return sin_cos_TxD2x2.reshape(num_positions, dim)

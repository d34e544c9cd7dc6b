"""Recurrent networks (simple RNN, LSTM, bidirectional and stacked LSTMs) run with lax.scan.

Notation follows David McAllester's TTIC 31230 "Fundamentals of Deep Learning" slides on
RNNs and LSTMs. The simple RNN is

  h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h),    o_t = W_hy h_t + b_y,

and the LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers, Schmidhuber &
Cummins 2000), with the slides' names, is

  g_t = tanh(W_gx x_t + W_gh h_{t-1} + b_g)   input node
  i_t = σ(W_ix x_t + W_ih h_{t-1} + b_i)      input gate
  f_t = σ(W_fx x_t + W_fh h_{t-1} + b_f)      forget gate
  o_t = σ(W_ox x_t + W_oh h_{t-1} + b_o)      output gate
  s_t = g_t ⊙ i_t + s_{t-1} ⊙ f_t             internal state
  h_t = tanh(s_t) ⊙ o_t                       hidden state

Parameter layout (fused for speed). The four LSTM gates are stacked on a leading gate axis
in the order ``GATES = ("g", "i", "f", "o")``: ``w_x[n]`` is the slides' W_kx [H, D],
``w_h[n]`` is W_kh [H, H] and ``b[n]`` is b_k [H] for k = GATES[n] (so ``w_x[2]`` is the
forget gate's W_fx). Matrices are stored
[out, in] as in the slides' W x. The input part W_·x x_t + b_· of all four gates is computed
for every time step in one matmul before the scan (``project_inputs``); only the recurrent
part W_·h h_{t-1} (one [B, H] x [4, H, H] contraction per step) runs inside it.

Padding. ``padding_mask`` is bool [B, T], True = real token. At a position where it is
False the carry passes through unchanged and the output is zero. Hence the forward
direction of a right-padded sequence ends with the carry of its last real token, and the
backward direction (``reverse=True``, a scan from t = T - 1 down to 0) reaches the last real
token with the initial carry still untouched: it starts there, exactly as if the sequence
had been reversed within its length. The mask need not be a prefix: masked positions
anywhere are skipped.

Parameters are float32; the recurrence runs in the dtype of x promoted with them (float32
for float32 or bfloat16 inputs). Nothing here is jitted: callers decide.

Shape letters: B batch, T length, D input dim, H hidden (state) dim, O output dim,
G = 4 LSTM gates, L layers.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

# Order of the LSTM gates along the gate axis of ``LSTM.w_x``, ``LSTM.w_h`` and ``LSTM.b``.
GATES = ("g", "i", "f", "o")
# Forget-gate bias at initialisation (Jozefowicz, Zaremba & Sutskever 2015).
FORGET_BIAS_INIT = 1.0


class LSTMCarry(NamedTuple):
  """The LSTM recurrent state (h, s), as the slides name it.

  Attributes:
    h: float array [B, H], hidden state h_t (the layer's output).
    s: float array [B, H], internal (cell) state s_t.
  """
  h: jax.Array
  s: jax.Array


def _add_bias(y, b):
  """y + b with b broadcast over y's leading axes (explicit: rank promotion is an error)."""
  return y + jnp.reshape(b, (1,) * (y.ndim - b.ndim) + b.shape)


def project_inputs(x, w, b):
  """The input part of a recurrent pre-activation, W x + b, for every leading index.

  y[..., k] = Σ_d w[k, d] x[..., d] + b[k], where k may be several axes (e.g. the LSTM's
  [G, H]). Computed for all time steps at once, before the scan.

  Args:
    x: float array [..., D], e.g. [B, T, D].
    w: float array [*K, D], e.g. W_xh [H, D] or the stacked LSTM W_·x [G, H, D].
    b: float array [*K], e.g. b_h [H] or [G, H].

  Returns:
    float array [..., *K].

  Raises:
    ValueError: if the last dims of x and w differ or b does not have shape w.shape[:-1].

  Source: McAllester, TTIC 31230 "RNNs/LSTMs" slides (the W_xh x_t and W_·x x_t terms).
  """
  if x.shape[-1:] != w.shape[-1:] or b.shape != w.shape[:-1]:
    raise ValueError(
        f"project_inputs needs x [..., D], w [*K, D], b [*K], got x {x.shape}, w {w.shape},"
        f" b {b.shape}.")
  return _add_bias(jnp.tensordot(x, w, axes=((x.ndim - 1,), (w.ndim - 1,))), b)


def rnn_cell(h_prev, x_proj, w_hh):
  """One step of the simple RNN: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h).

  Args:
    h_prev: float array [B, H], h_{t-1}.
    x_proj: float array [B, H], the input part W_xh x_t + b_h (``project_inputs``).
    w_hh: float array [H, H], W_hh (stored [out, in]).

  Returns:
    float array [B, H], h_t.

  Raises:
    ValueError: if the shapes do not fit.

  Source: McAllester, TTIC 31230 "RNNs/LSTMs" slides (simple RNN); Elman 1990.
  """
  if h_prev.ndim != 2 or x_proj.shape != h_prev.shape or w_hh.shape != (h_prev.shape[1],) * 2:
    raise ValueError(
        f"rnn_cell needs h_prev [B, H], x_proj [B, H], w_hh [H, H], got {h_prev.shape},"
        f" {x_proj.shape}, {w_hh.shape}.")
  return jnp.tanh(x_proj + h_prev @ w_hh.T)


def lstm_cell(carry, x_gates, w_h):
  """One LSTM step (module docstring equations) from precomputed input pre-activations.

  Args:
    carry: LSTMCarry (h_{t-1}, s_{t-1}), each float [B, H].
    x_gates: float array [B, G, H], the input parts W_kx x_t + b_k of the gates
      k in GATES = (g, i, f, o) (``project_inputs``).
    w_h: float array [G, H, H], the recurrent matrices W_kh (stored [out, in]).

  Returns:
    LSTMCarry (h_t, s_t), each float [B, H].

  Raises:
    ValueError: if the shapes do not fit.

  Source: Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000 (forget gate);
  McAllester, TTIC 31230 "RNNs/LSTMs" slides (names g, i, f, o, s, h).
  """
  h_prev, s_prev = carry
  if (h_prev.ndim != 2 or s_prev.shape != h_prev.shape
      or x_gates.shape != (h_prev.shape[0], len(GATES), h_prev.shape[1])
      or w_h.shape != (len(GATES), h_prev.shape[1], h_prev.shape[1])):
    raise ValueError(
        f"lstm_cell needs carry ([B, H], [B, H]), x_gates [B, 4, H], w_h [4, H, H], got"
        f" {h_prev.shape}, {s_prev.shape}, {x_gates.shape}, {w_h.shape}.")
  pre_BxGxH = x_gates + jnp.einsum("bj,gkj->bgk", h_prev, w_h)
  g = jnp.tanh(pre_BxGxH[:, 0])        # input node
  i = jax.nn.sigmoid(pre_BxGxH[:, 1])  # input gate
  f = jax.nn.sigmoid(pre_BxGxH[:, 2])  # forget gate
  o = jax.nn.sigmoid(pre_BxGxH[:, 3])  # output gate
  s = g * i + s_prev * f
  return LSTMCarry(h=jnp.tanh(s) * o, s=s)


def _check_sequence(x, input_dim, padding_mask, name):
  """Raises ValueError unless x is [B, T, input_dim] and the mask is bool [B, T] or None."""
  if x.ndim != 3 or x.shape[-1] != input_dim:
    raise ValueError(f"{name} expects x [B, T, D] with D={input_dim}, got {x.shape}.")
  if padding_mask is not None and (padding_mask.shape != x.shape[:2]
                                   or padding_mask.dtype != jnp.bool_):
    raise ValueError(
        f"padding_mask must be bool [B, T] = {x.shape[:2]}, got {padding_mask.dtype}"
        f" {padding_mask.shape}.")


def _masked_scan(step_fn, carry, inputs_BxT, padding_mask, reverse):
  """lax.scan of step_fn(carry, x_t) -> (carry, output_t) over axis 1 of inputs_BxT.

  Where padding_mask[b, t] is False, carry[b] passes through unchanged and output[b, t] is
  0. Returns (outputs [B, T, ...], final carry).
  """
  inputs_TxB = jnp.swapaxes(inputs_BxT, 0, 1)
  if padding_mask is None:
    carry, outputs_TxB = jax.lax.scan(step_fn, carry, inputs_TxB, reverse=reverse)
  else:
    def masked_step(carry, xs):
      x_t, real_B = xs
      keep_Bx1 = real_B[:, None]
      new_carry, output = step_fn(carry, x_t)
      carry = jax.tree.map(lambda n, c: jnp.where(keep_Bx1, n, c), new_carry, carry)
      return carry, jnp.where(keep_Bx1, output, 0)
    carry, outputs_TxB = jax.lax.scan(
        masked_step, carry, (inputs_TxB, jnp.swapaxes(padding_mask, 0, 1)), reverse=reverse)
  return jnp.swapaxes(outputs_TxB, 0, 1), carry


def _orthogonal_stack(key, num, dim):
  """num independent random orthogonal [dim, dim] matrices: float32 [num, dim, dim]."""
  init = nnx.initializers.orthogonal()
  return jnp.stack([init(k, (dim, dim)) for k in jax.random.split(key, num)])


def _check_dims(name, **dims):
  """Raises ValueError unless every int dimension in dims is >= 1."""
  if min(dims.values()) < 1:
    raise ValueError(f"{name} dimensions must be >= 1, got {dims}.")


def _lecun(key, fan_out, fan_in):
  """LeCun-normal float32 [fan_out, fan_in] matrix (variance 1 / fan_in, truncated)."""
  return nnx.initializers.lecun_normal(in_axis=-1, out_axis=-2)(key, (fan_out, fan_in))


def _initial_state(initial, batch, hidden_dim, dtype):
  """Zeros [B, H] if initial is None, else initial (checked) cast to dtype."""
  if initial is None:
    return jnp.zeros((batch, hidden_dim), dtype)
  if initial.shape != (batch, hidden_dim):
    raise ValueError(
        f"initial carry must be [B, H] = {(batch, hidden_dim)}, got {initial.shape}.")
  return initial.astype(dtype)


class SimpleRNN(nnx.Module):
  """The slides' simple RNN: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h), o_t = W_hy h_t + b_y.

  ``__call__`` runs the recurrence and returns the hidden states; ``readout`` applies the
  output layer o_t = W_hy h_t + b_y.

  Initialisation: W_xh and W_hy LeCun normal (variance 1 / fan_in), W_hh a random
  orthogonal matrix (Saxe et al. 2014), biases zero.

  Source: McAllester, TTIC 31230 "RNNs/LSTMs" slides; Elman 1990.

  Attributes:
    w_xh: nnx.Param float32 [H, D], W_xh.
    w_hh: nnx.Param float32 [H, H], W_hh.
    b_h: nnx.Param float32 [H], b_h.
    w_hy: nnx.Param float32 [O, H], W_hy.
    b_y: nnx.Param float32 [O], b_y.
  """

  def __init__(self, *, input_dim, hidden_dim, output_dim, rngs):
    """Creates the parameters.

    Args:
      input_dim: int D.
      hidden_dim: int H.
      output_dim: int O, width of o_t.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
    _check_dims("SimpleRNN", input_dim=input_dim, hidden_dim=hidden_dim,
                output_dim=output_dim)
    self.input_dim, self.hidden_dim = input_dim, hidden_dim
    self.w_xh = nnx.Param(_lecun(rngs.params(), hidden_dim, input_dim))
    self.w_hh = nnx.Param(_orthogonal_stack(rngs.params(), 1, hidden_dim)[0])
    self.b_h = nnx.Param(jnp.zeros((hidden_dim,), jnp.float32))
    self.w_hy = nnx.Param(_lecun(rngs.params(), output_dim, hidden_dim))
    self.b_y = nnx.Param(jnp.zeros((output_dim,), jnp.float32))

  def __call__(self, x, *, padding_mask=None, initial_carry=None, reverse=False):
    """Hidden states of every position.

    Args:
      x: float array [B, T, D].
      padding_mask: optional bool array [B, T], True = real token; at False positions h
        passes through unchanged and the output is 0.
      initial_carry: optional float array [B, H], h_0; default zeros. With reverse=True it
        is the state "after" position T - 1.
      reverse: bool, run from t = T - 1 down to 0 (the backward direction).

    Returns:
      (hidden, h_final): float arrays [B, T, H] (h_t at each real position, 0 at padding)
      and [B, H] (the carry after the last step of the scan), in x's dtype promoted with
      float32.

    Raises:
      ValueError: if x is not [B, T, D], the mask not bool [B, T] or the carry not [B, H].
    """
    _check_sequence(x, self.input_dim, padding_mask, "SimpleRNN")
    x_proj_BxTxH = project_inputs(x, self.w_xh[...], self.b_h[...])
    h0 = _initial_state(initial_carry, x.shape[0], self.hidden_dim, x_proj_BxTxH.dtype)
    w_hh = self.w_hh[...]

    def step(h, x_proj_t):
      h = rnn_cell(h, x_proj_t, w_hh)
      return h, h

    return _masked_scan(step, h0, x_proj_BxTxH, padding_mask, reverse)

  def readout(self, hidden):
    """Outputs o_t = W_hy h_t + b_y.

    Args:
      hidden: float array [..., H], e.g. the [B, T, H] hidden states from ``__call__``.

    Returns:
      float array [..., O].

    Raises:
      ValueError: if the last dim of hidden is not H.
    """
    return project_inputs(hidden, self.w_hy[...], self.b_y[...])


class LSTM(nnx.Module):
  """One LSTM layer over a whole sequence (module docstring equations), with lax.scan.

  Parameters are the slides' matrices stacked on a gate axis in the order
  GATES = (g, i, f, o): ``w_x[n]`` = W_kx, ``w_h[n]`` = W_kh, ``b[n]`` = b_k for
  k = GATES[n].

  Initialisation: each W_kx LeCun normal (variance 1 / D); each W_kh an independent random
  orthogonal matrix (Saxe et al. 2014); b_g = b_i = b_o = 0 and the forget-gate bias
  b_f = 1 (FORGET_BIAS_INIT), so that f ≈ σ(1) ≈ 0.73 at the start and the internal state
  is remembered rather than forgotten before the gates have learned anything
  (Jozefowicz, Zaremba & Sutskever 2015, "An Empirical Exploration of Recurrent Network
  Architectures", who credit the idea to Gers et al. 2000).

  Source: Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000;
  McAllester, TTIC 31230 "RNNs/LSTMs" slides.

  Attributes:
    w_x: nnx.Param float32 [G, H, D], (W_gx, W_ix, W_fx, W_ox).
    w_h: nnx.Param float32 [G, H, H], (W_gh, W_ih, W_fh, W_oh).
    b: nnx.Param float32 [G, H], (b_g, b_i, b_f, b_o).
  """

  def __init__(self, *, input_dim, hidden_dim, rngs):
    """Creates the parameters.

    Args:
      input_dim: int D.
      hidden_dim: int H.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
    _check_dims("LSTM", input_dim=input_dim, hidden_dim=hidden_dim)
    self.input_dim, self.hidden_dim = input_dim, hidden_dim
    num_gates = len(GATES)
    self.w_x = nnx.Param(jnp.stack([
        _lecun(k, hidden_dim, input_dim) for k in jax.random.split(rngs.params(), num_gates)]))
    self.w_h = nnx.Param(_orthogonal_stack(rngs.params(), num_gates, hidden_dim))
    self.b = nnx.Param(jnp.zeros((num_gates, hidden_dim), jnp.float32)
                       .at[GATES.index("f")].set(FORGET_BIAS_INIT))

  def __call__(self, x, *, padding_mask=None, initial_carry=None, reverse=False):
    """Hidden states h_t of every position and the final carry.

    Args:
      x: float array [B, T, D].
      padding_mask: optional bool array [B, T], True = real token; at False positions
        (h, s) pass through unchanged and the output is 0.
      initial_carry: optional (h_0, s_0) pair (e.g. LSTMCarry), each float [B, H];
        default zeros. With reverse=True it is the state "after" position T - 1.
      reverse: bool, run from t = T - 1 down to 0 (the backward direction); with a mask,
        each sequence's backward pass starts at its last real token.

    Returns:
      (hidden, carry): float array [B, T, H] (h_t at real positions, 0 at padding) and the
      LSTMCarry (h, s), each [B, H], after the last step of the scan (position T - 1
      forward, position 0 backward; the last real token's state for a padded sequence).

    Raises:
      ValueError: if x is not [B, T, D], the mask not bool [B, T] or the carry not
        ([B, H], [B, H]).
    """
    _check_sequence(x, self.input_dim, padding_mask, "LSTM")
    x_gates_BxTxGxH = project_inputs(x, self.w_x[...], self.b[...])
    batch, dtype = x.shape[0], x_gates_BxTxGxH.dtype
    if initial_carry is None:
      carry = LSTMCarry(*(_initial_state(None, batch, self.hidden_dim, dtype),) * 2)
    else:
      if len(initial_carry) != 2:
        raise ValueError(
            f"initial_carry must be a pair (h, s), got {len(initial_carry)} items.")
      carry = LSTMCarry(*(_initial_state(c, batch, self.hidden_dim, dtype)
                          for c in initial_carry))
    w_h = self.w_h[...]

    def step(carry, x_gates_t):
      carry = lstm_cell(carry, x_gates_t, w_h)
      return carry, carry.h

    return _masked_scan(step, carry, x_gates_BxTxGxH, padding_mask, reverse)


class Bidirectional(nnx.Module):
  """A forward and a backward LSTM over the same sequence, outputs concatenated.

  out[b, t] = [h→_t ; h←_t], where h→_t summarises x_1..x_t and h←_t summarises
  x_t..x_n of the sequence's real tokens (n its length): with a padding mask, the backward
  LSTM starts at each sequence's last real token (see the module docstring).

  Source: Schuster & Paliwal 1997, "Bidirectional Recurrent Neural Networks"; Graves &
  Schmidhuber 2005 (bidirectional LSTM); Peters et al. 2018 (ELMo).

  Attributes:
    forward: LSTM run left to right.
    backward: LSTM run right to left.
  """

  def __init__(self, *, input_dim, hidden_dim, rngs):
    """Creates the two LSTMs (independent parameters).

    Args:
      input_dim: int D.
      hidden_dim: int H of each direction.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
    _check_dims("Bidirectional", input_dim=input_dim, hidden_dim=hidden_dim)
    self.input_dim, self.hidden_dim = input_dim, hidden_dim
    self.forward = LSTM(input_dim=input_dim, hidden_dim=hidden_dim, rngs=rngs)
    self.backward = LSTM(input_dim=input_dim, hidden_dim=hidden_dim, rngs=rngs)

  def __call__(self, x, *, padding_mask=None):
    """Both directions' hidden states, starting from zero carries.

    Args:
      x: float array [B, T, D].
      padding_mask: optional bool array [B, T], True = real token (need not be a prefix;
        masked positions are skipped by both directions).

    Returns:
      (hidden, (forward_carry, backward_carry)): float array [B, T, 2H], forward states in
      [..., :H] and backward states in [..., H:], zero at padding; and the two final
      LSTMCarry (forward after the last real token, backward after the first).

    Raises:
      ValueError: if x is not [B, T, D] or the mask not bool [B, T].
    """
    _check_sequence(x, self.input_dim, padding_mask, "Bidirectional")
    forward_BxTxH, forward_carry = self.forward(x, padding_mask=padding_mask)
    backward_BxTxH, backward_carry = self.backward(x, padding_mask=padding_mask, reverse=True)
    return (jnp.concatenate([forward_BxTxH, backward_BxTxH], axis=-1),
            (forward_carry, backward_carry))


class StackedLSTM(nnx.Module):
  """L LSTM layers (optionally bidirectional), layer l reading layer l - 1's hidden states.

  Returns every layer's hidden states, since ELMo represents a token by a learned mixture
  of all layers. No residual connections, dropout or projections between layers.

  Source: Graves, Mohamed & Hinton 2013 (deep / stacked LSTMs); Peters et al. 2018,
  "Deep contextualized word representations" (ELMo: a stacked biLSTM, all layers used).

  Attributes:
    layers: nnx.List of L LSTM (or Bidirectional) modules; layer 0 has input dim D, the
      others H (2H if bidirectional).
  """

  def __init__(self, *, input_dim, hidden_dim, num_layers, bidirectional=False, rngs):
    """Creates the layers.

    Args:
      input_dim: int D.
      hidden_dim: int H of each layer (of each direction if bidirectional).
      num_layers: int L.
      bidirectional: bool, whether each layer is a Bidirectional pair of LSTMs.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
    _check_dims("StackedLSTM", input_dim=input_dim, hidden_dim=hidden_dim,
                num_layers=num_layers)
    self.input_dim, self.hidden_dim = input_dim, hidden_dim
    layer_cls = Bidirectional if bidirectional else LSTM
    output_dim = hidden_dim * (2 if bidirectional else 1)
    self.layers = nnx.List([
        layer_cls(input_dim=input_dim if l == 0 else output_dim, hidden_dim=hidden_dim,
                  rngs=rngs) for l in range(num_layers)])

  def __call__(self, x, *, padding_mask=None):
    """Hidden states of every layer, starting from zero carries.

    Args:
      x: float array [B, T, D].
      padding_mask: optional bool array [B, T], True = real token.

    Returns:
      (hidden, carries): float array [L, B, T, H] ([L, B, T, 2H] if bidirectional, forward
      then backward), zero at padding; and a tuple of the L layers' final carries (each an
      LSTMCarry, or a (forward, backward) pair of them if bidirectional).

    Raises:
      ValueError: if x is not [B, T, D] or the mask not bool [B, T].
    """
    _check_sequence(x, self.input_dim, padding_mask, "StackedLSTM")
    hidden, carries = [], []
    for layer in self.layers:
      x, carry = layer(x, padding_mask=padding_mask)
      hidden.append(x)
      carries.append(carry)
    return jnp.stack(hidden), tuple(carries)

"""Tests for the recurrent networks: float64 loop oracles, causality, padding, stacking."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pretrain_jax.nn import recurrent

BATCH, LENGTH, INPUT, HIDDEN, OUTPUT = 2, 6, 4, 5, 3
# Sequence 0 is full length, sequence 1 has 4 real tokens then 2 padding positions.
PADDING = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], bool)


def _inputs(seed, shape=(BATCH, LENGTH, INPUT)):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _randomise_params(module, seed, scale=0.5):
  """Overwrites every nnx.Param with small random values (non-zero biases included)."""
  rng = np.random.default_rng(seed)
  for _, param in nnx.iter_graph(module):
    if isinstance(param, nnx.Param):
      param[...] = jnp.asarray(rng.normal(scale=scale, size=param.shape), jnp.float32)


def _call(module, *args, method="__call__", **kwargs):
  """module.method(*args, **kwargs) under jax.jit (fewer per-op compilations than eager).

  Booleans in kwargs (``reverse``) stay static; arrays are traced.
  """
  graphdef, state = nnx.split(module)
  static = {k: v for k, v in kwargs.items() if isinstance(v, bool)}
  traced = {k: v for k, v in kwargs.items() if k not in static}
  run = jax.jit(lambda state, args, traced: getattr(nnx.merge(graphdef, state), method)(
      *args, **traced, **static))
  return run(state, args, traced)


def _sigmoid(z):
  return 1.0 / (1.0 + math.exp(-z))


def _affine(w, v, j):
  """Σ_k w[j, k] v[k], element by element."""
  return sum(float(w[j, k]) * float(v[k]) for k in range(len(v)))


def _loop_lstm(x, padding, w_x, w_h, b, h0, s0, reverse):
  """The slides' LSTM equations as a plain float64 loop, one sequence and unit at a time.

  For each gate k in (g, i, f, o): pre_k[j] = Σ_d W_kx[j, d] x_t[d] + Σ_m W_kh[j, m] h[m]
  + b_k[j]; g = tanh(pre_g), i, f, o = σ(pre); s = g i + s f; h = tanh(s) o. Padded
  positions are skipped (state unchanged, output 0).
  """
  batch, length, _ = x.shape
  hidden_dim = h0.shape[-1]
  outputs = np.zeros((batch, length, hidden_dim))
  h_final, s_final = np.zeros((batch, hidden_dim)), np.zeros((batch, hidden_dim))
  weights = {k: (w_x[n], w_h[n], b[n]) for n, k in enumerate("gifo")}
  for seq in range(batch):
    h, s = [float(v) for v in h0[seq]], [float(v) for v in s0[seq]]
    for t in (reversed(range(length)) if reverse else range(length)):
      if not padding[seq, t]:
        continue
      pre = {k: [_affine(wx, x[seq, t], j) + _affine(wh, h, j) + float(bk[j])
                 for j in range(hidden_dim)] for k, (wx, wh, bk) in weights.items()}
      g = [math.tanh(z) for z in pre["g"]]
      i = [_sigmoid(z) for z in pre["i"]]
      f = [_sigmoid(z) for z in pre["f"]]
      o = [_sigmoid(z) for z in pre["o"]]
      s = [g[j] * i[j] + s[j] * f[j] for j in range(hidden_dim)]
      h = [math.tanh(s[j]) * o[j] for j in range(hidden_dim)]
      outputs[seq, t] = h
    h_final[seq], s_final[seq] = h, s
  return outputs, h_final, s_final


def _loop_simple_rnn(x, padding, w_xh, w_hh, b_h, w_hy, b_y, h0, reverse):
  """h_t[j] = tanh(Σ W_hh[j, m] h[m] + Σ W_xh[j, d] x_t[d] + b_h[j]); o_t = W_hy h_t + b_y."""
  batch, length, _ = x.shape
  hidden_dim, output_dim = w_hh.shape[0], w_hy.shape[0]
  hidden = np.zeros((batch, length, hidden_dim))
  outputs = np.zeros((batch, length, output_dim))
  h_final = np.zeros((batch, hidden_dim))
  for seq in range(batch):
    h = [float(v) for v in h0[seq]]
    for t in (reversed(range(length)) if reverse else range(length)):
      if not padding[seq, t]:
        continue
      h = [math.tanh(_affine(w_hh, h, j) + _affine(w_xh, x[seq, t], j) + float(b_h[j]))
           for j in range(hidden_dim)]
      hidden[seq, t] = h
      outputs[seq, t] = [_affine(w_hy, h, k) + float(b_y[k]) for k in range(output_dim)]
    h_final[seq] = h
  return hidden, outputs, h_final


def _np(param):
  return np.asarray(param[...], np.float64)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_matches_loop_over_slide_equations(reverse):
  lstm = recurrent.LSTM(input_dim=INPUT, hidden_dim=HIDDEN, rngs=nnx.Rngs(0))
  _randomise_params(lstm, seed=1)
  x = _inputs(2)
  h0, s0 = np.random.default_rng(3).normal(scale=0.5, size=(2, BATCH, HIDDEN)).astype(
      np.float32)
  hidden, carry = _call(lstm, jnp.asarray(x), padding_mask=jnp.asarray(PADDING),
                       initial_carry=recurrent.LSTMCarry(jnp.asarray(h0), jnp.asarray(s0)),
                       reverse=reverse)
  chex.assert_shape(hidden, (BATCH, LENGTH, HIDDEN))
  chex.assert_shape(carry, recurrent.LSTMCarry((BATCH, HIDDEN), (BATCH, HIDDEN)))
  expected, h_final, s_final = _loop_lstm(x, PADDING, _np(lstm.w_x), _np(lstm.w_h),
                                          _np(lstm.b), h0, s0, reverse)
  np.testing.assert_allclose(hidden, expected, atol=2e-6)
  np.testing.assert_allclose(carry.h, h_final, atol=2e-6)
  np.testing.assert_allclose(carry.s, s_final, atol=2e-6)
  np.testing.assert_array_equal(np.asarray(hidden)[~PADDING], 0.0)
  # The carry is the state at the last position the scan visited: the short sequence's
  # last real token (3) forward, position 0 for both sequences backward.
  last = [0, 0] if reverse else [LENGTH - 1, 3]
  np.testing.assert_array_equal(carry.h, np.asarray(hidden)[np.arange(BATCH), last])


@pytest.mark.parametrize("reverse", [False, True])
def test_simple_rnn_matches_loop_over_slide_equations(reverse):
  rnn = recurrent.SimpleRNN(input_dim=INPUT, hidden_dim=HIDDEN, output_dim=OUTPUT,
                            rngs=nnx.Rngs(0))
  _randomise_params(rnn, seed=4)
  x = _inputs(5)
  h0 = np.random.default_rng(6).normal(size=(BATCH, HIDDEN)).astype(np.float32)
  hidden, h_final = _call(rnn, jnp.asarray(x), padding_mask=jnp.asarray(PADDING),
                        initial_carry=jnp.asarray(h0), reverse=reverse)
  outputs = _call(rnn, hidden, method="readout")
  chex.assert_shape((hidden, outputs, h_final),
                    ((BATCH, LENGTH, HIDDEN), (BATCH, LENGTH, OUTPUT), (BATCH, HIDDEN)))
  expected_hidden, expected_outputs, expected_final = _loop_simple_rnn(
      x, PADDING, _np(rnn.w_xh), _np(rnn.w_hh), _np(rnn.b_h), _np(rnn.w_hy), _np(rnn.b_y),
      h0, reverse)
  np.testing.assert_allclose(hidden, expected_hidden, atol=2e-6)
  np.testing.assert_allclose(h_final, expected_final, atol=2e-6)
  np.testing.assert_allclose(np.asarray(outputs)[PADDING], expected_outputs[PADDING],
                             atol=5e-6)
  np.testing.assert_array_equal(np.asarray(hidden)[~PADDING], 0.0)


def test_bidirectional_directions_are_causal_and_anticausal():
  """d h→[t] / d x[t'] = 0 iff t' > t; d h←[t] / d x[t'] = 0 iff t' < t (via jax.jacrev)."""
  model = recurrent.Bidirectional(input_dim=INPUT, hidden_dim=HIDDEN, rngs=nnx.Rngs(7))
  graphdef, params = nnx.split(model, nnx.Param)

  def hidden_of(x_TxD):
    return nnx.merge(graphdef, params)(x_TxD[None])[0][0]  # [T, 2H]

  jacobian = jax.jit(jax.jacrev(hidden_of))(jnp.asarray(_inputs(8, (LENGTH, INPUT))))
  chex.assert_shape(jacobian, (LENGTH, 2 * HIDDEN, LENGTH, INPUT))
  dependence = np.abs(np.asarray(jacobian)).reshape(LENGTH, 2, HIDDEN, LENGTH, INPUT)
  forward, backward = dependence.sum(axis=(2, 4)).transpose(1, 0, 2)  # each [t, t']
  future = np.triu(np.ones((LENGTH, LENGTH), bool), k=1)
  np.testing.assert_array_equal(forward[future], 0.0)
  np.testing.assert_array_equal(backward[future.T], 0.0)
  assert forward[~future].min() > 1e-6 and backward[~future.T].min() > 1e-6


def test_bidirectional_padded_sequence_equals_sequence_alone():
  model = recurrent.Bidirectional(input_dim=INPUT, hidden_dim=HIDDEN, rngs=nnx.Rngs(9))
  _randomise_params(model, seed=10)
  x = _inputs(11)  # the padding positions of sequence 1 hold random (non-zero) values
  hidden, (forward_carry, backward_carry) = _call(
      model, jnp.asarray(x), padding_mask=jnp.asarray(PADDING))
  chex.assert_shape(hidden, (BATCH, LENGTH, 2 * HIDDEN))
  length = int(PADDING[1].sum())
  alone, (alone_forward, alone_backward) = _call(model, jnp.asarray(x[1:2, :length]))
  np.testing.assert_allclose(hidden[1, :length], alone[0], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(hidden[1, length:]), 0.0)
  chex.assert_trees_all_close(
      jax.tree.map(lambda c: c[1:2], (forward_carry, backward_carry)),
      (alone_forward, alone_backward), atol=1e-6)
  # Without the mask the backward direction reads the padding: the test above has power.
  unmasked, _ = _call(model, jnp.asarray(x))
  assert np.abs(np.asarray(unmasked[1, :length, HIDDEN:] - alone[0, :, HIDDEN:])).max() > 1e-3


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_layer_reads_previous_layer(bidirectional):
  num_layers, width = 3, HIDDEN * (2 if bidirectional else 1)
  model = recurrent.StackedLSTM(input_dim=INPUT, hidden_dim=HIDDEN, num_layers=num_layers,
                                bidirectional=bidirectional, rngs=nnx.Rngs(12))
  x, padding = jnp.asarray(_inputs(13)), jnp.asarray(PADDING)
  hidden, carries = _call(model, x, padding_mask=padding)
  chex.assert_shape(hidden, (num_layers, BATCH, LENGTH, width))
  assert len(carries) == num_layers
  layer_input = x
  for l, layer in enumerate(model.layers):
    expected, expected_carry = _call(layer, layer_input, padding_mask=padding)
    np.testing.assert_allclose(hidden[l], expected, atol=1e-6)
    chex.assert_trees_all_close(carries[l], expected_carry, atol=1e-6)
    layer_input = expected
  # Layers differ (independent parameters, different inputs).
  assert np.abs(np.asarray(hidden[1] - hidden[0])).max() > 1e-3


def test_initialisation_forget_bias_one_and_orthogonal_recurrence():
  lstm = recurrent.LSTM(input_dim=INPUT, hidden_dim=HIDDEN, rngs=nnx.Rngs(14))
  assert recurrent.GATES == ("g", "i", "f", "o")
  chex.assert_shape((lstm.w_x[...], lstm.w_h[...], lstm.b[...]),
                    ((4, HIDDEN, INPUT), (4, HIDDEN, HIDDEN), (4, HIDDEN)))
  expected_bias = np.zeros((4, HIDDEN))
  expected_bias[2] = 1.0
  np.testing.assert_array_equal(lstm.b[...], expected_bias)
  w_h = np.asarray(lstm.w_h[...], np.float64)
  np.testing.assert_allclose(w_h @ w_h.transpose(0, 2, 1), np.broadcast_to(
      np.eye(HIDDEN), w_h.shape), atol=1e-5)
  assert np.abs(w_h[0] - w_h[1]).max() > 1e-3  # independent per gate


def test_wrong_shapes_raise():
  lstm = recurrent.LSTM(input_dim=INPUT, hidden_dim=HIDDEN, rngs=nnx.Rngs(0))
  rnn = recurrent.SimpleRNN(input_dim=INPUT, hidden_dim=HIDDEN, output_dim=OUTPUT,
                            rngs=nnx.Rngs(0))
  x = jnp.asarray(_inputs(0))
  # (call, the check that must reject it): a ValueError from elsewhere does not count.
  bad_calls = [
      (lambda: lstm(x[0]), r"LSTM expects x \[B, T, D\]"),            # rank 2
      (lambda: lstm(x[..., :3]), r"LSTM expects x \[B, T, D\]"),      # wrong D
      (lambda: lstm(x, padding_mask=jnp.ones((BATCH, LENGTH + 1), bool)), "padding_mask"),
      (lambda: lstm(x, padding_mask=jnp.ones((BATCH, LENGTH), jnp.int32)), "padding_mask"),
      (lambda: lstm(x, initial_carry=(jnp.zeros((BATCH, HIDDEN + 1)),) * 2), "initial carry"),
      (lambda: lstm(x, initial_carry=(jnp.zeros((BATCH, HIDDEN)),) * 3), "pair"),
      (lambda: rnn(x, initial_carry=jnp.zeros((HIDDEN,))), "initial carry"),
      (lambda: rnn(x[..., :3]), "SimpleRNN expects"),
      (lambda: rnn.readout(jnp.zeros((BATCH, HIDDEN + 1))), "project_inputs needs"),
      (lambda: recurrent.Bidirectional(input_dim=INPUT, hidden_dim=HIDDEN,
                                       rngs=nnx.Rngs(0))(x[0]), "Bidirectional expects"),
      (lambda: recurrent.LSTM(input_dim=INPUT, hidden_dim=0, rngs=nnx.Rngs(0)),
       "LSTM dimensions must be >= 1"),
      (lambda: recurrent.StackedLSTM(input_dim=INPUT, hidden_dim=HIDDEN, num_layers=0,
                                     rngs=nnx.Rngs(0)), "StackedLSTM dimensions"),
      (lambda: recurrent.lstm_cell(recurrent.LSTMCarry(x[:, 0, :], x[:, 0, :]),
                                   jnp.zeros((BATCH, 4, INPUT)), lstm.w_h[...]),
       "lstm_cell needs"),
      (lambda: recurrent.rnn_cell(x[:, 0, :], x[:, 0, :], jnp.zeros((HIDDEN, HIDDEN))),
       "rnn_cell needs"),
  ]
  for n, (call, message) in enumerate(bad_calls):
    with pytest.raises(ValueError, match=message):
      call()
      pytest.fail(f"bad call {n} did not raise")


class JitTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_stacked_bidirectional_same_with_and_without_jit(self):
    model = recurrent.StackedLSTM(input_dim=INPUT, hidden_dim=HIDDEN, num_layers=2,
                                  bidirectional=True, rngs=nnx.Rngs(15))
    graphdef, params = nnx.split(model, nnx.Param)
    x, padding = jnp.asarray(_inputs(16)), jnp.asarray(PADDING)

    @self.variant
    def apply(params, x, padding_mask):
      return nnx.merge(graphdef, params)(x, padding_mask=padding_mask)

    hidden, carries = apply(params, x, padding)
    chex.assert_tree_all_finite((hidden, carries))
    chex.assert_trees_all_close((hidden, carries), model(x, padding_mask=padding), atol=1e-6)
    chex.assert_trees_all_close(hidden, jax.jit(apply)(params, x, padding)[0], atol=1e-6)

"""ELMo's biLM: which tokens each direction sees (through gradients), the loss against a
float64 numpy loop, the contextual representations and scalar mix, and a smoke run on the
spine reloaded for scoring."""

import json
import math
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pretrain_jax.methods import elmo, language_models
from pretrain_jax.nn.elmo import BiLM, ScalarMix
from pretrain_jax.train import loop

from test_train import smoke_config

VOCAB, DIM, HIDDEN, LAYERS, LENGTH = 16, 4, 5, 2, 7  # Rows hold LENGTH + 1 = 8 tokens.
# Row 0 is full; row 1 has 5 real tokens (4 predicted per direction), then 3 padding ids.
WEIGHTS = np.array([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]], np.float32)


def _model(seed=0, residual=True):
  """A tiny biLM whose every parameter is random (biases included), so nothing is trivial."""
  model = BiLM(vocab_size=VOCAB, model_dim=DIM, hidden_dim=HIDDEN, num_layers=LAYERS,
               residual=residual, rngs=nnx.Rngs(params=seed))
  rng = np.random.default_rng(seed)
  for _, param in nnx.iter_graph(model):
    if isinstance(param, nnx.Param):
      param[...] = jnp.asarray(rng.normal(scale=0.5, size=param.shape), jnp.float32)
  return model


def _batch(seed=0):
  """Two packed rows of distinct ids (row 1 padded), as ``pack_sequences`` lays them out."""
  rng = np.random.default_rng(seed)
  tokens = np.stack([rng.permutation(VOCAB)[:LENGTH + 1] for _ in range(2)]).astype(np.int32)
  return {"tokens": tokens, "weights": WEIGHTS}


def _jit_call(model, fn, *args):
  """fn(model, *args) under jax.jit (one compilation instead of many eager ones)."""
  graphdef, state = nnx.split(model)
  return jax.jit(lambda state, *args: fn(nnx.merge(graphdef, state), *args))(state, *args)


# ---------------------------------------------------------------- float64 numpy oracle


def _np_lstm(x_TxD, w_x, w_h, b):
  """The slides' LSTM over one unpadded sequence, left to right, as a float64 loop."""
  hidden = w_h.shape[-1]
  h, s, outputs = np.zeros(hidden), np.zeros(hidden), []
  sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))
  for x_t in x_TxD:
    pre = np.einsum("ghd,d->gh", w_x, x_t) + np.einsum("ghk,k->gh", w_h, h) + b
    g, i, f, o = np.tanh(pre[0]), sigmoid(pre[1]), sigmoid(pre[2]), sigmoid(pre[3])
    s = g * i + s * f
    h = np.tanh(s) * o
    outputs.append(h)
  return np.stack(outputs)


def _np_layers(stack, x_TxD, residual):
  """Every layer's projected output of one direction read left to right: [L, T, D]."""
  f64 = lambda v: np.asarray(v[...], np.float64)
  z, outputs = x_TxD, []
  for j, (lstm, projection) in enumerate(zip(stack.layers, stack.projections)):
    h = _np_lstm(z, f64(lstm.w_x), f64(lstm.w_h), f64(lstm.b))
    out = h @ f64(projection.kernel) + f64(projection.bias)
    z = out + z if residual and j > 0 else out
    outputs.append(z)
  return np.stack(outputs)


def _np_log_softmax(logits):
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _np_direction_nlls(model, tokens_row, num_predicted, residual=True):
  """Forward and backward NLL (nats, float64 [n]) of one row's n predicted tokens.

  The backward LM is computed by reversing the real tokens and running its stack left to
  right: an independent statement of "reads the tokens after t".
  """
  table = np.asarray(model.embedding[...], np.float64)
  bias = np.asarray(model.output_bias[...], np.float64)
  embed = lambda ids: table[ids] * math.sqrt(DIM)
  real = tokens_row[:num_predicted + 1]
  forward_top = _np_layers(model.forward_lm, embed(real[:-1]), residual)[-1]
  forward = -_np_log_softmax(forward_top @ table.T + bias)[np.arange(num_predicted), real[1:]]
  backward_top = _np_layers(model.backward_lm, embed(real[1:][::-1]), residual)[-1][::-1]
  backward = -_np_log_softmax(backward_top @ table.T + bias)[np.arange(num_predicted), real[:-1]]
  return forward, backward


# ---------------------------------------------------------------- tests


def test_each_direction_sees_only_its_own_side_through_gradients():
  """d logits / d (per-id input offset) on rows of distinct ids: the row positions read.

  Row indexing (tokens [B, T + 1]): forward logits at t (predicting token t + 1) depend on
  tokens s ≤ t exactly; backward logits at t (predicting token t) on tokens t + 1 ≤ s ≤ n
  exactly, n the row's last real token: never on the target or anything before it, nor
  on padding. The offsets enter through ``BiLM.embed`` only (the tied softmax reads
  ``embedding`` directly), so the method's own slicing in ``direction_logits`` is tested.
  """
  model, batch = _model(), _batch()
  tokens = batch["tokens"]
  readout = jnp.asarray(np.random.default_rng(1).normal(size=VOCAB), jnp.float32)
  graphdef, state = nnx.split(model)
  embed = BiLM.embed

  def logits_fn(delta_VxD):
    with mock.patch.object(BiLM, "embed", lambda self, ids: embed(self, ids) + delta_VxD[ids]):
      forward, backward = elmo.direction_logits(nnx.merge(graphdef, state), batch)
    return forward @ readout, backward @ readout  # [B, T] each.

  jac_forward, jac_backward = jax.jit(jax.jacrev(logits_fn))(jnp.zeros((VOCAB, DIM)))
  s = np.arange(LENGTH + 1)
  for b in range(2):
    n = int(WEIGHTS[b].sum())  # Last real row position.
    for t in range(n):  # Positions with a real target.
      reads_forward = np.abs(np.asarray(jac_forward[b, t])[tokens[b]]).sum(-1) > 0
      reads_backward = np.abs(np.asarray(jac_backward[b, t])[tokens[b]]).sum(-1) > 0
      np.testing.assert_array_equal(reads_forward, s <= t, err_msg=f"forward row {b} t={t}")
      np.testing.assert_array_equal(reads_backward, (s >= t + 1) & (s <= n),
                                    err_msg=f"backward row {b} t={t}")


@pytest.mark.parametrize("residual", [True, False])
def test_loss_equals_a_float64_numpy_loop(residual):
  model, batch = _model(seed=2, residual=residual), _batch(seed=3)
  loss, metrics = _jit_call(model, lambda m, b: elmo.loss_fn(m, b, None, None), batch)
  forward, backward = [], []
  for b in range(2):
    f, bw = _np_direction_nlls(model, batch["tokens"][b], int(WEIGHTS[b].sum()), residual)
    forward.append(f)
    backward.append(bw)
  forward_nll = np.concatenate(forward).mean()  # Mean over all predicted tokens of the batch.
  backward_nll = np.concatenate(backward).mean()
  np.testing.assert_allclose(metrics["forward_nll"], forward_nll, rtol=1e-5)
  np.testing.assert_allclose(metrics["backward_nll"], backward_nll, rtol=1e-5)
  np.testing.assert_allclose(loss, 0.5 * (forward_nll + backward_nll), rtol=1e-5)
  # Held-out scoring: logits_fn without a mask (forward LM, causal) and the backward sums.
  scored = _jit_call(model, language_models.sequence_nll_fn(elmo.logits_fn), batch)
  np.testing.assert_allclose(scored["nll"], [f.sum() for f in forward], rtol=1e-5)
  np.testing.assert_array_equal(scored["count"], WEIGHTS.sum(-1))
  scored_backward = _jit_call(model, elmo.backward_sequence_nll, batch)
  np.testing.assert_allclose(scored_backward["nll"], [bw.sum() for bw in backward], rtol=1e-5)


def test_representations_are_both_directions_projected_layers():
  model = _model(seed=4)
  tokens = _batch(seed=5)["tokens"][:, :LENGTH]
  lengths = [LENGTH, 4]
  mask = np.arange(LENGTH)[None, :] < np.array(lengths)[:, None]
  layers = _jit_call(model, lambda m, t, p: elmo.representations(m, t, p), tokens, mask)
  assert layers.shape == (LAYERS + 1, 2, LENGTH, 2 * DIM) and layers.dtype == jnp.float32
  layers = np.asarray(layers)
  for b, n in enumerate(lengths):
    real = tokens[b:b + 1, :n]  # The row alone, unpadded.
    x = np.asarray(model.embedding[...])[real[0]] * math.sqrt(DIM)  # √D · E[w], by hand.
    forward = np.asarray(model.forward_lm(model.embed(real)))[:, 0]  # [L, n, D]
    # Backward: the backward stack run left to right over the reversed tokens, reversed back.
    backward = np.asarray(model.backward_lm(model.embed(real[:, ::-1])))[:, 0, ::-1]
    np.testing.assert_allclose(layers[0, b, :n], np.concatenate([x, x], -1), rtol=1e-6)
    np.testing.assert_allclose(layers[1:, b, :n, :DIM], forward, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers[1:, b, :n, DIM:], backward, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layers[:, b, n:], 0.0)  # Padding.
  # The mask has power: unmasked, row 1's backward half reads the padding ids and differs.
  unmasked = np.asarray(model.backward_lm(model.embed(tokens), reverse=True))[:, 1, :lengths[1]]
  assert np.abs(layers[1:, 1, :lengths[1], DIM:] - unmasked).max() > 1e-3

  mix = ScalarMix(LAYERS + 1, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(mix(jnp.asarray(layers)), layers.mean(0), rtol=1e-5, atol=1e-6)
  scalars = np.array([0.3, -1.0, 2.0], np.float32)
  mix.scalars[...], mix.gamma[...] = jnp.asarray(scalars), jnp.asarray(1.7)
  weights = np.exp(scalars) / np.exp(scalars).sum()
  np.testing.assert_allclose(mix(jnp.asarray(layers)), 1.7 * np.tensordot(weights, layers, 1),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="ScalarMix expects"):
    mix(jnp.asarray(layers[:2]))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """One smoke run (configs/elmo.py:smoke, as ``python -m pretrain_jax.main`` runs it)."""
  workdir = tmp_path_factory.mktemp("elmo") / "run"
  return workdir, loop.train_and_evaluate(smoke_config("elmo"), workdir, progress=False)


def test_smoke_run_learns_both_directions_and_is_reloaded_for_scoring(trained_run):
  workdir, results = trained_run
  log_v = math.log(results["vocab_size"])
  # Measured: final loss 4.55 nats against ln 512 = 6.24 (a 1.7-nat drop in 100 steps).
  assert results["final_loss"] < log_v - 1.0
  records = [line for line in (workdir / "metrics.jsonl").read_text().splitlines() if line]
  last = json.loads(records[-1])
  assert last["forward_nll"] < log_v - 1.0 and last["backward_nll"] < log_v - 1.0
  for split in ("val", "test"):
    for key in ("perplexity", "backward_perplexity"):
      assert math.isfinite(results[f"{split}_{key}"]) and results[f"{split}_{key}"] > 1
    assert results[f"{split}_perplexity"] == pytest.approx(math.exp(results[f"{split}_nll"]))
    assert 0 < results[f"{split}_bits_per_character"] < 8
  assert results["val_perplexity"] < results["val_unigram_perplexity"]
  assert results["train_tokens_per_second"] > 0
  # Exact count: E [V, D] and b [V]; per direction and layer, LSTM (4HD + 4HH + 4H) and
  # projection (HD + D).
  config = smoke_config("elmo")
  v, d, h = results["vocab_size"], config.model.model_dim, config.elmo.hidden_dim
  per_layer = 4 * h * d + 4 * h * h + 4 * h + h * d + d
  assert results["num_parameters"] == v * d + v + 2 * config.elmo.num_layers * per_layer

  trained = loop.restore_trained(workdir)
  assert trained.run.config.method == "elmo" and trained.summary["step"] == results["num_steps"]
  text = ("It is a truth universally acknowledged, that a single man in possession of a good "
          "fortune, must be in want of a wife.")
  scores = language_models.score_text(trained, text)
  assert all(math.isfinite(scores[k]) for k in ("nll", "perplexity", "bits_per_character"))
  # Every token but the first is predicted once; bits/char = total nats / ln 2 / chars.
  assert scores["num_tokens"] == len(trained.run.info.tokenizer.encode(text)) - 1
  assert scores["bits_per_character"] == pytest.approx(
      scores["nll"] * scores["num_tokens"] / math.log(2) / scores["num_characters"])
  ids = np.asarray([trained.run.info.tokenizer.encode("Mr. Darcy walked in.")], np.int32)
  layers = elmo.representations(trained.model(), ids)
  assert layers.shape == (trained.run.config.elmo.num_layers + 1, 1, ids.shape[1],
                          2 * trained.run.config.model.model_dim)
  assert np.isfinite(np.asarray(layers)).all()

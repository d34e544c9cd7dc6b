"""Tests for the NNX Transformer: causality, padding, wiring vs jax.nn.dot_product_attention."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pretrain_jax.nn import attention
from pretrain_jax.nn import transformer

VOCAB, LAYERS, HEADS, DIM, MLP, MAX_LEN = 13, 2, 2, 16, 32, 8


def _model(causal, positional="sinusoidal", seed=0):
  return transformer.Transformer(vocab_size=VOCAB, num_layers=LAYERS, num_heads=HEADS,
                                 model_dim=DIM, mlp_dim=MLP, max_len=MAX_LEN, causal=causal,
                                 positional=positional, rngs=nnx.Rngs(seed))


def _jitted(model, method="__call__"):
  """Functional view: jit(f(params, tokens, padding_mask)) over nnx.split state."""
  graphdef, params = nnx.split(model, nnx.Param)

  @jax.jit
  def apply(params, tokens, padding_mask):
    return getattr(nnx.merge(graphdef, params), method)(tokens, padding_mask=padding_mask)

  return lambda tokens, padding_mask=None: apply(params, tokens, padding_mask)


def _call(module, method, *args, **kwargs):
  """module.method(*args, **kwargs) under jax.jit (fewer per-op compilations than eager)."""
  graphdef, state = nnx.split(module)
  run = jax.jit(lambda state, *a: getattr(nnx.merge(graphdef, state), method)(*a, **kwargs))
  return run(state, *args)


def _later_tokens_perturbed(tokens_T, rng):
  """Batch [T, T]: row t equals tokens_T up to position t and differs at every later one."""
  num_positions = tokens_T.shape[0]
  batch = np.tile(tokens_T, (num_positions, 1))
  for t in range(num_positions):
    batch[t, t + 1:] = (tokens_T[t + 1:] + rng.integers(1, VOCAB, num_positions - t - 1)) % VOCAB
  return batch


@pytest.mark.parametrize("positional", ["sinusoidal", "dials"])
def test_decoder_logits_ignore_later_tokens_encoder_does_not(positional):
  rng = np.random.default_rng(0)
  tokens_T = rng.integers(0, VOCAB, MAX_LEN)
  base = np.tile(tokens_T, (MAX_LEN, 1))
  perturbed = _later_tokens_perturbed(tokens_T, rng)
  for causal in (True, False):
    apply = _jitted(_model(causal, positional))
    logits_base, logits_perturbed = apply(
        jnp.asarray(np.concatenate([base, perturbed]))).reshape(2, MAX_LEN, MAX_LEN, VOCAB)
    chex.assert_shape(logits_base, (MAX_LEN, MAX_LEN, VOCAB))
    for t in range(MAX_LEN - 1):  # row t changed tokens after t only
      change = np.abs(np.asarray(logits_perturbed[t] - logits_base[t])).max(axis=-1)  # [T]
      if causal:
        np.testing.assert_allclose(change[:t + 1], 0.0, atol=1e-6)
      else:
        assert change[t] > 1e-4, f"encoder position {t} ignored later tokens"
      assert change[t + 1:].min() > 1e-4  # perturbed positions themselves change


def test_decoder_jacobian_wrt_embeddings_is_causal():
  """Gradient of logits[t] w.r.t. the embedding of token t' is zero exactly when t' > t."""
  model = _model(causal=True)
  tokens = jnp.asarray(np.random.default_rng(1).integers(0, VOCAB, (1, 5)))
  graphdef, params = nnx.split(model, nnx.Param)

  def logits_from_embeddings(embedded_TxD):
    m = nnx.merge(graphdef, params)
    x = embedded_TxD[None] + m.positions(5)[None]
    mask = attention.causal_mask(5)[None]
    for block in m.blocks:
      x = block(x, mask=mask)
    return m.logits_out(m.final_norm(x))[0]  # [T, V]

  embedded = model.embed(tokens)[0]
  np.testing.assert_allclose(jax.jit(logits_from_embeddings)(embedded),
                             _call(model, "__call__", tokens)[0], atol=1e-5)
  jacobian = jax.jit(jax.jacrev(logits_from_embeddings))(embedded)  # [T, V, T', D]
  dependence = np.abs(np.asarray(jacobian)).sum(axis=(1, 3))
  future = np.triu(np.ones((5, 5), bool), k=1)
  np.testing.assert_array_equal(dependence[future], 0.0)
  assert np.all(dependence[~future] > 0)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_tokens_do_not_change_real_positions(causal):
  rng = np.random.default_rng(2)
  padding = np.array([[1, 1, 0, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]], bool)
  tokens = rng.integers(0, VOCAB, padding.shape)
  other = np.where(padding, tokens, (tokens + 1 + rng.integers(0, VOCAB - 1, padding.shape))
                   % VOCAB)
  apply = _jitted(_model(causal))
  logits, logits_other = (apply(jnp.asarray(t), jnp.asarray(padding)) for t in (tokens, other))
  np.testing.assert_allclose(np.asarray(logits)[padding], np.asarray(logits_other)[padding],
                             atol=1e-6)
  # Without the mask the change is visible: the test above has power.
  unmasked, unmasked_other = apply(jnp.asarray(tokens)), apply(jnp.asarray(other))
  assert np.abs(np.asarray(unmasked - unmasked_other))[padding].max() > 1e-4


def test_attention_weights():
  model = _model(causal=True, positional="dials")
  # A non-trivial LayerNorm (init is scale 1, bias 0) so the oracle checks its parameters.
  norm, rng = model.blocks[0].attention_norm, np.random.default_rng(30)
  norm.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, DIM), jnp.float32)
  norm.bias[...] = jnp.asarray(rng.normal(scale=0.3, size=DIM), jnp.float32)
  padding = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 0, 1]], bool)
  tokens = jnp.asarray(np.random.default_rng(3).integers(0, VOCAB, padding.shape))
  weights = _jitted(model, "attention_weights")(tokens, jnp.asarray(padding))
  chex.assert_shape(weights, (LAYERS, 2, HEADS, 6, 6))
  assert weights.dtype == jnp.float32
  weights = np.asarray(weights)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  future = np.triu(np.ones((6, 6), bool), k=1)
  np.testing.assert_array_equal(weights[..., future], 0.0)
  np.testing.assert_array_equal(weights[:, 1, :, :, ~padding[1]], 0.0)
  # Layer 0 sees the embeddings: its weights must equal the oracle below, the slides'
  # equations written as plain float64 numpy loops from the raw parameters (no library
  # attention, positional or normalisation code).
  np.testing.assert_allclose(weights[0], _loop_first_layer_attention_weights(
      model, np.asarray(tokens), padding), atol=2e-6)


def _loop_first_layer_attention_weights(model, tokens, padding):
  """Independent oracle for layer 0's α[b, h, t, t'] of a causal "dials" Transformer.

  x[t] = E[token_t] + dial(t), dial(t)[2k] = cos(2^k ω t), dial(t)[2k + 1] = sin(2^k ω t)
  for k < n = min(D/2, bit_length(max_len)), ω = π / max_len, zeros after column 2n;
  m = LayerNorm(x) (biased variance, ε = 1e-6, then scale and bias);
  s[h, t, t'] = Σ_k (Σ_j W^Q[h, k, j] m[t, j]) (Σ_j W^K[h, k, j] m[t', j]) / √K over the
  allowed t' (t' ≤ t and token t' real); α = softmax over those t', 0 elsewhere.
  """
  embedding = np.asarray(model.embed.embedding[...], np.float64)
  block = model.blocks[0]
  scale = np.asarray(block.attention_norm.scale[...], np.float64)
  bias = np.asarray(block.attention_norm.bias[...], np.float64)
  w_query = np.asarray(block.attention.w_query[...], np.float64)
  w_key = np.asarray(block.attention.w_key[...], np.float64)
  batch, num_positions = tokens.shape
  num_heads, key_dim, model_dim = w_query.shape
  num_dials, omega = min(model_dim // 2, MAX_LEN.bit_length()), math.pi / MAX_LEN
  weights = np.zeros((batch, num_heads, num_positions, num_positions))
  for b in range(batch):
    normed = np.zeros((num_positions, model_dim))
    for t in range(num_positions):
      x = embedding[tokens[b, t]].copy()
      for k in range(num_dials):
        x[2 * k] += math.cos(2**k * omega * t)
        x[2 * k + 1] += math.sin(2**k * omega * t)
      mean = sum(x) / model_dim
      variance = sum((x_j - mean)**2 for x_j in x) / model_dim
      for j in range(model_dim):
        normed[t, j] = (x[j] - mean) / math.sqrt(variance + 1e-6) * scale[j] + bias[j]
    for h in range(num_heads):
      for t in range(num_positions):
        query = [sum(w_query[h, k, j] * normed[t, j] for j in range(model_dim))
                 for k in range(key_dim)]
        scores = {}
        for u in range(t + 1):
          if padding[b, u]:
            key = [sum(w_key[h, k, j] * normed[u, j] for j in range(model_dim))
                   for k in range(key_dim)]
            scores[u] = sum(q * c for q, c in zip(query, key)) / math.sqrt(key_dim)
        top = max(scores.values())
        total = sum(math.exp(v - top) for v in scores.values())
        for u, v in scores.items():
          weights[b, h, t, u] = math.exp(v - top) / total
  return weights


def test_multi_head_attention_matches_dot_product_attention():
  mha = transformer.MultiHeadAttention(model_dim=12, num_heads=3, key_dim=4, value_dim=4,
                                       rngs=nnx.Rngs(4))
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 5, 12)), jnp.float32)
  causal = attention.causal_mask(5)[None]
  project = lambda w: jnp.einsum("hkj,btj->bthk", w[...], x)
  heads = jax.nn.dot_product_attention(project(mha.w_query), project(mha.w_key),
                                       project(mha.w_value), is_causal=True)
  expected = heads.reshape(2, 5, 12) @ mha.output.kernel[...] + mha.output.bias[...][None, None]
  np.testing.assert_allclose(_call(mha, "__call__", x, mask=causal), expected, atol=1e-5)
  np.testing.assert_allclose(
      _call(mha, "__call__", x, mask=jnp.broadcast_to(causal, (2, 5, 5))), expected, atol=1e-5)
  with pytest.raises(ValueError, match="mask"):
    mha(x, mask=causal[:, :4])


@pytest.mark.parametrize("causal", [True, False])
def test_dot_product_attention_implementation_computes_the_same_model(causal):
  # Same seed, same parameters; jax.nn.dot_product_attention must give the project's
  # logits and gradients, padding included (attention.multi_head_self_attention is the oracle).
  def build(implementation):
    return transformer.Transformer(vocab_size=VOCAB, num_layers=LAYERS, num_heads=HEADS,
                                   model_dim=DIM, mlp_dim=MLP, max_len=MAX_LEN, causal=causal,
                                   attention_implementation=implementation, rngs=nnx.Rngs(3))

  ours, xla = build("project"), build("xla")
  params = nnx.state(ours, nnx.Param)
  chex.assert_trees_all_equal(params, nnx.state(xla, nnx.Param))
  rng = np.random.default_rng(3)
  tokens = jnp.asarray(rng.integers(0, VOCAB, (3, MAX_LEN)), jnp.int32)
  padding_mask = jnp.asarray(np.arange(MAX_LEN)[None, :] < np.array([[MAX_LEN], [5], [1]]))

  def loss(model, params):
    graphdef, _ = nnx.split(model, nnx.Param)
    logits = nnx.merge(graphdef, params, nnx.state(model, nnx.Not(nnx.Param)))(
        tokens, padding_mask=padding_mask)
    return jnp.sum(jnp.where(padding_mask[..., None], jax.nn.log_softmax(logits), 0.0)), logits

  (value_ours, logits_ours), grads_ours = jax.jit(jax.value_and_grad(
      lambda p: loss(ours, p), has_aux=True))(params)
  (value_xla, logits_xla), grads_xla = jax.jit(jax.value_and_grad(
      lambda p: loss(xla, p), has_aux=True))(params)
  real = np.asarray(padding_mask)
  np.testing.assert_allclose(np.asarray(logits_xla)[real], np.asarray(logits_ours)[real],
                             atol=2e-5)
  np.testing.assert_allclose(value_xla, value_ours, rtol=1e-5)
  chex.assert_trees_all_close(grads_xla, grads_ours, atol=2e-5)


def test_dot_product_attention_gives_zero_heads_on_fully_masked_rows():
  mha = transformer.MultiHeadAttention(model_dim=8, num_heads=2, key_dim=4, value_dim=4,
                                       implementation="xla", rngs=nnx.Rngs(5))
  x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 3, 8)), jnp.float32)
  mask = jnp.asarray([[[True, False, False], [False, False, False], [True, True, True]]])
  out = np.asarray(_call(mha, "__call__", x, mask=mask))
  np.testing.assert_allclose(out[0, 1], np.asarray(mha.output.bias[...]), atol=1e-6)
  with pytest.raises(ValueError, match="attention implementation must be one of"):
    transformer.MultiHeadAttention(model_dim=8, num_heads=2, key_dim=4, value_dim=4,
                                   implementation="flash", rngs=nnx.Rngs(5))


def test_block_is_pre_layernorm_residual():
  block = transformer.TransformerBlock(model_dim=8, num_heads=2, mlp_dim=16, rngs=nnx.Rngs(5))
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 3, 8)), jnp.float32)
  for layer in (block.mlp_out, block.attention.output):
    layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
    layer.bias[...] = jnp.zeros_like(layer.bias[...])
  np.testing.assert_array_equal(_call(block, "__call__", x), x)  # both branches silenced: identity
  block.mlp_in.kernel[...] = 3.0 * jnp.ones_like(block.mlp_in.kernel[...])
  block.mlp_out.kernel[...] = jnp.eye(16, 8)
  # Attention silenced; MLP branch alone: x + GELU(LN(x) W1 + b1) W2 with closed-form LN.
  normed = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-6)
  expected = x + jax.nn.gelu(normed @ (3.0 * jnp.ones((8, 16)))) @ jnp.eye(16, 8)
  np.testing.assert_allclose(_call(block, "__call__", x), expected, atol=1e-4)


def test_functional_gradient_step_reduces_loss():
  model = _model(causal=True)
  graphdef, params = nnx.split(model, nnx.Param)
  tokens = jnp.asarray(np.random.default_rng(6).integers(0, VOCAB, (4, MAX_LEN)))

  def loss_fn(params):
    logits = nnx.merge(graphdef, params)(tokens[:, :-1])
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1))

  loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
  chex.assert_tree_all_finite(grads)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
  stepped = jax.tree.map(lambda p, g: p - 1e-2 * g, params, grads)
  assert jax.jit(loss_fn)(stepped) < loss


def test_dial_positions_are_distinct_within_max_len():
  positions = np.asarray(_model(causal=False, positional="dials").positions(MAX_LEN))
  chex.assert_shape(positions, (MAX_LEN, DIM))
  gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
  assert gaps[~np.eye(MAX_LEN, dtype=bool)].min() > 0.1


def test_shapes_dtypes_and_errors():
  model = _model(causal=False)
  tokens = jnp.zeros((3, 4), jnp.int32)
  logits = _call(model, "__call__", tokens)
  assert logits.dtype == jnp.float32
  chex.assert_shape(logits, (3, 4, VOCAB))
  chex.assert_shape(_call(model, "encode", tokens), (3, 4, DIM))
  with pytest.raises(ValueError, match="'sinusoidal', 'dials'"):
    _model(causal=False, positional="learned")
  with pytest.raises(ValueError, match="max_len"):
    model(jnp.zeros((1, MAX_LEN + 1), jnp.int32))
  with pytest.raises(ValueError, match="padding_mask"):
    model(tokens, padding_mask=jnp.ones((3, 5), bool))
  with pytest.raises(ValueError, match="multiple of num_heads"):
    transformer.TransformerBlock(model_dim=10, num_heads=3, mlp_dim=4, rngs=nnx.Rngs(0))

"""Tests for KV-cache decoding and generation: full-forward oracles, exact sampling laws."""

import functools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pretrain_jax.nn import decoding
from pretrain_jax.nn import transformer

VOCAB, LAYERS, HEADS, DIM, MLP, MAX_LEN = 13, 2, 2, 16, 32, 16


def _model(positional="sinusoidal", causal=True):
  return transformer.Transformer(vocab_size=VOCAB, num_layers=LAYERS, num_heads=HEADS,
                                 model_dim=DIM, mlp_dim=MLP, max_len=MAX_LEN, causal=causal,
                                 positional=positional, rngs=nnx.Rngs(0))


@functools.cache
def _split(positional="sinusoidal"):
  """graphdef, params of a tiny causal model with random float32 parameters from numpy.

  Drawing them here rather than through the module's initialisers skips compiling the
  truncated-normal initialisers (several seconds on CPU). LayerNorm scales are drawn around
  1 and biases around 0, so those parameters are exercised too.
  """
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: _model(positional)), nnx.Param)
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    names = [getattr(k, "key", None) for k in path]
    noise = rng.normal(size=leaf.shape)
    value = 1.0 + 0.2 * noise if "scale" in names else 0.3 * noise
    return jnp.asarray(value, leaf.dtype)

  return graphdef, jax.tree.map_with_path(draw, abstract)


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, tokens):
  """The full forward pass model(tokens), shared by the tests (compiled once per shape)."""
  return nnx.merge(graphdef, params)(tokens)


def _tokens(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).integers(0, VOCAB, shape), jnp.int32)


def _full_forward_loop(graphdef, params, prompt, num_new, choose_fn):
  """Independent generation: the full forward pass over the whole sequence at every step.

  The sequence lives in a [B, T0 + N] buffer whose unfilled tail holds token 0: the
  decoder is causal (tests/test_transformer.py checks it), so the logits at position t - 1
  are those of model(tokens[:, :t]), and one compilation serves every step.
  """
  buffer = np.zeros((prompt.shape[0], prompt.shape[1] + num_new), np.int32)
  buffer[:, :prompt.shape[1]] = prompt
  for step, t in enumerate(range(prompt.shape[1], buffer.shape[1])):
    logits_BxV = _forward(graphdef, params, jnp.asarray(buffer))[:, t - 1]
    buffer[:, t] = choose_fn(step, logits_BxV)
  return buffer


@pytest.mark.parametrize("positional", ["sinusoidal", "dials"])
def test_cached_decode_matches_full_forward(positional):
  """Prefill 3, three single steps, two chunks of 3: logits equal model(tokens) there."""
  graphdef, params = _split(positional)
  model = nnx.merge(graphdef, params)
  traced_sizes = []

  @jax.jit
  def decode(params, tokens, cache):
    traced_sizes.append(tokens.shape[1])
    return nnx.merge(graphdef, params).decode(tokens, cache)

  tokens = _tokens((2, MAX_LEN), seed=1)
  expected = np.asarray(_forward(graphdef, params, tokens))
  capacity = 14  # fewer slots than max_len: positions must not depend on the capacity
  cache = model.init_cache(2, max_len=capacity)
  rng = np.random.default_rng(2)
  # Finite garbage in every slot: slots at or beyond the current length must get weight 0.
  cache = cache._replace(
      keys=tuple(jnp.asarray(rng.normal(scale=30.0, size=k.shape), jnp.float32)
                 for k in cache.keys),
      values=tuple(jnp.asarray(rng.normal(scale=30.0, size=v.shape), jnp.float32)
                   for v in cache.values))
  chex.assert_shape(cache.keys, [(2, HEADS, capacity, DIM // HEADS)] * LAYERS)
  start = 0
  for num_new in (3, 1, 1, 1, 3, 3):
    logits, cache = decode(params, tokens[:, start:start + num_new], cache)
    assert logits.dtype == jnp.float32
    chex.assert_shape(logits, (2, num_new, VOCAB))
    np.testing.assert_allclose(logits, expected[:, start:start + num_new], atol=1e-5,
                               err_msg=f"positions {start}..{start + num_new - 1}")
    start += num_new
    assert int(cache.length) == start
  # One trace per chunk size S: the offset cache.length is traced, not static.
  assert traced_sizes == [3, 1]


def test_greedy_generation_matches_full_forward_loop():
  graphdef, params = _split()
  prompt, num_new = _tokens((2, 10), seed=4), 6
  generated = decoding.generate(graphdef, params, jax.random.key(0), prompt,
                                max_new_tokens=num_new, temperature=0.0)
  assert generated.dtype == jnp.int32
  chex.assert_shape(generated, (2, 10 + num_new))
  expected = _full_forward_loop(graphdef, params, prompt, num_new,
                                lambda step, logits: np.argmax(logits, axis=-1))
  np.testing.assert_array_equal(generated, expected)


def test_sampled_generation_matches_full_forward_loop():
  """Same key schedule (split(key, N)[i] for token i), full forward instead of the cache."""
  graphdef, params = _split()
  prompt, num_new, key = _tokens((2, 10), seed=6), 6, jax.random.key(7)
  generated = decoding.generate(graphdef, params, key, prompt, max_new_tokens=num_new,
                                temperature=1.5, top_k=5)
  step_keys = jax.random.split(key, num_new)
  expected = _full_forward_loop(
      graphdef, params, prompt, num_new, lambda step, logits: decoding.sample_logits(
          step_keys[step], logits, temperature=1.5, top_k=5))
  np.testing.assert_array_equal(generated, expected)
  # Sampling has power here: at least one token differs from the greedy continuation.
  greedy = decoding.generate(graphdef, params, key, prompt, max_new_tokens=num_new,
                             temperature=0.0)
  assert np.any(np.asarray(generated) != np.asarray(greedy))


def test_greedy_and_top_1_sampling_take_the_argmax():
  logits = jnp.asarray(np.random.default_rng(8).normal(size=(500, VOCAB)), jnp.float32)
  argmax = np.asarray(logits).argmax(-1)
  np.testing.assert_array_equal(
      decoding.sample_logits(jax.random.key(0), logits, temperature=0.0), argmax)
  for seed in range(3):
    np.testing.assert_array_equal(decoding.sample_logits(
        jax.random.key(seed), logits, temperature=1.3, top_k=1), argmax)


def test_top_k_samples_only_the_k_largest_logits():
  rng, top_k, num_rows, draws = np.random.default_rng(9), 4, 20, 500
  logits_RxV = rng.normal(size=(num_rows, VOCAB)).astype(np.float32)
  logits = jnp.asarray(np.repeat(logits_RxV, draws, axis=0))  # [R * draws, V]
  samples = np.asarray(decoding.sample_logits(jax.random.key(1), logits, temperature=2.0,
                                              top_k=top_k)).reshape(num_rows, draws)
  top_sets = np.argsort(-logits_RxV, axis=-1)[:, :top_k]
  for row in range(num_rows):
    assert set(samples[row]) == set(top_sets[row]), f"row {row}"  # all k, nothing else


@pytest.mark.parametrize("temperature,top_k", [(0.7, None), (1.0, 0), (2.5, 3)])
def test_sample_frequencies_match_tempered_softmax(temperature, top_k):
  """Counts of n draws vs the exact law softmax(logits / T) (renormalised on the top k)."""
  logits = np.array([2.0, 1.0, 0.5, -1.0, 0.0, 3.0, -2.0])
  kept = np.ones(logits.size, bool)
  if top_k:
    kept = logits >= np.sort(logits)[-top_k]
  weights = np.where(kept, np.exp(logits / temperature), 0.0)
  expected = weights / weights.sum()  # exact enumeration over the vocabulary
  num_draws = 40_000
  samples = decoding.sample_logits(
      jax.random.key(2), jnp.asarray(np.tile(logits, (num_draws, 1)), jnp.float32),
      temperature=temperature, top_k=top_k)
  frequency = np.bincount(np.asarray(samples), minlength=logits.size) / num_draws
  # Each count is Binomial(n, p): 5 standard deviations (false alarm ~ 1e-6 per entry).
  bound = 5.0 * np.sqrt(expected * (1.0 - expected) / num_draws)
  np.testing.assert_array_less(np.abs(frequency - expected), bound + 1e-12)


def test_generation_compiles_once_per_shape(monkeypatch):
  """Transformer.decode is traced twice per compilation (prefill + scan body), not per token."""
  traces = []
  decode = transformer.Transformer.decode

  def counting_decode(self, tokens, cache):
    traces.append(tokens.shape)
    return decode(self, tokens, cache)

  monkeypatch.setattr(transformer.Transformer, "decode", counting_decode)
  graphdef, params = _split()
  # B=3, T0=2, N=5 are used by no other test, so the first call must trace.
  for seed in range(3):  # new key and prompt, same shapes: no retrace
    generated = decoding.generate(graphdef, params, jax.random.key(seed),
                                  _tokens((3, 2), seed=seed), max_new_tokens=5,
                                  temperature=0.9, top_k=4)
    chex.assert_shape(generated, (3, 7))
  # 5 tokens from 2 traces of decode: the per-token loop is neither unrolled nor retraced.
  assert traces == [(3, 2), (3, 1)]


def test_long_prompt_is_truncated_from_the_left_with_one_warning():
  graphdef, params = _split()
  prompt, num_new = _tokens((2, 14), seed=12), 6
  kept = MAX_LEN - num_new
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    generated = decoding.generate(graphdef, params, jax.random.key(3), prompt,
                                  max_new_tokens=num_new, temperature=0.0)
  assert len(caught) == 1 and issubclass(caught[0].category, UserWarning)
  assert f"last {kept} prompt tokens" in str(caught[0].message)
  chex.assert_shape(generated, (2, MAX_LEN))
  np.testing.assert_array_equal(generated[:, :kept], prompt[:, -kept:])
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a prompt that fits: no warning
    np.testing.assert_array_equal(generated, decoding.generate(
        graphdef, params, jax.random.key(3), prompt[:, -kept:], max_new_tokens=num_new,
        temperature=0.0))


def test_bad_inputs_raise_value_errors():
  graphdef, params = _split()
  model = nnx.merge(graphdef, params)
  prompt = _tokens((2, 3), seed=14)
  generate = lambda prompt=prompt, **kw: decoding.generate(
      graphdef, params, jax.random.key(0), prompt, **{"max_new_tokens": 2, **kw})
  cases = [
      (dict(prompt=jnp.zeros((2, 0), jnp.int32)), "empty"),
      (dict(prompt=jnp.zeros((0, 3), jnp.int32)), "empty"),
      (dict(prompt=prompt[0]), r"\[B, T0\]"),
      (dict(prompt=prompt.astype(jnp.float32)), "integer"),
      (dict(temperature=-0.5), "temperature"),
      (dict(temperature=float("nan")), "temperature"),
      (dict(top_k=VOCAB + 1), "top_k"),
      (dict(top_k=-1), "top_k"),
      (dict(max_new_tokens=0), "max_new_tokens"),
      (dict(max_new_tokens=MAX_LEN), "max_len"),
  ]
  for kwargs, message in cases:
    with pytest.raises(ValueError, match=message):
      generate(**kwargs)
  logits = jnp.zeros((2, VOCAB), jnp.float32)
  with pytest.raises(ValueError, match="temperature"):
    decoding.sample_logits(jax.random.key(0), logits, temperature=-1.0)
  with pytest.raises(ValueError, match="top_k"):
    decoding.sample_logits(jax.random.key(0), logits, temperature=1.0, top_k=VOCAB + 1)
  with pytest.raises(ValueError, match=r"\[B, V\]"):
    decoding.sample_logits(jax.random.key(0), logits[0], temperature=1.0)
  with pytest.raises(TypeError, match="temperature"):
    decoding.sample_logits(jax.random.key(0), logits, temperature=jnp.float32(1.0)[None])
  encoder = nnx.eval_shape(lambda: _model(causal=False))  # abstract: no initialisation
  with pytest.raises(ValueError, match="causal"):
    decoding.generate(*nnx.split(encoder, nnx.Param), jax.random.key(0), prompt,
                      max_new_tokens=2)
  with pytest.raises(ValueError, match="causal"):
    encoder.init_cache(2)
  with pytest.raises(ValueError, match="max_len"):
    model.init_cache(2, max_len=MAX_LEN + 1)
  cache = model.init_cache(2, max_len=4)
  with pytest.raises(ValueError, match="B=2"):
    model.decode(jnp.zeros((3, 1), jnp.int32), cache)
  cache = cache._replace(length=jnp.asarray(3, jnp.int32))
  with pytest.raises(ValueError, match="not fit"):
    model.decode(jnp.zeros((2, 2), jnp.int32), cache)

"""Autoregressive text generation with a causal ``Transformer`` and its key/value cache.

Pure functions over pytrees ("NNX inside, pytrees outside"): ``generate`` takes the
``graphdef, params = nnx.split(model, nnx.Param)`` of a causal
``pretrain_jax.nn.transformer.Transformer`` and merges them inside one jitted function that
prefills the cache with the prompt (``Transformer.decode`` with S = T0) and then samples
one token per step of a ``lax.scan``. It compiles once per (graphdef, B, T0, N,
temperature, top_k) and never per token or per call.

Shape letters: B batch, T0 prompt length, N new tokens, V vocabulary size, K top-k.

Example::

    graphdef, params = nnx.split(model, nnx.Param)
    tokens = generate(graphdef, params, jax.random.key(0), prompt_BxT0,
                      max_new_tokens=32, temperature=0.8, top_k=40)  # int32 [B, T0 + 32]
"""

import functools
import math
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

__all__ = ["sample_logits", "generate"]


def _check_sampling(temperature, top_k, vocab_size):
  """Raises for a temperature or top_k that sample_logits cannot use."""
  if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
    raise TypeError(f"temperature must be a Python float (static), got {temperature!r}.")
  if not (math.isfinite(temperature) and temperature >= 0):
    raise ValueError(f"temperature must be finite and >= 0 (0 = greedy), got {temperature}.")
  if top_k is None:
    return
  if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
    raise TypeError(f"top_k must be a Python int or None, got {top_k!r}.")
  if not 0 <= top_k <= vocab_size:
    raise ValueError(
        f"top_k must be in [0, {vocab_size}] (the vocabulary size; 0 or None = no"
        f" truncation), got {top_k}.")


def sample_logits(key, logits, *, temperature, top_k=None):
  """Draws one token per row from softmax(logits / temperature), optionally top-k truncated.

  temperature = 0 is greedy decoding: argmax of the logits (first index on ties; key and
  top_k are unused). Otherwise the token is drawn from p ∝ exp(logits / temperature) over
  the top_k largest logits (all V when top_k is None or 0), by the Gumbel-max trick of
  ``jax.random.categorical``. Computed in float32 whatever the logits dtype.

  Source: Ackley, Hinton & Sejnowski 1985 (Boltzmann distribution with temperature);
  Fan, Lewis & Dauphin 2018, "Hierarchical Neural Story Generation", Sec. 5.4 (top-k).

  Args:
    key: a PRNG key (``jax.random.key`` or ``PRNGKey``).
    logits: float array [B, V], unnormalised log-probabilities in nats.
    temperature: Python float >= 0 (static: another value means another compilation of
      a jitted caller); dimensionless divisor of the logits.
    top_k: Python int in [0, V] or None; keep only the top_k largest logits (ties at the
      boundary are broken by ``lax.top_k``, lower index first). None or 0 keeps all.

  Returns:
    int32 array [B] of token ids in [0, V).

  Raises:
    ValueError: if logits are not [B, V], temperature < 0 or not finite, or top_k is
      outside [0, V].
    TypeError: if temperature or top_k are not Python numbers (e.g. traced arrays).
  """
  if logits.ndim != 2:
    raise ValueError(f"logits must be float [B, V], got shape {logits.shape}; take the last"
                     " position of decode's [B, S, V] output.")
  _check_sampling(temperature, top_k, logits.shape[-1])
  logits_BxV = logits.astype(jnp.float32)
  if temperature == 0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  scaled_BxV = logits_BxV / jnp.float32(temperature)
  if not top_k:
    return jax.random.categorical(key, scaled_BxV, axis=-1).astype(jnp.int32)
  top_BxK, ids_BxK = lax.top_k(scaled_BxV, top_k)
  choice_B = jax.random.categorical(key, top_BxK, axis=-1)
  return jnp.take_along_axis(ids_BxK, choice_B[:, None], axis=-1)[:, 0].astype(jnp.int32)


@functools.partial(jax.jit,
                   static_argnames=("graphdef", "max_new_tokens", "temperature", "top_k"))
def _generate_tokens(graphdef, params, key, prompt_BxT0, *, max_new_tokens, temperature,
                     top_k):
  """Prefill + lax.scan sampling loop; returns the N new tokens, int32 [B, N]."""
  model = nnx.merge(graphdef, params)
  batch, prompt_len = prompt_BxT0.shape
  cache = model.init_cache(batch, max_len=prompt_len + max_new_tokens)
  keys = jax.random.split(key, max_new_tokens)
  logits_BxT0xV, cache = model.decode(prompt_BxT0, cache)
  first_B = sample_logits(keys[0], logits_BxT0xV[:, -1], temperature=temperature,
                          top_k=top_k)

  def step(carry, step_key):
    token_B, cache = carry
    logits_Bx1xV, cache = model.decode(token_B[:, None], cache)
    next_B = sample_logits(step_key, logits_Bx1xV[:, 0], temperature=temperature,
                           top_k=top_k)
    return (next_B, cache), next_B

  _, rest_Nm1xB = lax.scan(step, (first_B, cache), keys[1:])
  return jnp.concatenate([first_B[:, None], rest_Nm1xB.T], axis=1)


def generate(graphdef, params, key, prompt_tokens, *, max_new_tokens, temperature=1.0,
             top_k=None):
  """Continues each prompt by max_new_tokens tokens sampled from a causal Transformer.

  The prompt fills the key/value cache in one ``Transformer.decode`` call, then each new
  token is drawn with ``sample_logits`` from the logits at the last position and fed back,
  inside one jitted ``lax.scan``: one compilation per (graphdef, B, T0, N, temperature,
  top_k). All prompts of the batch have the same length T0 (no padding support).

  Prompts longer than the context are truncated from the LEFT: when T0 + N > max_len only
  the last max_len - N prompt tokens are kept (and returned), with one ``UserWarning``
  per call.

  Source: Radford et al. 2019 (autoregressive sampling from GPT-2); top-k sampling as in
  Fan, Lewis & Dauphin 2018.

  Args:
    graphdef: the ``nnx.GraphDef`` of a causal ``Transformer``, from
      ``graphdef, params = nnx.split(model, nnx.Param)`` (static, hashable).
    params: the matching ``nnx.State`` of parameters.
    key: a PRNG key; new token i is drawn with ``jax.random.split(key, N)[i]``
      (unused when temperature = 0).
    prompt_tokens: int array [B, T0] of token ids in [0, V), B >= 1, T0 >= 1 (not
      checked against V).
    max_new_tokens: int N, 1 <= N < max_len.
    temperature: Python float >= 0; 0 = greedy (argmax) decoding.
    top_k: Python int in [0, V] or None; sample among the top_k largest logits
      (None or 0: all).

  Returns:
    int32 array [B, T0' + N]: the (possibly left-truncated, T0' = min(T0, max_len - N))
    prompt followed by the N generated tokens.

  Raises:
    ValueError: for an empty or non-integer prompt, prompt_tokens not [B, T0],
      max_new_tokens < 1 or >= max_len, temperature < 0, top_k outside [0, V], or an
      encoder model (causal=False).
    TypeError: if temperature or top_k are not Python numbers, or max_new_tokens is not a
      Python int.
  """
  model = nnx.merge(graphdef, params)  # read its configuration only
  if not model.causal:
    raise ValueError("generate needs a causal decoder; build the Transformer with"
                     " causal=True.")
  shape, dtype = np.shape(prompt_tokens), getattr(prompt_tokens, "dtype", None)
  if len(shape) != 2:
    raise ValueError(f"prompt_tokens must be int [B, T0], got shape {shape}; add a batch"
                     " axis with prompt[None].")
  if min(shape) < 1:
    raise ValueError(f"prompt_tokens is empty (shape {shape}); pass at least one row and one"
                     " token per row, e.g. a beginning-of-sequence id.")
  if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    raise ValueError(f"prompt_tokens must hold integer token ids, got dtype {dtype}; cast"
                     " with .astype(jnp.int32).")
  if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral):
    raise TypeError(f"max_new_tokens must be a Python int, got {max_new_tokens!r}.")
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
  if max_new_tokens >= model.max_len:
    raise ValueError(
        f"max_new_tokens={max_new_tokens} leaves no room for the prompt in max_len="
        f"{model.max_len}; ask for fewer tokens or build the model with a larger max_len.")
  _check_sampling(temperature, top_k, model.vocab_size)
  prompt_BxT0 = jnp.asarray(prompt_tokens, jnp.int32)
  keep = model.max_len - max_new_tokens
  if shape[1] > keep:
    warnings.warn(
        f"prompt of {shape[1]} tokens + max_new_tokens={max_new_tokens} exceeds max_len="
        f"{model.max_len}: keeping only the last {keep} prompt tokens.", stacklevel=2)
    prompt_BxT0 = prompt_BxT0[:, -keep:]
  new_BxN = _generate_tokens(graphdef, params, key, prompt_BxT0,
                             max_new_tokens=int(max_new_tokens),
                             temperature=float(temperature),
                             top_k=int(top_k) if top_k and temperature > 0 else None)
  return jnp.concatenate([prompt_BxT0, new_BxN], axis=1)

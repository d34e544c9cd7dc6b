"""Transformer encoder (BERT-style) and decoder (GPT-style) as Flax NNX modules.

Built on the pure functions of ``pretrain_jax.nn.attention``; modules take dimensions and
``rngs`` for initialisation only and hold no dropout RNG (there is no dropout).

Shape letters: B batch, T length, H heads, K head (query/key) dim, I value dim,
D model dim, V vocabulary size, L layers; S new positions and T_max cache slots in the
key/value-cache decoding path (``Transformer.init_cache`` / ``Transformer.decode``).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from pretrain_jax.nn import attention

POSITIONAL_ENCODINGS = ("sinusoidal", "dials")

# How the attention of ``__call__`` is computed (the same function of the same weights):
# "project" = ``attention.multi_head_self_attention``; "xla" / "cudnn" =
# ``jax.nn.dot_product_attention`` with that ``implementation`` ("cudnn": the fused
# flash-attention kernel of NVIDIA GPUs).
ATTENTION_IMPLEMENTATIONS = ("project", "xla", "cudnn")


def _check_attention_implementation(implementation):
  if implementation not in ATTENTION_IMPLEMENTATIONS:
    raise ValueError(f"attention implementation must be one of {ATTENTION_IMPLEMENTATIONS}, "
                     f"got {implementation!r}.")


class KVCache(NamedTuple):
  """Keys and values of the positions already processed by a causal ``Transformer``.

  A plain pytree (carry it through ``jax.jit`` and ``lax.scan``); build it with
  ``Transformer.init_cache`` and advance it with ``Transformer.decode``. One ``length``
  for the whole batch: every sequence in the batch sits at the same position, so batched
  prompts must have equal length (there is no left-padding support).

  Attributes:
    keys: tuple of L arrays [B, H, T_max, K]; keys[l][b, h, t] = W^K m_t of layer l and
      head h for slots t < length (slots >= length hold zeros or stale values, never read).
    values: tuple of L arrays [B, H, T_max, I], the values W^V m_t, laid out like keys.
    length: int32 scalar, number of filled slots = absolute position of the next token.
  """

  keys: tuple
  values: tuple
  length: jax.Array


def _concrete_int(x):
  """int(x) for a concrete scalar, None for a traced one (checks that only run eagerly)."""
  try:
    return int(x)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
    return None


class MultiHeadAttention(nnx.Module):
  """Multi-head self-attention with output projection W^O.

  out[b] = concat_h(Attention_h(x[b])) W^O + b^O, with the heads computed by
  ``attention.multi_head_self_attention`` (vmapped over the batch), or by
  ``jax.nn.dot_product_attention`` on the same projections when ``implementation`` is
  "xla" or "cudnn" (same function; use whichever ``benchmarks/lm.py`` measures faster on
  the device).

  Source: Vaswani et al. 2017, "Attention Is All You Need", Eq. 2; D. McAllester,
  TTIC 31230 "Transformers" slides (index notation of W^Q, W^K, W^V).

  Attributes:
    w_query: nnx.Param float32 [H, K, D], W^Q.
    w_key: nnx.Param float32 [H, K, D], W^K.
    w_value: nnx.Param float32 [H, I, D], W^V.
    output: nnx.Linear H*I -> D, W^O with bias.
  """

  def __init__(self, *, model_dim, num_heads, key_dim, value_dim, implementation="project",
               rngs):
    """Initialises projections with LeCun-normal scaling (variance 1 / fan_in).

    Args:
      model_dim: int D, input and output dimension.
      num_heads: int H.
      key_dim: int K, query/key dimension per head.
      value_dim: int I, value dimension per head.
      implementation: one of ``ATTENTION_IMPLEMENTATIONS``, how ``__call__`` computes the
        heads; "cudnn" needs an NVIDIA GPU and K = I.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1 or the implementation is unknown.
    """
    _check_attention_implementation(implementation)
    if min(model_dim, num_heads, key_dim, value_dim) < 1:
      raise ValueError(
          f"MultiHeadAttention dimensions must be >= 1, got model_dim={model_dim},"
          f" num_heads={num_heads}, key_dim={key_dim}, value_dim={value_dim}.")
    init = nnx.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=-1, out_axis=(-3, -2))
    self.w_query = nnx.Param(init(rngs.params(), (num_heads, key_dim, model_dim)))
    self.w_key = nnx.Param(init(rngs.params(), (num_heads, key_dim, model_dim)))
    self.w_value = nnx.Param(init(rngs.params(), (num_heads, value_dim, model_dim)))
    self.output = nnx.Linear(num_heads * value_dim, model_dim, rngs=rngs)
    self.implementation = implementation

  def __call__(self, x, *, mask=None):
    """Self-attention of each sequence in a batch.

    Args:
      x: float array [B, T, D].
      mask: optional bool array [B, T, T] or [1, T, T] (shared by the batch);
        mask[b, t, t'] True iff position t may attend to t'. Fully masked rows give the
        zero vector before W^O (so the bias b^O after it).

    Returns:
      float array [B, T, D].

    Raises:
      ValueError: if x is not [B, T, D] or the mask does not fit.
    """
    if self.implementation != "project":
      return self.output(self._dot_product_attention(x, mask))
    heads_BxTxHI = self._per_sequence(attention.multi_head_self_attention,
                                      (self.w_query[...], self.w_key[...], self.w_value[...]),
                                      x, mask)
    return self.output(heads_BxTxHI)

  def _dot_product_attention(self, x, mask):
    """The heads through ``jax.nn.dot_product_attention``: float [B, T, H*I] (before W^O)."""
    self._check_inputs(x, mask)
    batch, num_positions = x.shape[:2]
    query_BxTxHxK = jnp.einsum("hkd,btd->bthk", self.w_query[...], x)
    key_BxTxHxK = jnp.einsum("hkd,btd->bthk", self.w_key[...], x)
    value_BxTxHxI = jnp.einsum("hid,btd->bthi", self.w_value[...], x)
    heads_BxTxHxI = jax.nn.dot_product_attention(
        query_BxTxHxK, key_BxTxHxK, value_BxTxHxI,
        mask=None if mask is None else mask[:, None], implementation=self.implementation)
    if mask is not None:  # A fully masked row gives the zero vector, as the project's.
      heads_BxTxHxI = jnp.where(jnp.any(mask, axis=-1)[:, :, None, None], heads_BxTxHxI, 0)
    return heads_BxTxHxI.reshape(batch, num_positions, -1)

  def attention_weights(self, x, *, mask=None):
    """Attention weights α for each sequence in a batch (same arguments as ``__call__``).

    Returns:
      float32 array [B, H, T, T]; rows sum to 1 (0 where fully masked).
    """
    return self._per_sequence(attention.attention_weights,
                              (self.w_query[...], self.w_key[...]), x, mask)

  def decode(self, x, keys, values, length):
    """Causal self-attention of S new positions over a key/value cache.

    The new rows of x are at absolute positions length .. length+S-1. Their keys W^K m and
    values W^V m are written into cache slots length .. length+S-1, and the query at
    position length+s attends to slots t <= length+s (earlier tokens and itself), which is
    ``__call__`` with ``attention.causal_mask`` restricted to those rows. Slots beyond
    length+S-1 get weight exactly 0, so they may hold any finite values. Scores and the
    softmax are computed in float32.

    Source: Vaswani et al. 2017, Eq. 1-2 and Sec. 3.2.3 (causal masking); caching the
    keys and values of earlier positions is the standard incremental decoding of
    autoregressive Transformers (e.g. Pope et al. 2022, "Efficiently Scaling Transformer
    Inference", Sec. 2).

    Args:
      x: float array [B, S, D], the (normalised) block inputs at the new positions.
      keys: array [B, H, T_max, K], cached keys; slots < length are filled.
      values: array [B, H, T_max, I], cached values; slots < length are filled.
      length: int32 scalar (may be traced), number of filled slots. The caller keeps
        length + S <= T_max (``Transformer.decode`` checks it when length is concrete;
        under jit an overflow would silently overwrite the last slots).

    Returns:
      (out, keys, values): out float array [B, S, D]; keys [B, H, T_max, K] and values
      [B, H, T_max, I] with the new slots written (in the cache dtypes).

    Raises:
      ValueError: if the shapes do not fit each other or the weights.
    """
    num_heads, key_dim, model_dim = self.w_query.shape
    value_dim = self.w_value.shape[1]
    if (x.ndim != 3 or x.shape[-1] != model_dim or keys.ndim != 4 or values.ndim != 4
        or keys.shape[:2] != (x.shape[0], num_heads) or keys.shape[3] != key_dim
        or values.shape != keys.shape[:3] + (value_dim,) or x.shape[1] > keys.shape[2]):
      raise ValueError(
          f"expected x [B, S, D], keys [B, H, T_max, K], values [B, H, T_max, I] with"
          f" H={num_heads}, K={key_dim}, I={value_dim}, D={model_dim} and S <= T_max; got"
          f" x {x.shape}, keys {keys.shape}, values {values.shape}. Build the cache with"
          " Transformer.init_cache.")
    batch, num_new = x.shape[0], x.shape[1]
    capacity = keys.shape[2]
    # Same arithmetic as attention.attention_weights: 1/√K folded into the queries.
    scale = jnp.asarray(1.0 / math.sqrt(key_dim), dtype=x.dtype)
    query_BxSxHxK = jnp.einsum("hkd,bsd->bshk", self.w_query[...], x) * scale
    key_BxHxSxK = jnp.einsum("hkd,bsd->bhsk", self.w_key[...], x)
    value_BxHxSxI = jnp.einsum("hid,bsd->bhsi", self.w_value[...], x)
    keys = lax.dynamic_update_slice(keys, key_BxHxSxK.astype(keys.dtype), (0, 0, length, 0))
    values = lax.dynamic_update_slice(values, value_BxHxSxI.astype(values.dtype),
                                      (0, 0, length, 0))
    scores_BxHxSxT = jnp.einsum("bshk,bhtk->bhst", query_BxSxHxK, keys,
                                preferred_element_type=jnp.float32).astype(jnp.float32)
    positions_Sx1 = (length + jnp.arange(num_new, dtype=jnp.int32))[:, None]
    mask_SxT = jnp.arange(capacity, dtype=jnp.int32)[None, :] <= positions_Sx1
    # Every row allows its own slot, so no row is fully masked and -inf is safe.
    scores_BxHxSxT = jnp.where(mask_SxT[None, None, :, :], scores_BxHxSxT, -jnp.inf)
    alpha_BxHxSxT = jax.nn.softmax(scores_BxHxSxT, axis=-1)
    heads_BxSxHxI = jnp.einsum("bhst,bhti->bshi", alpha_BxHxSxT.astype(values.dtype), values)
    out_BxSxD = self.output(heads_BxSxHxI.reshape(batch, num_new, num_heads * value_dim))
    return out_BxSxD, keys, values

  def _check_inputs(self, x, mask):
    """Raises ValueError unless x is [B, T, D] and mask None or [B or 1, T, T]."""
    if x.ndim != 3 or x.shape[-1] != self.w_query.shape[-1]:
      raise ValueError(
          f"expected x [B, T, D] with D={self.w_query.shape[-1]}, got {x.shape}.")
    batch, num_positions = x.shape[0], x.shape[1]
    if mask is not None and (mask.ndim != 3 or mask.shape[0] not in (1, batch)
                             or mask.shape[1:] != (num_positions, num_positions)):
      raise ValueError(
          f"mask must be bool [B or 1, T, T] = [{batch} or 1, {num_positions},"
          f" {num_positions}], got {mask.shape}.")

  def _per_sequence(self, fn, weights, x, mask):
    """vmaps fn(m, *weights, mask=...) over the batch, broadcasting a [1, T, T] mask."""
    self._check_inputs(x, mask)
    batch = x.shape[0]
    if mask is None:
      return jax.vmap(lambda m: fn(m, *weights))(x)
    mask_axis = 0 if mask.shape[0] == batch else None
    mask = mask if mask_axis == 0 else mask[0]
    return jax.vmap(lambda m, mk: fn(m, *weights, mask=mk), in_axes=(0, mask_axis))(x, mask)


class TransformerBlock(nnx.Module):
  """Pre-LayerNorm Transformer block: x + Attn(LN(x)), then x + MLP(LN(x)) with GELU.

  Heads split the model dimension: K = I = D / H.

  Source: Vaswani et al. 2017 (block structure); Xiong et al. 2020, "On Layer
  Normalization in the Transformer Architecture" (pre-LN placement); GPT-2 (Radford et
  al. 2019) uses the same placement.
  """

  def __init__(self, *, model_dim, num_heads, mlp_dim, attention_implementation="project",
               rngs):
    """Creates the block.

    Args:
      model_dim: int D, divisible by num_heads.
      num_heads: int H.
      mlp_dim: int, hidden width of the MLP.
      attention_implementation: ``MultiHeadAttention``'s ``implementation``.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if model_dim is not a positive multiple of num_heads, or mlp_dim < 1.
    """
    if num_heads < 1 or model_dim < 1 or model_dim % num_heads or mlp_dim < 1:
      raise ValueError(
          f"TransformerBlock needs model_dim a positive multiple of num_heads and"
          f" mlp_dim >= 1, got model_dim={model_dim}, num_heads={num_heads},"
          f" mlp_dim={mlp_dim}.")
    head_dim = model_dim // num_heads
    self.attention_norm = nnx.LayerNorm(model_dim, rngs=rngs)
    self.attention = MultiHeadAttention(model_dim=model_dim, num_heads=num_heads,
                                        key_dim=head_dim, value_dim=head_dim,
                                        implementation=attention_implementation, rngs=rngs)
    self.mlp_norm = nnx.LayerNorm(model_dim, rngs=rngs)
    self.mlp_in = nnx.Linear(model_dim, mlp_dim, rngs=rngs)
    self.mlp_out = nnx.Linear(mlp_dim, model_dim, rngs=rngs)

  def __call__(self, x, *, mask=None):
    """Applies the block.

    Args:
      x: float array [B, T, D].
      mask: optional bool array [B or 1, T, T], True = may attend.

    Returns:
      float array [B, T, D].
    """
    x = x + self.attention(self.attention_norm(x), mask=mask)
    return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.mlp_norm(x))))

  def attention_weights(self, x, *, mask=None):
    """Attention weights of this block for block input x: float32 [B, H, T, T]."""
    return self.attention.attention_weights(self.attention_norm(x), mask=mask)

  def decode(self, x, keys, values, length):
    """The block at S new positions with causal attention over a key/value cache.

    Args:
      x: float array [B, S, D], block inputs at positions length .. length+S-1.
      keys: array [B, H, T_max, K], this layer's cached keys.
      values: array [B, H, T_max, I], this layer's cached values.
      length: int32 scalar (may be traced), number of filled cache slots.

    Returns:
      (x, keys, values): block outputs [B, S, D] and the updated cache arrays
      (see ``MultiHeadAttention.decode``).
    """
    attended, keys, values = self.attention.decode(self.attention_norm(x), keys, values,
                                                   length)
    x = x + attended
    return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.mlp_norm(x)))), keys, values


class Transformer(nnx.Module):
  """Token embedding + fixed positional encoding + pre-LN blocks + LayerNorm + logits.

  ``causal=True`` is a decoder (GPT: position t attends to t' <= t); ``causal=False`` an
  encoder (BERT: every position attends to every real token).

  Positional encodings (added to the token embeddings, not learned):
    * "sinusoidal": ``attention.sinusoidal_positions(T, D)`` (Vaswani et al. 2017, 3.5).
    * "dials": ``attention.dial_positions`` with n = min(D // 2, max_len.bit_length())
      dials and ω = π / max_len, in the first 2n columns (the rest zero). The slowest dial
      turns less than half a turn over max_len positions, the fastest at most half a turn
      per position (McAllester, TTIC 31230 "Transformers" slides).

  Segment (token-type) embeddings, ``num_segments > 0``: a learned vector per segment id,
  added to the token embedding and the positional encoding (BERT's [CLS] A [SEP] = segment
  0, B [SEP] = segment 1; Devlin et al. 2019, Sec. 3 and Fig. 2). ``segment_ids`` default
  to 0 everywhere; with ``num_segments=0`` (the default) there is no such table and passing
  ``segment_ids`` is an error.

  A decoder also runs incrementally: ``init_cache`` builds a ``KVCache`` pytree and
  ``decode`` feeds new tokens through it, giving the logits of ``__call__`` at those
  positions; ``pretrain_jax.nn.decoding.generate`` builds text generation on them.

  Source: Vaswani et al. 2017; Radford et al. 2018/2019 (GPT, decoder-only);
  Devlin et al. 2019 (BERT, encoder-only).
  """

  def __init__(self, *, vocab_size, num_layers, num_heads, model_dim, mlp_dim, max_len,
               causal, positional="sinusoidal", num_segments=0,
               attention_implementation="project", rngs):
    """Creates the model.

    Args:
      vocab_size: int V, number of token ids.
      num_layers: int L >= 1.
      num_heads: int H; model_dim must be a multiple of it.
      model_dim: int D, even (for the positional encodings).
      mlp_dim: int, MLP hidden width.
      max_len: int, longest sequence accepted.
      causal: bool, True for a decoder (causal mask), False for an encoder.
      positional: "sinusoidal" or "dials".
      num_segments: int >= 0, number of segment (token-type) ids; 0 = no segment
        embeddings (GPT), 2 for BERT's sentence pairs. The table is created after every
        other parameter, so the other parameters do not depend on it for a given ``rngs``.
      attention_implementation: one of ``ATTENTION_IMPLEMENTATIONS`` (training and
        ``__call__``; ``decode`` and ``attention_weights`` always use the project's). It
        changes how, not what: the parameters are the same, so a checkpoint trained with
        one loads with another.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: on an unknown ``positional`` or attention implementation, an odd
        model_dim, a size < 1 or num_segments < 0.
    """
    _check_attention_implementation(attention_implementation)
    if positional not in POSITIONAL_ENCODINGS:
      raise ValueError(
          f"positional must be one of {POSITIONAL_ENCODINGS}, got {positional!r}.")
    if model_dim < 2 or model_dim % 2:
      raise ValueError(f"model_dim must be even and >= 2, got {model_dim}.")
    if min(vocab_size, num_layers, max_len) < 1:
      raise ValueError(
          f"vocab_size, num_layers and max_len must be >= 1, got {vocab_size},"
          f" {num_layers}, {max_len}.")
    if num_segments < 0:
      raise ValueError(f"num_segments must be >= 0 (0 = none), got {num_segments}.")
    self.vocab_size = vocab_size
    self.model_dim = model_dim
    self.max_len = max_len
    self.causal = causal
    self.positional = positional
    # Unit-variance embeddings, on the scale of the positional encodings.
    self.embed = nnx.Embed(vocab_size, model_dim,
                           embedding_init=nnx.initializers.normal(stddev=1.0), rngs=rngs)
    self.blocks = nnx.List([
        TransformerBlock(model_dim=model_dim, num_heads=num_heads, mlp_dim=mlp_dim,
                         attention_implementation=attention_implementation, rngs=rngs)
        for _ in range(num_layers)])
    self.final_norm = nnx.LayerNorm(model_dim, rngs=rngs)
    self.logits_out = nnx.Linear(model_dim, vocab_size, rngs=rngs)
    self.num_segments = num_segments
    if num_segments:
      # Unit variance like the token embeddings (Devlin et al. learn them from scratch too).
      self.segment_embed = nnx.Embed(num_segments, model_dim,
                                     embedding_init=nnx.initializers.normal(stddev=1.0),
                                     rngs=rngs)

  def __call__(self, tokens, *, padding_mask=None, segment_ids=None):
    """Logits for every position.

    Args:
      tokens: int32 array [B, T] of token ids in [0, V), T <= max_len.
      padding_mask: optional bool array [B, T], True = real token. Padded positions are
        never attended to; their own outputs are computed but meaningless.
      segment_ids: optional int32 array [B, T] in [0, num_segments), the segment of each
        token (BERT: 0 for [CLS] A [SEP], 1 for B [SEP]); None = all 0. Only for a model
        built with num_segments > 0.

    Returns:
      float32 array [B, T, V] of logits (decoder: of the token at t + 1 given tokens <= t).

    Raises:
      ValueError: if tokens are not [B, T] with T <= max_len, the mask or segment_ids do
        not fit, or segment_ids are given to a model with num_segments=0.
    """
    return self.logits_out(self.encode(tokens, padding_mask=padding_mask,
                                       segment_ids=segment_ids)).astype(jnp.float32)

  def encode(self, tokens, *, padding_mask=None, segment_ids=None):
    """Final hidden states (after the final LayerNorm), same arguments as ``__call__``.

    Returns:
      float array [B, T, D].
    """
    x, mask = self._embed(tokens, padding_mask, segment_ids)
    for block in self.blocks:
      x = block(x, mask=mask)
    return self.final_norm(x)

  def attention_weights(self, tokens, *, padding_mask=None, segment_ids=None):
    """Attention weights of every layer, same arguments as ``__call__``.

    Returns:
      float32 array [L, B, H, T, T]; [l, b, h, t, t'] is how much position t attends to
      t' in head h of layer l.
    """
    x, mask = self._embed(tokens, padding_mask, segment_ids)
    weights = []
    for block in self.blocks:
      weights.append(block.attention_weights(x, mask=mask))
      x = block(x, mask=mask)
    return jnp.stack(weights)

  def init_cache(self, batch_size, max_len=None, dtype=jnp.float32):
    """An empty key/value cache for ``decode`` (causal decoders only).

    Args:
      batch_size: int B >= 1.
      max_len: int T_max in [1, self.max_len], the number of slots (prompt + generated
        tokens); defaults to the model's max_len. A shorter cache attends over fewer slots.
      dtype: dtype of the cached keys and values (float32 by default).

    Returns:
      ``KVCache`` with zero keys [B, H, T_max, K] and values [B, H, T_max, I] per layer
      and length 0.

    Raises:
      ValueError: for an encoder (causal=False), batch_size < 1, or max_len outside
        [1, self.max_len].
    """
    if not self.causal:
      raise ValueError("init_cache needs a causal decoder; build the Transformer with"
                       " causal=True (an encoder attends to later tokens, so cannot cache).")
    max_len = self.max_len if max_len is None else max_len
    if batch_size < 1 or not 1 <= max_len <= self.max_len:
      raise ValueError(
          f"init_cache needs batch_size >= 1 and 1 <= max_len <= {self.max_len}, got"
          f" batch_size={batch_size}, max_len={max_len}.")
    keys, values = [], []
    for block in self.blocks:
      num_heads, key_dim, _ = block.attention.w_key.shape
      value_dim = block.attention.w_value.shape[1]
      keys.append(jnp.zeros((batch_size, num_heads, max_len, key_dim), dtype))
      values.append(jnp.zeros((batch_size, num_heads, max_len, value_dim), dtype))
    return KVCache(tuple(keys), tuple(values), jnp.zeros((), jnp.int32))

  def decode(self, tokens, cache):
    """Logits of S new tokens that continue the cached positions, and the updated cache.

    Processes tokens at absolute positions cache.length .. cache.length+S-1: S > 1 to
    prefill a prompt, S = 1 per generated token (any mix of chunk sizes works). Equals
    ``self(full_tokens)[:, cache.length:cache.length+S]`` (to float32 rounding), where
    full_tokens are all tokens fed so far. The positional rows come from
    ``self.positions(T_max)`` sliced at the traced offset, so one compilation serves every
    offset. All batch rows share cache.length: batched prompts must have equal length.
    With segment embeddings (num_segments > 0) every position is in segment 0, as in
    ``__call__`` without segment_ids.

    Source: Vaswani et al. 2017 (decoder with causal masking); incremental decoding with a
    key/value cache as in Pope et al. 2022, "Efficiently Scaling Transformer Inference".

    Args:
      tokens: int array [B, S] of token ids in [0, V), S <= T_max.
      cache: ``KVCache`` from ``init_cache`` (or a previous ``decode``) with batch B.
        Keep cache.length + S <= T_max: checked when the length is concrete; under jit an
        overflow is not detected (``lax.dynamic_slice`` clamps) and gives wrong logits.

    Returns:
      (logits, cache): float32 array [B, S, V] (logits of the token after each new
      position) and the ``KVCache`` with the new keys and values and length + S.

    Raises:
      ValueError: for an encoder, tokens that are not [B, S] with the cache's B and
        S <= T_max, or (eagerly) cache.length + S > T_max.
    """
    if not self.causal:
      raise ValueError("decode needs a causal decoder; build the Transformer with"
                       " causal=True.")
    batch, _, capacity, _ = cache.keys[0].shape
    if tokens.ndim != 2 or tokens.shape[0] != batch or not 1 <= tokens.shape[1] <= capacity:
      raise ValueError(
          f"tokens must be int [B, S] with B={batch} (the cache's batch) and"
          f" 1 <= S <= {capacity} (its slots), got shape {tokens.shape}.")
    num_new = tokens.shape[1]
    length = _concrete_int(cache.length)
    if length is not None and length + num_new > capacity:
      raise ValueError(
          f"the cache holds {capacity} positions; {length} are filled and {num_new} more do"
          " not fit. Build it with a larger init_cache(max_len=...).")
    positions_SxD = lax.dynamic_slice_in_dim(self.positions(capacity), cache.length, num_new,
                                             axis=0)
    x_BxSxD = self.embed(tokens) + positions_SxD[None, :, :]
    if self.num_segments:  # Segment 0, as __call__ without segment_ids.
      x_BxSxD = x_BxSxD + self.segment_embed.embedding[0][None, None, :]
    keys, values = [], []
    for block, keys_l, values_l in zip(self.blocks, cache.keys, cache.values):
      x_BxSxD, keys_l, values_l = block.decode(x_BxSxD, keys_l, values_l, cache.length)
      keys.append(keys_l)
      values.append(values_l)
    logits_BxSxV = self.logits_out(self.final_norm(x_BxSxD)).astype(jnp.float32)
    return logits_BxSxV, KVCache(tuple(keys), tuple(values), cache.length + num_new)

  def positions(self, num_positions):
    """The fixed positional encoding added to the embeddings: float32 [T, D]."""
    if self.positional == "sinusoidal":
      return attention.sinusoidal_positions(num_positions, self.model_dim)
    num_dials = min(self.model_dim // 2, self.max_len.bit_length())
    dials = attention.dial_positions(num_positions, num_dials, math.pi / self.max_len)
    return jnp.pad(dials, ((0, 0), (0, self.model_dim - 2 * num_dials)))

  def _embed(self, tokens, padding_mask, segment_ids=None):
    """Embeds tokens + positions (+ segments) and builds the [B or 1, T, T] attention mask."""
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be int [B, T], got shape {tokens.shape}.")
    batch, num_positions = tokens.shape
    if num_positions > self.max_len:
      raise ValueError(
          f"sequence length {num_positions} exceeds max_len={self.max_len}; truncate the"
          " input or build the model with a larger max_len.")
    x_BxTxD = self.embed(tokens) + self.positions(num_positions)[None, :, :]
    if segment_ids is not None and not self.num_segments:
      raise ValueError("segment_ids were given but the model has no segment embeddings;"
                       " build the Transformer with num_segments > 0 (BERT: 2).")
    if self.num_segments:
      if segment_ids is None:
        x_BxTxD = x_BxTxD + self.segment_embed.embedding[0][None, None, :]
      elif segment_ids.shape != (batch, num_positions):
        raise ValueError(
            f"segment_ids must be int [B, T] = {(batch, num_positions)}, got"
            f" {segment_ids.shape}.")
      else:
        x_BxTxD = x_BxTxD + self.segment_embed(segment_ids)
    mask_BxTxT = None
    if self.causal:
      mask_BxTxT = attention.causal_mask(num_positions)[None, :, :]
    if padding_mask is not None:
      if padding_mask.shape != (batch, num_positions):
        raise ValueError(
            f"padding_mask must be bool [B, T] = {(batch, num_positions)}, got"
            f" {padding_mask.shape}.")
      keys_BxTxT = jnp.broadcast_to(padding_mask.astype(bool)[:, None, :],
                                    (batch, num_positions, num_positions))
      mask_BxTxT = keys_BxTxT if mask_BxTxT is None else keys_BxTxT & mask_BxTxT
    return x_BxTxD, mask_BxTxT

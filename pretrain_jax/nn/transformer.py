"""Transformer encoder (BERT-style) and decoder (GPT-style) as Flax NNX modules.

Built on the pure functions of ``pretrain_jax.nn.attention``; modules take dimensions and
``rngs`` for initialisation only and hold no dropout RNG (there is no dropout).

Shape letters: B batch, T length, H heads, K head (query/key) dim, I value dim,
D model dim, V vocabulary size, L layers.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.nn import attention

POSITIONAL_ENCODINGS = ("sinusoidal", "dials")


class MultiHeadAttention(nnx.Module):
  """Multi-head self-attention with output projection W^O.

  out[b] = concat_h(Attention_h(x[b])) W^O + b^O, with the heads computed by
  ``attention.multi_head_self_attention`` (vmapped over the batch).

  Source: Vaswani et al. 2017, "Attention Is All You Need", Eq. 2; D. McAllester,
  TTIC 31230 "Transformers" slides (index notation of W^Q, W^K, W^V).

  Attributes:
    w_query: nnx.Param float32 [H, K, D], W^Q.
    w_key: nnx.Param float32 [H, K, D], W^K.
    w_value: nnx.Param float32 [H, I, D], W^V.
    output: nnx.Linear H*I -> D, W^O with bias.
  """

  def __init__(self, *, model_dim, num_heads, key_dim, value_dim, rngs):
    """Initialises projections with LeCun-normal scaling (variance 1 / fan_in).

    Args:
      model_dim: int D, input and output dimension.
      num_heads: int H.
      key_dim: int K, query/key dimension per head.
      value_dim: int I, value dimension per head.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
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
    heads_BxTxHI = self._per_sequence(attention.multi_head_self_attention,
                                      (self.w_query[...], self.w_key[...], self.w_value[...]),
                                      x, mask)
    return self.output(heads_BxTxHI)

  def attention_weights(self, x, *, mask=None):
    """Attention weights α for each sequence in a batch (same arguments as ``__call__``).

    Returns:
      float32 array [B, H, T, T]; rows sum to 1 (0 where fully masked).
    """
    return self._per_sequence(attention.attention_weights,
                              (self.w_query[...], self.w_key[...]), x, mask)

  def _per_sequence(self, fn, weights, x, mask):
    """vmaps fn(m, *weights, mask=...) over the batch, broadcasting a [1, T, T] mask."""
    if x.ndim != 3 or x.shape[-1] != self.w_query.shape[-1]:
      raise ValueError(
          f"expected x [B, T, D] with D={self.w_query.shape[-1]}, got {x.shape}.")
    batch, num_positions = x.shape[0], x.shape[1]
    if mask is None:
      return jax.vmap(lambda m: fn(m, *weights))(x)
    if mask.ndim != 3 or mask.shape[0] not in (1, batch) or mask.shape[1:] != (
        num_positions, num_positions):
      raise ValueError(
          f"mask must be bool [B or 1, T, T] = [{batch} or 1, {num_positions},"
          f" {num_positions}], got {mask.shape}.")
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

  def __init__(self, *, model_dim, num_heads, mlp_dim, rngs):
    """Creates the block.

    Args:
      model_dim: int D, divisible by num_heads.
      num_heads: int H.
      mlp_dim: int, hidden width of the MLP.
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
                                        key_dim=head_dim, value_dim=head_dim, rngs=rngs)
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

  Source: Vaswani et al. 2017; Radford et al. 2018/2019 (GPT, decoder-only);
  Devlin et al. 2019 (BERT, encoder-only).
  """

  def __init__(self, *, vocab_size, num_layers, num_heads, model_dim, mlp_dim, max_len,
               causal, positional="sinusoidal", rngs):
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
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: on an unknown ``positional``, an odd model_dim or a size < 1.
    """
    if positional not in POSITIONAL_ENCODINGS:
      raise ValueError(
          f"positional must be one of {POSITIONAL_ENCODINGS}, got {positional!r}.")
    if model_dim < 2 or model_dim % 2:
      raise ValueError(f"model_dim must be even and >= 2, got {model_dim}.")
    if min(vocab_size, num_layers, max_len) < 1:
      raise ValueError(
          f"vocab_size, num_layers and max_len must be >= 1, got {vocab_size},"
          f" {num_layers}, {max_len}.")
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
                         rngs=rngs) for _ in range(num_layers)])
    self.final_norm = nnx.LayerNorm(model_dim, rngs=rngs)
    self.logits_out = nnx.Linear(model_dim, vocab_size, rngs=rngs)

  def __call__(self, tokens, *, padding_mask=None):
    """Logits for every position.

    Args:
      tokens: int32 array [B, T] of token ids in [0, V), T <= max_len.
      padding_mask: optional bool array [B, T], True = real token. Padded positions are
        never attended to; their own outputs are computed but meaningless.

    Returns:
      float32 array [B, T, V] of logits (decoder: of the token at t + 1 given tokens <= t).

    Raises:
      ValueError: if tokens are not [B, T] with T <= max_len, or the mask does not fit.
    """
    return self.logits_out(self.encode(tokens, padding_mask=padding_mask)).astype(jnp.float32)

  def encode(self, tokens, *, padding_mask=None):
    """Final hidden states (after the final LayerNorm), same arguments as ``__call__``.

    Returns:
      float array [B, T, D].
    """
    x, mask = self._embed(tokens, padding_mask)
    for block in self.blocks:
      x = block(x, mask=mask)
    return self.final_norm(x)

  def attention_weights(self, tokens, *, padding_mask=None):
    """Attention weights of every layer, same arguments as ``__call__``.

    Returns:
      float32 array [L, B, H, T, T]; [l, b, h, t, t'] is how much position t attends to
      t' in head h of layer l.
    """
    x, mask = self._embed(tokens, padding_mask)
    weights = []
    for block in self.blocks:
      weights.append(block.attention_weights(x, mask=mask))
      x = block(x, mask=mask)
    return jnp.stack(weights)

  def positions(self, num_positions):
    """The fixed positional encoding added to the embeddings: float32 [T, D]."""
    if self.positional == "sinusoidal":
      return attention.sinusoidal_positions(num_positions, self.model_dim)
    num_dials = min(self.model_dim // 2, self.max_len.bit_length())
    dials = attention.dial_positions(num_positions, num_dials, math.pi / self.max_len)
    return jnp.pad(dials, ((0, 0), (0, self.model_dim - 2 * num_dials)))

  def _embed(self, tokens, padding_mask):
    """Embeds tokens + positions and builds the [B or 1, T, T] attention mask."""
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be int [B, T], got shape {tokens.shape}.")
    batch, num_positions = tokens.shape
    if num_positions > self.max_len:
      raise ValueError(
          f"sequence length {num_positions} exceeds max_len={self.max_len}; truncate the"
          " input or build the model with a larger max_len.")
    x_BxTxD = self.embed(tokens) + self.positions(num_positions)[None, :, :]
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

"""ELMo's bidirectional language model (biLM) and the scalar mix of its layers.

Two L-layer LSTM language models read the same BPE tokens in opposite directions and
share one token embedding E [V, D], used both as their input and, tied, as their softmax:

  x_t = √D · E[w_t]                                   token representation (layer 0)
  forward:  h→_{j,t} = LSTM→_j(z→_{j-1,1..t}),   z→_{j,t} = P→_j h→_{j,t} (+ z→_{j-1,t})
  backward: h←_{j,t} = LSTM←_j(z←_{j-1,t..T}),   z←_{j,t} = P←_j h←_{j,t} (+ z←_{j-1,t})
  p(w_{t+1} | w_≤t) = softmax(E z→_{L,t} + b),   p(w_{t-1} | w_≥t) = softmax(E z←_{L,t} + b)

with z_{0,t} = x_t, H-dimensional LSTM states h (``nn.recurrent.LSTM``, the slides'
equations) and linear projections P_j: H -> D (with bias). Each layer's projection z_j
is the layer's output: the next layer reads it, the top one feeds the softmax, and the
contextual representations are [z→_j ; z←_j]. The bracketed term is the residual
connection (``residual=True``), added from the second layer on: layer j's output is its
projection plus its input, as ELMo connects its first and second LSTM layers.

Differences from Peters et al. (2018), deliberate and small-scale: the token
representation is a word-piece embedding (BPE) rather than a character CNN, the
projection follows the LSTM layer instead of sitting inside its recurrence (an LSTMP
cell feeds P h back as h_{t-1}; here the LSTM recurs on its full H-dim state), and the
two directions share the softmax bias as well as E. The embedding is read scaled by √D
and E has entries of variance 1 / D, so inputs have unit variance and the initial
logits E z + b are O(1) (tied input/output embeddings as in Press & Wolf 2017 and
Vaswani et al. 2017, 3.4).

Sources: Peters et al. 2018, "Deep contextualized word representations" (NAACL), Sec. 3.1
(biLM, Eq. 1–2: shared token representation and softmax, separate LSTMs per direction),
Sec. 3.2 (ELMo, Eq. 1: the scalar mix), Sec. 3.4 (two biLSTM layers with 4096 units and
512-dim projections, a residual connection from the first to the second layer);
D. McAllester, TTIC 31230 "Fundamentals of Deep Learning", slides on ELMo.

Shape letters: B batch, T length, V vocabulary, D embedding / projection dim, H LSTM
state dim, L layers per direction.
"""

from __future__ import annotations

import math

from flax import nnx
import jax
import jax.numpy as jnp

from pretrain_jax.nn import recurrent


def _check_tokens(tokens, padding_mask):
  """Raises ValueError unless tokens is [B, T] integer and the mask bool [B, T] or None."""
  if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f"tokens must be an int array [B, T], got {tokens.dtype} {tokens.shape}.")
  if padding_mask is not None and (padding_mask.shape != tokens.shape
                                   or padding_mask.dtype != jnp.bool_):
    raise ValueError(f"padding_mask must be bool [B, T] = {tokens.shape}, got "
                     f"{padding_mask.dtype} {padding_mask.shape}.")


class ProjectedLSTMStack(nnx.Module):
  """One direction of the biLM: L LSTM layers, each followed by a projection H -> D.

  z_0 = x; for j = 1..L: h_j = LSTM_j(z_{j-1}) (left to right, or right to left with
  ``reverse=True``); z_j = P_j h_j + b_j, plus z_{j-1} for j ≥ 2 if ``residual``. Every
  layer reads a D-dim input, so the residual needs no reshaping. Outputs are zero at
  padded positions.

  Unlike ``nn.recurrent.StackedLSTM`` (layers chained on their raw H-dim states), the
  layers here are joined through their projections, which is what ELMo's layers output
  and what its residual connection adds.

  Source: Peters et al. 2018, Sec. 3.4 (projections, residual first -> second layer).

  Attributes:
    layers: nnx.List of L ``recurrent.LSTM`` (input D, state H).
    projections: nnx.List of L ``nnx.Linear`` H -> D (LeCun-normal kernel, zero bias).
    residual: bool, whether layers j ≥ 2 add their input to their output.
  """

  def __init__(self, *, input_dim, hidden_dim, num_layers, residual, rngs):
    """Creates the layers.

    Args:
      input_dim: int D, width of the input and of every layer's output.
      hidden_dim: int H, LSTM state size.
      num_layers: int L ≥ 1.
      residual: bool, residual connections from the second layer on.
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
    if min(input_dim, hidden_dim, num_layers) < 1:
      raise ValueError(f"ProjectedLSTMStack dimensions must be >= 1, got input_dim={input_dim}, "
                       f"hidden_dim={hidden_dim}, num_layers={num_layers}.")
    self.input_dim, self.hidden_dim, self.residual = input_dim, hidden_dim, bool(residual)
    self.layers = nnx.List([recurrent.LSTM(input_dim=input_dim, hidden_dim=hidden_dim, rngs=rngs)
                            for _ in range(num_layers)])
    self.projections = nnx.List([nnx.Linear(hidden_dim, input_dim, rngs=rngs)
                                 for _ in range(num_layers)])

  def __call__(self, x, *, padding_mask=None, reverse=False):
    """Every layer's output z_1..z_L.

    Args:
      x: float array [B, T, D], the token representations.
      padding_mask: optional bool array [B, T], True = real token; masked positions are
        skipped by the recurrence (the backward direction starts at each sequence's last
        real token) and their outputs are 0.
      reverse: bool, run right to left (the backward LM): z_{j,t} then depends on
        x_t..x_{T-1} only.

    Returns:
      float32 array [L, B, T, D].

    Raises:
      ValueError: if x is not [B, T, D] or the mask not bool [B, T].
    """
    if x.ndim != 3 or x.shape[-1] != self.input_dim:
      raise ValueError(f"ProjectedLSTMStack expects x [B, T, D] with D={self.input_dim}, "
                       f"got {x.shape}.")
    keep_BxTx1 = None if padding_mask is None else padding_mask[:, :, None]
    outputs, z_BxTxD = [], x
    for j, (lstm, projection) in enumerate(zip(self.layers, self.projections)):
      h_BxTxH, _ = lstm(z_BxTxD, padding_mask=padding_mask, reverse=reverse)
      out_BxTxD = projection(h_BxTxH)
      if self.residual and j > 0:
        out_BxTxD = out_BxTxD + z_BxTxD
      if keep_BxTx1 is not None:
        out_BxTxD = jnp.where(keep_BxTx1, out_BxTxD, 0.0)
      outputs.append(out_BxTxD)
      z_BxTxD = out_BxTxD
    return jnp.stack(outputs)


class BiLM(nnx.Module):
  """ELMo's biLM (module docstring): shared tied embedding, a forward and a backward stack.

  ``__call__`` gives both directions' logits over the same tokens; the method
  (``methods.elmo``) feeds each direction its own slice of a packed row.

  Attributes:
    embedding: nnx.Param float32 [V, D], E (entries N(0, 1 / D)); inputs read √D · E[w],
      logits are z Eᵀ + b.
    output_bias: nnx.Param float32 [V], b, the softmax bias shared by both directions.
    forward_lm: ProjectedLSTMStack run left to right.
    backward_lm: ProjectedLSTMStack run right to left (its own weights).
  """

  def __init__(self, *, vocab_size, model_dim, hidden_dim, num_layers, residual, rngs):
    """Creates the parameters.

    Args:
      vocab_size: int V.
      model_dim: int D, embedding and projection width.
      hidden_dim: int H, LSTM state size of each layer and direction.
      num_layers: int L ≥ 1 layers per direction.
      residual: bool, residual connections from the second layer on (Peters et al. 2018,
        Sec. 3.4).
      rngs: nnx.Rngs with a ``params`` stream, used for initialisation only.

    Raises:
      ValueError: if a dimension is < 1.
    """
    if min(vocab_size, model_dim, hidden_dim, num_layers) < 1:
      raise ValueError(f"BiLM dimensions must be >= 1, got vocab_size={vocab_size}, "
                       f"model_dim={model_dim}, hidden_dim={hidden_dim}, num_layers={num_layers}.")
    self.vocab_size, self.model_dim, self.num_layers = vocab_size, model_dim, num_layers
    self.embedding = nnx.Param(jax.random.normal(rngs.params(), (vocab_size, model_dim),
                                                 jnp.float32) / math.sqrt(model_dim))
    self.output_bias = nnx.Param(jnp.zeros((vocab_size,), jnp.float32))
    self.forward_lm = ProjectedLSTMStack(input_dim=model_dim, hidden_dim=hidden_dim,
                                         num_layers=num_layers, residual=residual, rngs=rngs)
    self.backward_lm = ProjectedLSTMStack(input_dim=model_dim, hidden_dim=hidden_dim,
                                          num_layers=num_layers, residual=residual, rngs=rngs)

  def embed(self, tokens):
    """Token representations x_t = √D · E[w_t].

    Args:
      tokens: int array [B, T] in [0, V) (not checked: jnp.take gives NaN for an id ≥ V).

    Returns:
      float32 array [B, T, D], entries of variance ≈ 1 at initialisation.
    """
    return jnp.take(self.embedding[...], tokens, axis=0) * math.sqrt(self.model_dim)

  def logits(self, z):
    """Tied softmax logits E z + b, in float32 (Press & Wolf 2017; Peters et al. 2018, Eq. 1).

    Args:
      z: float array [..., D], top-layer outputs of either direction.

    Returns:
      float32 array [..., V], unnormalised log-probabilities in nats.
    """
    logits = jnp.tensordot(z.astype(jnp.float32), self.embedding[...], axes=((z.ndim - 1,), (1,)))
    return logits + jnp.reshape(self.output_bias[...], (1,) * (logits.ndim - 1) + (-1,))

  def forward_logits(self, tokens, *, padding_mask=None):
    """Forward LM: logits[:, t] predict token t + 1 from tokens ≤ t (Peters et al. 2018, Eq. 1).

    Args:
      tokens: int array [B, T] in [0, V) (not checked: an id ≥ V embeds as NaN).
      padding_mask: optional bool [B, T], True = real token; masked positions are skipped
        by the recurrence.

    Returns:
      float32 array [B, T, V], unnormalised log-probabilities (nats) of token t + 1.

    Raises:
      ValueError: tokens not int [B, T] or the mask not bool [B, T].
    """
    _check_tokens(tokens, padding_mask)
    return self.logits(self.forward_lm(self.embed(tokens), padding_mask=padding_mask)[-1])

  def backward_logits(self, tokens, *, padding_mask=None):
    """Backward LM: logits[:, t] predict token t − 1 from tokens ≥ t (of the real ones).

    Peters et al. 2018, Eq. 1 (second sum). With a mask, each row's backward pass starts at
    its last real token.

    Args:
      tokens: int array [B, T] in [0, V) (not checked: an id ≥ V embeds as NaN).
      padding_mask: optional bool [B, T], True = real token; masked positions are skipped
        by the recurrence.

    Returns:
      float32 array [B, T, V], unnormalised log-probabilities (nats) of token t − 1.

    Raises:
      ValueError: tokens not int [B, T] or the mask not bool [B, T].
    """
    _check_tokens(tokens, padding_mask)
    return self.logits(self.backward_lm(self.embed(tokens), padding_mask=padding_mask,
                                        reverse=True)[-1])

  def __call__(self, tokens, *, padding_mask=None):
    """Both directions' logits over the same tokens.

    Args:
      tokens: int array [B, T] in [0, V).
      padding_mask: optional bool [B, T], True = real token.

    Returns:
      (forward, backward): float32 arrays [B, T, V]; forward[:, t] predicts token t + 1
      from tokens ≤ t, backward[:, t] predicts token t − 1 from tokens ≥ t.

    Raises:
      ValueError: tokens not int [B, T] or the mask not bool [B, T].
    """
    return (self.forward_logits(tokens, padding_mask=padding_mask),
            self.backward_logits(tokens, padding_mask=padding_mask))

  def representations(self, tokens, *, padding_mask=None):
    """ELMo's L + 1 contextual layers of every token (Peters et al. 2018, Sec. 3.2).

    Layer 0 is the token representation duplicated, [x_t ; x_t]; layer j ≥ 1 is
    [z→_{j,t} ; z←_{j,t}], where z→ has read tokens ≤ t and z← tokens ≥ t.

    Args:
      tokens: int array [B, T] in [0, V).
      padding_mask: optional bool [B, T], True = real token; padded positions are 0 in
        every layer.

    Returns:
      float32 array [L + 1, B, T, 2D].

    Raises:
      ValueError: tokens not int [B, T] or the mask not bool [B, T].
    """
    _check_tokens(tokens, padding_mask)
    x_BxTxD = self.embed(tokens)
    if padding_mask is not None:
      x_BxTxD = jnp.where(padding_mask[:, :, None], x_BxTxD, 0.0)
    forward_LxBxTxD = self.forward_lm(x_BxTxD, padding_mask=padding_mask)
    backward_LxBxTxD = self.backward_lm(x_BxTxD, padding_mask=padding_mask, reverse=True)
    layer0 = jnp.concatenate([x_BxTxD, x_BxTxD], axis=-1)[None]
    return jnp.concatenate(
        [layer0, jnp.concatenate([forward_LxBxTxD, backward_LxBxTxD], axis=-1)], axis=0)


class ScalarMix(nnx.Module):
  """ELMo's task-specific mixture of biLM layers: γ Σ_j softmax(s)_j h_j.

  With s = 0 and γ = 1 (the initialisation) it is the mean of the layers.

  Source: Peters et al. 2018, Sec. 3.2, Eq. 1 (ELMo_k = γ Σ_j s_j h_{k,j}, s softmax-
  normalised).

  Attributes:
    scalars: nnx.Param float32 [L + 1], s before the softmax (init 0).
    gamma: nnx.Param float32 [], γ (init 1).
  """

  def __init__(self, num_layers, *, rngs=None):
    """Creates the weights.

    Args:
      num_layers: int, the number of layers mixed (L + 1 for a biLM with L LSTM layers).
      rngs: unused (deterministic initialisation); accepted for a uniform signature.

    Raises:
      ValueError: ``num_layers < 1``.
    """
    del rngs
    if num_layers < 1:
      raise ValueError(f"ScalarMix needs num_layers >= 1, got {num_layers}.")
    self.num_layers = num_layers
    self.scalars = nnx.Param(jnp.zeros((num_layers,), jnp.float32))
    self.gamma = nnx.Param(jnp.ones((), jnp.float32))

  def __call__(self, layers):
    """The mixture of the layers.

    Args:
      layers: float array [L + 1, ...], e.g. ``BiLM.representations`` [L + 1, B, T, 2D].

    Returns:
      float32 array [...], layers' shape without the first axis.

    Raises:
      ValueError: the first axis is not ``num_layers``.
    """
    if layers.ndim < 1 or layers.shape[0] != self.num_layers:
      raise ValueError(f"ScalarMix expects layers [{self.num_layers}, ...], got {layers.shape}.")
    weights = jax.nn.softmax(self.scalars[...].astype(jnp.float32))
    mixed = jnp.tensordot(weights, layers.astype(jnp.float32), axes=((0,), (0,)))
    return self.gamma[...] * mixed

"""Contrastive objectives: InfoNCE / CPC, NT-Xent (SimCLR) and word2vec negative sampling.

All losses are in nats. Log-sum-exp runs in float32 (or wider, if the inputs are wider).
Shape legend: N candidates (1 positive + N-1 negatives), B batch, D feature dim,
C context dim, M negatives.

Sources:
  van den Oord, Li, Vinyals (2018), "Representation Learning with Contrastive Predictive
    Coding", eq. 4 (InfoNCE loss), eq. 3 (bilinear critic), Section 2.3 and Appendix A.1
    (the mutual-information bound).
  Chen, Kornblith, Norouzi, Hinton (2020), "A Simple Framework for Contrastive Learning of
    Visual Representations" (SimCLR), eq. 1 (NT-Xent).
  Mikolov, Sutskever, Chen, Corrado, Dean (2013), "Distributed Representations of Words and
    Phrases and their Compositionality", eq. 4 (negative sampling).
"""

import jax
import jax.numpy as jnp

# Logit given to an anchor's similarity with itself in `contrastive_loss`: below every
# finite logit, so it gets zero probability, yet finite so no inf - inf can appear.
_MASKED_LOGIT = jnp.finfo(jnp.float32).min

# Norms are clipped below at this value before dividing, so zero vectors give zero
# features (and finite gradients) instead of NaN.
_NORM_EPS = 1e-8


def _at_least_float32(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def info_nce_loss(scores, positive_index):
  """InfoNCE loss: −ln softmax(scores)[positive], the categorical cross-entropy of
  picking the positive among N candidates.

  L_N = −E[ ln f(x_pos, c) / Σ_j f(x_j, c) ] with f = exp(score) (van den Oord et al.
  2018, eq. 4).

  Args:
    scores: float array [..., N], log density ratios ln f(x_j, c) of the N candidates
      (1 positive and N-1 negatives), any float dtype; computed in float32 or wider.
    positive_index: integer array broadcastable to [...] (e.g. a Python int), the
      position of the positive along the last axis of `scores`. Negative values count
      from the end; indices ≥ N give NaN.

  Returns:
    float32 (or wider) array [...], the loss in nats per anchor, ≥ 0.

  Raises:
    ValueError: if `scores` is a scalar, or `positive_index` is not integer or does not
      broadcast to scores.shape[:-1].
  """
  scores = _at_least_float32(scores)
  positive_index = jnp.asarray(positive_index)
  if scores.ndim == 0:
    raise ValueError("info_nce_loss: scores must have shape [..., N]; got a scalar.")
  if not jnp.issubdtype(positive_index.dtype, jnp.integer):
    raise ValueError(
        f"info_nce_loss: positive_index must be integer, got {positive_index.dtype}; "
        "cast it with .astype(jnp.int32).")
  try:
    positive_index = jnp.broadcast_to(positive_index, scores.shape[:-1])
  except ValueError as error:
    raise ValueError(
        f"info_nce_loss: positive_index {positive_index.shape} must broadcast to "
        f"scores.shape[:-1] = {scores.shape[:-1]}.") from error
  log_probs = jax.nn.log_softmax(scores, axis=-1)
  return -jnp.take_along_axis(log_probs, positive_index[..., None], axis=-1)[..., 0]


def mutual_information_lower_bound(loss, num_candidates):
  """Lower bound on mutual information from an InfoNCE loss: I(x; c) ≥ ln N − L_N.

  van den Oord et al. (2018), Section 2.3 ("I(x_{t+k}, c_t) ≥ log(N) − L_N"), derived in
  their Appendix A.1. N counts ALL candidates, the positive included; the TTIC slides
  count N negatives and so write ln(N+1). Since L_N ≥ 0 the bound never exceeds ln N:
  InfoNCE cannot certify more than ln N nats, however good the critic.

  Args:
    loss: float array [...], InfoNCE loss in nats (e.g. the mean of `info_nce_loss`).
    num_candidates: int N ≥ 1, the number of candidates per anchor (positive included).

  Returns:
    float array [...], the bound in nats.

  Raises:
    ValueError: if `num_candidates` is a Python number below 1.
  """
  if isinstance(num_candidates, (int, float)) and num_candidates < 1:
    raise ValueError(
        f"mutual_information_lower_bound: num_candidates must be ≥ 1, got {num_candidates}.")
  loss = _at_least_float32(loss)
  return jnp.log(jnp.asarray(num_candidates, loss.dtype)) - loss


def cpc_scores(z, context, w):
  """CPC bilinear scores: score_j = z_jᵀ W_k c_t, the log of f_k(x_j, c_t) = exp(z_jᵀ W_k c_t).

  van den Oord et al. (2018), eq. 3. Feed the result to `info_nce_loss`.

  Args:
    z: float array [..., N, D], encoded candidates z_j = g_enc(x_j).
    context: float array [..., C], context vector c_t. Its leading axes broadcast
      against those of `z` (e.g. z [N, D] shared by contexts [B, C] gives [B, N]).
    w: float array [D, C], the step-specific matrix W_k.

  Returns:
    float array [..., N], the scores (log density ratios, nats up to a constant).

  Raises:
    ValueError: if the feature dimensions of z, context and w disagree.
  """
  z, context, w = jnp.asarray(z), jnp.asarray(context), jnp.asarray(w)
  if z.ndim < 2 or context.ndim < 1 or w.ndim != 2:
    raise ValueError(
        f"cpc_scores: expected z [..., N, D], context [..., C], w [D, C]; got shapes "
        f"{z.shape}, {context.shape}, {w.shape}.")
  if (z.shape[-1], context.shape[-1]) != w.shape:
    raise ValueError(
        f"cpc_scores: w must have shape [D, C] = {(z.shape[-1], context.shape[-1])} "
        f"to match z and context; got {w.shape}.")
  return jnp.einsum("...nd,dc,...c->...n", z, w, context)


def contrastive_loss(a, b, temperature):
  """NT-Xent loss (SimCLR), symmetric, with in-batch negatives and cosine similarity.

  The 2B views [a_1..a_B, b_1..b_B] are L2-normalised (norms clipped below at 1e-8,
  so zero vectors are allowed) and compared by s_ij = cos(v_i, v_j) / temperature.
  Every view i is an anchor: its positive is its partner (a_k <-> b_k) and its
  candidates are the other 2B-1 views — the partner and the 2B-2 remaining views of
  BOTH a and b — so itself is excluded:

    ℓ_i = −ln exp(s_i,p(i)) / Σ_{j≠i} exp(s_ij),   loss = (1/2B) Σ_i ℓ_i.

  Chen et al. (2020), eq. 1 and Algorithm 1. Each anchor has 2B-1 candidates, so
  `mutual_information_lower_bound(loss, 2 * B - 1)` is the matching InfoNCE bound.

  Args:
    a: float array [B, D], features of the first view of each example.
    b: float array [B, D], features of the second view, row k paired with a[k].
    temperature: positive scalar τ (Python float or float array, may be traced).

  Returns:
    float32 (or wider) scalar, the mean loss in nats per view.

  Raises:
    ValueError: if a and b are not equal [B, D] shapes, or τ is a Python number ≤ 0.
  """
  a, b = _at_least_float32(a), _at_least_float32(b)
  if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 1:
    raise ValueError(
        f"contrastive_loss: a and b must both be [B, D] with B ≥ 1; got {a.shape} and "
        f"{b.shape}. vmap over any extra leading axes.")
  if isinstance(temperature, (int, float)) and temperature <= 0:
    raise ValueError(f"contrastive_loss: temperature must be > 0, got {temperature}.")
  num_pairs = a.shape[0]
  v_2BxD = jnp.concatenate([a, b], axis=0)
  squared_norm = jnp.sum(v_2BxD**2, axis=-1, keepdims=True)
  v_2BxD = v_2BxD * jax.lax.rsqrt(jnp.maximum(squared_norm, _NORM_EPS**2))
  logits_2Bx2B = (v_2BxD @ v_2BxD.T) / temperature
  is_self = jnp.eye(2 * num_pairs, dtype=bool)
  logits_2Bx2B = jnp.where(is_self, _MASKED_LOGIT, logits_2Bx2B)
  partner = jnp.concatenate(
      [jnp.arange(num_pairs) + num_pairs, jnp.arange(num_pairs)])
  return jnp.mean(info_nce_loss(logits_2Bx2B, partner))


def negative_sampling_loss(positive_score, negative_scores, negative_weights=None):
  """word2vec negative-sampling loss: −ln σ(s) − Σ_m a_m ln σ(−s_m).

  Mikolov et al. (2013), eq. 4 (negated, as a loss), as on the slides, with a_m = 1. Uses
  −ln σ(s) = softplus(−s) and −ln σ(−s) = softplus(s), which are stable for any s.
  Weights a_m let M shared noise samples stand for K per term (a_m = K/M) and drop a
  noise word that equals the observed one (a_m = 0).

  Args:
    positive_score: float array [...], score s = v'_wOᵀ v_wI of the observed pair.
    negative_scores: float array [..., M], scores s_m of the M sampled negatives.
    negative_weights: float array broadcastable to [..., M], the a_m; None for all ones.

  Returns:
    float32 (or wider) array [...], the loss in nats.

  Raises:
    ValueError: if negative_scores.shape[:-1] != positive_score.shape.
  """
  positive_score = _at_least_float32(positive_score)
  negative_scores = _at_least_float32(negative_scores)
  if negative_scores.ndim < 1 or negative_scores.shape[:-1] != positive_score.shape:
    raise ValueError(
        f"negative_sampling_loss: negative_scores must be [..., M] with [...] = "
        f"positive_score.shape; got {negative_scores.shape} and {positive_score.shape}.")
  negative_terms = jax.nn.softplus(negative_scores)
  if negative_weights is not None:
    negative_terms = negative_weights * negative_terms
  return jax.nn.softplus(-positive_score) + jnp.sum(negative_terms, axis=-1)

"""Tests for pretrain_jax.nn.attention against independent oracles.

Oracles: a python-loop implementation of the slides' index equations, jax.nn.dot_product
_attention, numpy softmax sums, exact zeros of causal Jacobians, numpy cos/sin and a
loop over Vaswani's formula.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from pretrain_jax.nn import attention


def _loop_multi_head_self_attention(m, w_query, w_key, w_value, mask=None):
  """The slides' index equations, one scalar at a time (numpy float64)."""
  m, w_query, w_key, w_value = (np.asarray(a, np.float64) for a in (m, w_query, w_key, w_value))
  num_positions, model_dim = m.shape
  num_heads, key_dim, _ = w_query.shape
  value_dim = w_value.shape[1]
  out = np.zeros((num_positions, num_heads * value_dim))
  for h in range(num_heads):
    query = np.zeros((num_positions, key_dim))
    key = np.zeros((num_positions, key_dim))
    value = np.zeros((num_positions, value_dim))
    for t in range(num_positions):
      for j in range(model_dim):
        for k in range(key_dim):
          query[t, k] += w_query[h, k, j] * m[t, j]
          key[t, k] += w_key[h, k, j] * m[t, j]
        for i in range(value_dim):
          value[t, i] += w_value[h, i, j] * m[t, j]
    for t in range(num_positions):
      allowed = [s for s in range(num_positions) if mask is None or mask[t, s]]
      scores = {}
      for s in allowed:
        scores[s] = 0.0
        for k in range(key_dim):
          scores[s] += query[t, k] * key[s, k]
        scores[s] /= math.sqrt(key_dim)
      if not allowed:
        continue  # fully masked row: documented output 0
      top = max(scores.values())
      total = sum(math.exp(v - top) for v in scores.values())
      for s in allowed:
        alpha = math.exp(scores[s] - top) / total
        for i in range(value_dim):
          out[t, h * value_dim + i] += alpha * value[s, i]
  return out


def _random_inputs(seed, num_positions, model_dim, num_heads, key_dim, value_dim):
  """M [T, J], W^Q, W^K [H, K, J], W^V [H, I, J] as float32 numpy arrays."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.normal(size=shape).astype(np.float32)
  return (normal(num_positions, model_dim), normal(num_heads, key_dim, model_dim),
          normal(num_heads, key_dim, model_dim), normal(num_heads, value_dim, model_dim))


class MultiHeadSelfAttentionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(
      # (T, J, H, K, I)
      (5, 6, 2, 3, 4),   # K != I
      (4, 3, 1, 2, 5),   # H = 1
      (1, 4, 3, 2, 2),   # T = 1
      (6, 5, 3, 4, 1),
  )
  def test_matches_loop_implementation(self, num_positions, model_dim, num_heads, key_dim,
                                       value_dim):
    args = _random_inputs(num_positions, num_positions, model_dim, num_heads, key_dim,
                          value_dim)
    rng = np.random.default_rng(num_positions)
    random_mask = rng.random((num_positions, num_positions)) < 0.6
    random_mask[0, :] = False  # one fully masked row -> zeros
    unmasked = self.variant(attention.multi_head_self_attention)
    masked = self.variant(
        lambda m, wq, wk, wv, mask: attention.multi_head_self_attention(m, wq, wk, wv, mask=mask))
    for mask in (None, random_mask, np.tril(np.ones((num_positions,) * 2, bool))):
      got = unmasked(*args) if mask is None else masked(*args, mask)
      chex.assert_shape(got, (num_positions, num_heads * value_dim))
      chex.assert_tree_all_finite(got)
      expected = _loop_multi_head_self_attention(*args, mask=mask)
      np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)

  def test_matches_jax_dot_product_attention(self):
    batch, num_positions, model_dim, num_heads, head_dim = 3, 7, 8, 2, 4
    rng = np.random.default_rng(1)
    m = rng.normal(size=(batch, num_positions, model_dim)).astype(np.float32)
    w_query, w_key, w_value = (
        rng.normal(size=(num_heads, head_dim, model_dim)).astype(np.float32) for _ in range(3))
    lengths = np.array([7, 3, 5])
    padding = np.arange(num_positions)[None, :] < lengths[:, None]  # [B, T]
    key_padding = np.broadcast_to(padding[:, None, :], (batch, num_positions, num_positions))
    causal = np.broadcast_to(np.tril(np.ones((num_positions,) * 2, bool)), key_padding.shape)

    @jax.jit
    def both(m, w_query, w_key, w_value):
      ours = lambda mk: jax.vmap(lambda x, mk: attention.multi_head_self_attention(
          x, w_query, w_key, w_value, mask=mk))(m, mk)
      unmasked = jax.vmap(
          lambda x: attention.multi_head_self_attention(x, w_query, w_key, w_value))(m)
      # jax.nn.dot_product_attention wants [B, T, N, H] (N heads, H head dim).
      project = lambda w: jnp.einsum("hkj,btj->bthk", w, m)
      query, key, value = project(w_query), project(w_key), project(w_value)
      reference = lambda **kw: jax.nn.dot_product_attention(query, key, value, **kw).reshape(
          batch, num_positions, num_heads * head_dim)
      return ((unmasked, reference()),
              (ours(causal), reference(is_causal=True)),
              (ours(key_padding), reference(mask=key_padding[:, None])))

    for got, expected in both(m, w_query, w_key, w_value):
      chex.assert_trees_all_close(got, expected, atol=1e-5, rtol=1e-5)

  def test_causal_jacobian_is_exactly_zero_for_future_positions(self):
    m, w_query, w_key, w_value = _random_inputs(3, 5, 4, 2, 3, 2)
    mask = attention.causal_mask(5)
    jacobian = jax.jit(jax.jacrev(
        lambda x: attention.multi_head_self_attention(x, w_query, w_key, w_value, mask=mask)))(m)
    chex.assert_shape(jacobian, (5, 4, 5, 4))  # [t, out, t', j]
    dependence = np.abs(np.asarray(jacobian)).sum(axis=(1, 3))  # [t, t']
    future = np.triu(np.ones((5, 5), bool), k=1)
    np.testing.assert_array_equal(dependence[future], 0.0)
    self.assertTrue(np.all(dependence[~future] > 0))

  def test_fully_masked_row_is_zero_with_finite_gradient(self):
    args = _random_inputs(4, 3, 4, 2, 2, 2)
    mask = np.ones((3, 3), bool)
    mask[1] = False

    @jax.jit
    def run(args):
      loss = lambda a: jnp.sum(attention.multi_head_self_attention(*a, mask=mask) ** 2)
      return (attention.multi_head_self_attention(*args, mask=mask),
              attention.attention_weights(*args[:3], mask=mask), jax.grad(loss)(args))

    out, weights, grads = run(args)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(weights[:, 1], 0.0)
    np.testing.assert_allclose(weights[:, [0, 2]].sum(-1), 1.0, rtol=1e-6)
    chex.assert_tree_all_finite(grads)

  def test_bf16_inputs_softmax_in_float32(self):
    m, *projections = _random_inputs(5, 6, 8, 2, 4, 4)
    # Projections scaled to variance 1/J, as MultiHeadAttention initialises them, so the
    # scores are O(1): with unit-variance weights they reach ~50, and one bf16 rounding of
    # a query (relative 2⁻⁸) moves them by ~0.2 nats, an error set by the conditioning of
    # the softmax rather than by bf16 precision.
    args = [jnp.asarray(a, jnp.bfloat16) for a in [m] + [w / np.sqrt(8) for w in projections]]
    weights, out = jax.jit(lambda *a: (attention.attention_weights(*a[:3]),
                                       attention.multi_head_self_attention(*a)))(*args)
    self.assertEqual(weights.dtype, jnp.float32)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    self.assertEqual(out.dtype, jnp.bfloat16)
    # Oracle: the float64 loop on the SAME bf16-rounded inputs, so only the rounding inside
    # the computation remains. bf16 keeps 8 significant bits: unit roundoff u = 2⁻⁸ ≈ 3.9e-3.
    # The bf16 path rounds the projections Q, K, V, the weights α (cast for the weighted
    # sum) and the output, about five roundings of relative size u, each scaled by at most
    # the output magnitude; measured over 75 seeds the error stays below 2.5 u max|out|.
    # Allow 4 u max|out| (two bf16 ulps at the largest output); the old rtol = atol = 0.1
    # allowed more than 25 u.
    expected = _loop_multi_head_self_attention(*[np.asarray(a, np.float64) for a in args])
    unit_roundoff = 2.0**-8
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=0,
                               atol=4 * unit_roundoff * np.abs(expected).max())

  @chex.variants(with_jit=True, without_jit=True)
  def test_vmap_and_grad(self):
    batch = 3
    rng = np.random.default_rng(6)
    _, w_query, w_key, w_value = _random_inputs(7, 4, 5, 2, 3, 2)
    m_BxTxJ = rng.normal(size=(batch, 4, 5)).astype(np.float32)
    mask = attention.causal_mask(4)

    def loss(m_BxTxJ, w_query):
      out = jax.vmap(lambda x: attention.multi_head_self_attention(
          x, w_query, w_key, w_value, mask=mask))(m_BxTxJ)
      return jnp.sum(jnp.sin(out))

    batched = self.variant(jax.vmap(
        lambda x: attention.multi_head_self_attention(x, w_query, w_key, w_value)))(m_BxTxJ)
    for b in range(batch):
      np.testing.assert_allclose(
          batched[b], _loop_multi_head_self_attention(m_BxTxJ[b], w_query, w_key, w_value),
          rtol=2e-4, atol=2e-4)
    grads = self.variant(jax.grad(loss, argnums=(0, 1)))(m_BxTxJ, w_query)
    chex.assert_shape(grads, ((batch, 4, 5), w_query.shape))
    # Central finite differences of the float64 loop oracle along a random direction.
    direction = rng.normal(size=m_BxTxJ.shape)
    mask_np = np.asarray(mask)

    def oracle_loss(m):
      return sum(np.sin(_loop_multi_head_self_attention(
          m[b], w_query, w_key, w_value, mask=mask_np)).sum() for b in range(batch))

    eps = 1e-5
    numeric = (oracle_loss(m_BxTxJ + eps * direction)
               - oracle_loss(m_BxTxJ - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(np.vdot(np.asarray(grads[0], np.float64), direction), numeric,
                               rtol=1e-3)

  def test_shape_errors(self):
    m, w_query, w_key, w_value = _random_inputs(8, 4, 5, 2, 3, 2)
    with self.assertRaisesRegex(ValueError, "jax.vmap"):
      attention.multi_head_self_attention(m[None], w_query, w_key, w_value)
    with self.assertRaisesRegex(ValueError, "w_value"):
      attention.multi_head_self_attention(m, w_query, w_key, w_value[:, :, :4])
    with self.assertRaisesRegex(ValueError, "mask"):
      attention.multi_head_self_attention(m, w_query, w_key, w_value,
                                          mask=np.ones((4, 3), bool))


class LookupTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_numpy_softmax_sum(self):
    rng = np.random.default_rng(0)
    key, memory = rng.normal(size=4).astype(np.float32), rng.normal(size=(6, 4)).astype(
        np.float32)
    scores = memory.astype(np.float64) @ key
    alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    got = self.variant(attention.attention_lookup)(key, memory)
    np.testing.assert_allclose(got, alpha @ memory, rtol=1e-5, atol=1e-6)

  def test_hard_attention_limit(self):
    rng = np.random.default_rng(1)
    memory = rng.normal(size=(5, 8))
    memory /= np.linalg.norm(memory, axis=1, keepdims=True)  # distinct unit rows
    memory = memory.astype(np.float32)
    # key ∝ M[2]: by Cauchy-Schwarz M[2] has the strictly largest score, by a wide margin.
    got = attention.attention_lookup(1e4 * memory[2], memory)
    np.testing.assert_allclose(got, memory[2], atol=1e-6)


class PositionalEncodingTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_dials(self):
    num_positions, num_dials, omega = 12, 5, 0.1
    dials = self.variant(
        lambda w: attention.dial_positions(num_positions, num_dials, w))(omega)
    chex.assert_shape(dials, (num_positions, 2 * num_dials))
    cos, sin = np.asarray(dials[:, 0::2], np.float64), np.asarray(dials[:, 1::2], np.float64)
    np.testing.assert_allclose(cos**2 + sin**2, 1.0, atol=1e-6)
    t = np.arange(num_positions)[:, None]
    angle = 2.0 ** np.arange(num_dials)[None, :] * omega * t
    np.testing.assert_allclose(cos, np.cos(angle), atol=1e-5)
    np.testing.assert_allclose(sin, np.sin(angle), atol=1e-5)
    # Per-step rotation of dial k, as a unit complex number r_k = z_k(t+1) / z_k(t):
    # dial k+1 turns exactly twice as far, r_{k+1} = r_k ** 2 (no angle wrap-around issues).
    z = cos + 1j * sin
    step = z[1:] / z[:-1]
    np.testing.assert_allclose(step[:, 1:], step[:, :-1] ** 2, atol=1e-5)
    np.testing.assert_allclose(np.angle(step[:, 0]), omega, atol=1e-5)

  def test_dials_differentiable_in_omega(self):
    grad = jax.grad(lambda w: attention.dial_positions(3, 2, w)[2, 3])(0.3)
    # d/dω sin(2 ω t) at t = 2 is 2 t cos(2 ω t) = 4 cos(1.2).
    np.testing.assert_allclose(grad, 4 * np.cos(1.2), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_sinusoidal_matches_vaswani_loop(self):
    num_positions, dim = 9, 6
    got = self.variant(lambda: attention.sinusoidal_positions(num_positions, dim))()
    expected = np.zeros((num_positions, dim))
    for t in range(num_positions):
      for i in range(dim // 2):
        expected[t, 2 * i] = math.sin(t / 10000 ** (2 * i / dim))
        expected[t, 2 * i + 1] = math.cos(t / 10000 ** (2 * i / dim))
    np.testing.assert_allclose(got, expected, atol=1e-5)

  def test_errors_and_causal_mask(self):
    with self.assertRaisesRegex(ValueError, "even"):
      attention.sinusoidal_positions(4, 5)
    with self.assertRaisesRegex(ValueError, "num_dials"):
      attention.dial_positions(4, 0, 1.0)
    np.testing.assert_array_equal(
        attention.causal_mask(4),
        np.array([[t_prime <= t for t_prime in range(4)] for t in range(4)]))


if __name__ == "__main__":
  pytest.main([__file__])

"""Tests for pretrain_jax.objectives.infonce against closed forms and independent loops."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from absl.testing import parameterized
from jax.test_util import check_grads

from pretrain_jax.objectives import infonce


def _info_nce_numpy(scores, positive_index):
  """Independent reference: −log softmax via scipy, float64."""
  log_probs = scipy.special.log_softmax(np.asarray(scores, np.float64), axis=-1)
  return -np.take_along_axis(log_probs, np.asarray(positive_index)[..., None], -1)[..., 0]


def _nt_xent_loop(a, b, temperature):
  """Independent reference: SimCLR eq. 1 written as explicit loops, float64."""
  views = np.concatenate([a, b]).astype(np.float64)
  num_views = len(views)
  num_pairs = num_views // 2

  def cosine(u, v):
    return u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-300)

  total = 0.0
  for i in range(num_views):
    partner = (i + num_pairs) % num_views
    denominator = sum(
        np.exp(cosine(views[i], views[k]) / temperature) for k in range(num_views) if k != i)
    numerator = np.exp(cosine(views[i], views[partner]) / temperature)
    total += -np.log(numerator / denominator)
  return total / num_views


class InfoNCELossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1, 2, 7, 64)
  def test_uniform_scores_give_log_n(self, num_candidates):
    scores = jnp.full((3, 2, num_candidates), 1.7)
    positive_index = jnp.array([[0, num_candidates - 1]] * 3)
    loss = self.variant(infonce.info_nce_loss)(scores, positive_index)
    chex.assert_shape(loss, (3, 2))
    chex.assert_trees_all_close(loss, jnp.full((3, 2), np.log(num_candidates)), atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_scipy_reference(self):
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=3.0, size=(4, 5, 9)).astype(np.float32)
    positive_index = rng.integers(0, 9, size=(4, 5))
    loss = self.variant(infonce.info_nce_loss)(scores, positive_index)
    chex.assert_trees_all_close(loss, _info_nce_numpy(scores, positive_index), rtol=1e-5,
                                atol=1e-5)

  def test_python_int_index_broadcasts(self):
    scores = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    chex.assert_trees_all_close(
        infonce.info_nce_loss(scores, 2), _info_nce_numpy(scores, np.full(6, 2)), rtol=1e-5)

  def test_gradient_is_softmax_minus_one_hot(self):
    scores = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    positive_index = np.array([0, 5, 2])
    grads = jax.grad(lambda s: jnp.sum(infonce.info_nce_loss(s, positive_index)))(scores)
    expected = scipy.special.softmax(scores, axis=-1) - np.eye(6)[positive_index]
    chex.assert_trees_all_close(grads, expected, atol=1e-6)

  def test_stable_at_huge_scores(self):
    scores = jnp.array([[1e4, -1e4, -1e4], [1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])
    positive_index = jnp.array([0, 1, 2])
    loss = infonce.info_nce_loss(scores, positive_index)
    # Closed forms: the dominant positive costs 0; a positive 2e4 below the max costs 2e4;
    # a positive 2e4 below two tied maxima costs 2e4 + ln 2.
    chex.assert_trees_all_close(loss, jnp.array([0.0, 2e4, 2e4 + np.log(2.0)]), rtol=1e-6)
    grads = jax.grad(lambda s: jnp.sum(infonce.info_nce_loss(s, positive_index)))(scores)
    chex.assert_tree_all_finite(grads)

  def test_bfloat16_scores_are_computed_in_float32(self):
    scores = jnp.zeros((2, 300), jnp.bfloat16)
    loss = infonce.info_nce_loss(scores, 0)
    assert loss.dtype == jnp.float32
    chex.assert_trees_all_close(loss, jnp.full((2,), np.log(300.0)), atol=1e-6)

  def test_rejects_bad_index(self):
    with pytest.raises(ValueError, match="integer"):
      infonce.info_nce_loss(jnp.zeros((2, 3)), jnp.zeros((2,)))
    with pytest.raises(ValueError, match="broadcast"):
      infonce.info_nce_loss(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))


def _bound_loop(scores, positive_index):
  """Independent reference: ln N − L_N with L_N = −ln(e^{s_pos} / Σ_j e^{s_j}), one anchor
  and one candidate at a time, shifted by the row maximum, float64."""
  bounds = np.zeros(len(scores))
  for row, (row_scores, positive) in enumerate(zip(np.asarray(scores, np.float64),
                                                   positive_index)):
    top = max(row_scores)
    denominator = 0.0
    for score in row_scores:
      denominator += math.exp(score - top)
    loss = -((row_scores[positive] - top) - math.log(denominator))
    bounds[row] = math.log(len(row_scores)) - loss
  return bounds


def test_mutual_information_bound_matches_loop_and_closed_form():
  # Oracle 1: an explicit loop over the N candidates (float64) on scores of very
  # different scales; the loss is the float32 log-softmax of float32 scores, so its error
  # is a few float32 ulps of the largest |score| (≈ 6e-8 × 3e3 at most here).
  rng = np.random.default_rng(3)
  for num_candidates in (2, 5, 33):
    scores = rng.normal(scale=rng.uniform(0.1, 1e3, size=(500, 1)), size=(500, num_candidates))
    scores = scores.astype(np.float32)
    positive_index = rng.integers(0, num_candidates, size=500)
    loss = infonce.info_nce_loss(scores, positive_index)
    bound = infonce.mutual_information_lower_bound(loss, num_candidates)
    chex.assert_shape(bound, (500,))
    tolerance = 1e-6 + 4 * np.finfo(np.float32).eps * np.abs(scores).max(-1)
    np.testing.assert_array_less(
        np.abs(np.asarray(bound, np.float64) - _bound_loop(scores, positive_index)), tolerance)
  # Oracle 2, closed form: the positive scores m above N − 1 tied negatives, so
  # L_N = ln(1 + (N − 1) e^{−m}) and the bound is ln N − ln(1 + (N − 1) e^{−m}); on
  # perfectly separable scores (m = 40) it reaches ln N to float32 precision.
  for num_candidates in (2, 5, 33, 1000):
    for margin in (0.0, 1.0, 5.0, 40.0):
      scores = np.zeros((3, num_candidates), np.float32)
      scores[:, 1] = margin
      bound = infonce.mutual_information_lower_bound(
          infonce.info_nce_loss(scores, 1), num_candidates)
      expected = np.log(num_candidates) - np.log1p((num_candidates - 1) * np.exp(-margin))
      chex.assert_trees_all_close(bound, np.full(3, expected), rtol=1e-6, atol=2e-6)


def test_optimal_critic_bound_on_correlated_gaussians():
  """With the optimal critic log p(y|x)/p(y), ln N − E[L_N] ≤ I and rises towards I with N.

  (x, y) standard bivariate normal with correlation ρ: I(x; y) = −½ ln(1 − ρ²).
  Negatives are nested across N (common random numbers) so the increase is not MC noise.
  """
  rho, num_trials, candidate_counts = 0.9, 4000, (2, 8, 64, 512)
  true_mi = -0.5 * np.log(1 - rho**2)
  rng = np.random.default_rng(4)
  x = rng.normal(size=(num_trials, 1))
  y_positive = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(num_trials, 1))
  y_negative = rng.normal(size=(num_trials, max(candidate_counts) - 1))

  def critic(x, y):  # log p(y|x) − log p(y)
    return -0.5 * np.log(1 - rho**2) - (y - rho * x)**2 / (2 * (1 - rho**2)) + y**2 / 2

  estimates = []
  for num_candidates in candidate_counts:
    scores = np.concatenate(
        [critic(x, y_positive), critic(x, y_negative[:, :num_candidates - 1])], axis=1)
    # Swap the positive (column 0) to a random position so the index is exercised too.
    rows, positive_index = np.arange(num_trials), rng.integers(0, num_candidates, num_trials)
    scores[rows, 0], scores[rows, positive_index] = (
        scores[rows, positive_index], scores[rows, 0])
    loss = np.asarray(infonce.info_nce_loss(scores.astype(np.float32), positive_index))
    estimate = float(infonce.mutual_information_lower_bound(loss.mean(), num_candidates))
    standard_error = loss.std() / np.sqrt(num_trials)
    assert estimate <= min(true_mi, np.log(num_candidates)) + 4 * standard_error
    estimates.append(estimate)
  assert np.all(np.diff(estimates) > 0), estimates
  # The gap to I shrinks towards 0: at N = 512 it is below 10% of I.
  assert true_mi - estimates[-1] < 0.1 * true_mi, (true_mi, estimates)


def test_cpc_scores_match_loop():
  rng = np.random.default_rng(5)
  z = rng.normal(size=(6, 4)).astype(np.float32)
  context = rng.normal(size=(3,)).astype(np.float32)
  w = rng.normal(size=(4, 3)).astype(np.float32)
  expected = np.zeros(6)
  for n in range(6):
    for d in range(4):
      for c in range(3):
        expected[n] += z[n, d] * w[d, c] * context[c]
  scores = infonce.cpc_scores(z, context, w)
  chex.assert_shape(scores, (6,))
  chex.assert_trees_all_close(scores, expected, rtol=1e-5, atol=1e-5)
  # Leading axes: shared candidates [N, D] against a batch of contexts [B, C].
  contexts = rng.normal(size=(5, 3)).astype(np.float32)
  batched = infonce.cpc_scores(z, contexts, w)
  chex.assert_shape(batched, (5, 6))
  for b in range(5):
    chex.assert_trees_all_close(batched[b], infonce.cpc_scores(z, contexts[b], w), rtol=1e-5)
  with pytest.raises(ValueError, match="w must have shape"):
    infonce.cpc_scores(z, context, w.T)


class ContrastiveLossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_loop_implementation(self):
    rng = np.random.default_rng(6)
    a = rng.normal(size=(5, 3)).astype(np.float32)
    b = (a + 0.5 * rng.normal(size=(5, 3))).astype(np.float32)
    for temperature in (0.1, 0.5, 2.0):
      loss = self.variant(infonce.contrastive_loss)(a, b, temperature)
      chex.assert_shape(loss, ())
      chex.assert_trees_all_close(loss, _nt_xent_loop(a, b, temperature), rtol=1e-5)
    # Extra leading axes go through vmap.
    stacked = jax.vmap(infonce.contrastive_loss, in_axes=(0, 0, None))(
        np.stack([a, b]), np.stack([b, -a]), 0.5)
    chex.assert_trees_all_close(
        stacked, np.array([_nt_xent_loop(a, b, 0.5), _nt_xent_loop(b, -a, 0.5)]), rtol=1e-5)

  def test_invariant_to_positive_rescaling_of_each_vector(self):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 4, 6)).astype(np.float32)
    scale_a, scale_b = rng.uniform(0.01, 100.0, size=(2, 4, 1)).astype(np.float32)
    chex.assert_trees_all_close(
        infonce.contrastive_loss(a * scale_a, b * scale_b, 0.3),
        infonce.contrastive_loss(a, b, 0.3), rtol=1e-5)

  def test_closed_forms(self):
    num_pairs, temperature = 4, 0.2
    contrastive_loss = jax.jit(infonce.contrastive_loss)
    # All 2B views identical (or all zero): every candidate ties, loss = ln(2B − 1).
    for views in (jnp.ones((num_pairs, 3)), jnp.zeros((num_pairs, 3))):
      chex.assert_trees_all_close(
          contrastive_loss(views, views, temperature), np.log(2 * num_pairs - 1),
          rtol=1e-6)
    # a_k = b_k = e_k (orthonormal): positive cosine 1, the 2B − 2 others 0, so
    # loss = ln(1 + (2B − 2) e^{−1/τ}).
    basis = jnp.eye(num_pairs, 6)
    chex.assert_trees_all_close(
        contrastive_loss(basis, basis, temperature),
        np.log1p((2 * num_pairs - 2) * np.exp(-1 / temperature)), rtol=1e-5)
    # One pair: the partner is the only candidate, loss 0.
    chex.assert_trees_all_close(
        contrastive_loss(jnp.ones((1, 3)), -jnp.ones((1, 3)), temperature), 0.0)

  def test_gradients_match_finite_differences(self):
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(2, 3, 4))
    with jax.enable_x64(True):
      check_grads(jax.jit(functools.partial(infonce.contrastive_loss, temperature=0.3)), (a, b),
                  order=1, modes=["rev"], atol=1e-6, rtol=1e-6)

  def test_zero_vectors_have_finite_gradients(self):
    a = jnp.zeros((3, 4)).at[0].set(1.0)
    grads = jax.jit(jax.grad(infonce.contrastive_loss, argnums=(0, 1)))(a, jnp.zeros((3, 4)), 0.1)
    chex.assert_tree_all_finite(grads)

  def test_pretraining_size_under_jit(self):
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(2, 256, 128)).astype(np.float32)
    loss, grads = jax.jit(jax.value_and_grad(infonce.contrastive_loss, argnums=(0, 1)))(
        a, b, 0.1)
    chex.assert_tree_all_finite((loss, grads))
    chex.assert_shape(grads, [(256, 128), (256, 128)])
    # Oracle: closed form for independent views. All 2B = 512 directions are i.i.d.
    # uniform on the sphere S^{D−1}, so an anchor's 2B − 1 logits s = cos/τ are i.i.d. with
    # E[cos] = 0, Var[cos] = 1/D and moment generating function (the von Mises–Fisher
    # normaliser) m(t) = E[e^{t cos}] = Γ(ν + 1) (2/t)^ν I_ν(t), ν = D/2 − 1. Hence
    # E[loss] = E ln Σ_j e^{s_j} ≈ ln(M m(1/τ)) − (m(2/τ)/m(1/τ)² − 1) / (2M), M = 2B − 1
    # (delta method, error O(1/M²)): ln 511 + 0.39, not ln 511. The noise is dominated by
    # the mean of the B positive logits (each shared by two anchors), variance
    # 1/(D τ² B), so the standard error is √(1/(D τ² B)) ≈ 0.055 nats: allow 4 of them
    # (the old ±0.5 nat window also accepted ln 511, i.e. a loss that ignored the logits).
    num_pairs, dim, temperature = 256, 128, 0.1
    nu, num_candidates = dim / 2 - 1, 2 * num_pairs - 1

    def log_mgf(t):
      return (scipy.special.gammaln(nu + 1) + nu * np.log(2 / t)
              + np.log(scipy.special.ive(nu, t)) + t)

    expected = (np.log(num_candidates) + log_mgf(1 / temperature)
                - np.expm1(log_mgf(2 / temperature) - 2 * log_mgf(1 / temperature))
                / (2 * num_candidates))
    standard_error = np.sqrt(1 / (dim * temperature**2 * num_pairs))
    assert abs(float(loss) - expected) < 4 * standard_error, (float(loss), expected)

  def test_rejects_bad_shapes_and_temperature(self):
    with pytest.raises(ValueError, match="same|both"):
      infonce.contrastive_loss(jnp.zeros((3, 4)), jnp.zeros((2, 4)), 0.1)
    with pytest.raises(ValueError, match="temperature"):
      infonce.contrastive_loss(jnp.zeros((3, 4)), jnp.zeros((3, 4)), 0.0)


class NegativeSamplingLossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_log_sigmoid_formula(self):
    rng = np.random.default_rng(10)
    positive = rng.normal(scale=3.0, size=(4, 2))
    negatives = rng.normal(scale=3.0, size=(4, 2, 5))
    log_sigmoid = lambda s: -np.log1p(np.exp(-s))  # fine at these moderate scores
    expected = -log_sigmoid(positive) - np.sum(log_sigmoid(-negatives), axis=-1)
    loss = self.variant(infonce.negative_sampling_loss)(
        positive.astype(np.float32), negatives.astype(np.float32))
    chex.assert_shape(loss, (4, 2))
    chex.assert_trees_all_close(loss, expected, rtol=1e-5)

  def test_asymptotics_at_huge_scores(self):
    # softplus(−s) → 0 for s → +∞ and → −s for s → −∞.
    loss = infonce.negative_sampling_loss(
        jnp.array([1e4, -1e4, 1e4]), jnp.array([[-1e4, -1e4], [-1e4, -1e4], [1e4, -1e4]]))
    chex.assert_trees_all_close(loss, jnp.array([0.0, 1e4, 1e4]), rtol=1e-7)
    grads = jax.grad(lambda s, n: jnp.sum(infonce.negative_sampling_loss(s, n)),
                     argnums=(0, 1))(jnp.array([1e4, -1e4]), jnp.array([[1e4], [-1e4]]))
    chex.assert_trees_all_close(grads, (jnp.array([0.0, -1.0]), jnp.array([[1.0], [0.0]])))

  def test_rejects_mismatched_shapes(self):
    with pytest.raises(ValueError, match="negative_scores"):
      infonce.negative_sampling_loss(jnp.zeros((3,)), jnp.zeros((4, 5)))

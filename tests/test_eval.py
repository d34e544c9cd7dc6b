"""Tests for the linear probe and kNN evaluation (oracles: scikit-learn, numpy loops)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import threadpoolctl
from absl.testing import parameterized
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from pretrain_jax.eval import knn
from pretrain_jax.eval import linear_probe as lp

# Tight tolerance for the comparisons with scikit-learn (float64, tol 1e-10).
_TIGHT = dict(num_steps=3000, tolerance=1e-6, progress=False)


@pytest.fixture(scope="module")
def digits():
  """sklearn digits (1,797 × 64), shuffled, split 1000 / 300 / 497."""
  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(0).permutation(len(x))
  x, y = x[order].astype(np.float32), y[order].astype(np.int32)
  return (x[:1000], y[:1000]), (x[1000:1300], y[1000:1300]), (x[1300:], y[1300:])


_GRID = (1e-4, 1e-1, 1e-2, 1e-3)  # Unsorted on purpose.


def _numpy_standardize(train, *others):
  mean = train.astype(np.float64).mean(axis=0)
  std = train.astype(np.float64).std(axis=0)
  std = np.where(std > 1e-6 * std.max(), std, 1.0)
  return [(a - mean) / std for a in (train,) + others]


@pytest.fixture(scope="module")
def sklearn_by_l2(digits):
  """scikit-learn's optimum for every λ of _GRID: C = 1/(λN), intercept unpenalised."""
  (xtr, ytr), _, _ = digits
  (train,) = _numpy_standardize(xtr)
  with threadpoolctl.threadpool_limits(1):  # Tiny problem: threads only add contention.
    return {l2: LogisticRegression(C=1.0 / (l2 * len(xtr)), tol=1e-8, max_iter=100_000).fit(
        train, ytr) for l2 in _GRID}


class ObjectiveTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_objective_matches_numpy(self):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(13, 5)).astype(np.float32)
    labels = rng.integers(0, 4, size=13).astype(np.int32)
    weights = rng.normal(size=(5, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    l2 = 0.3
    logits = features.astype(np.float64) @ weights + bias
    expected = 0.0
    for i in range(13):  # Mean cross-entropy, one example at a time.
      expected += (np.log(np.sum(np.exp(logits[i]))) - logits[i, labels[i]]) / 13
    expected += 0.5 * l2 * np.sum(weights.astype(np.float64) ** 2)  # Bias not penalised.
    value = self.variant(lp.logistic_regression_objective)(
        lp.LogisticRegressionParams(jnp.asarray(weights), jnp.asarray(bias)),
        jnp.asarray(features), jnp.asarray(labels), l2)
    np.testing.assert_allclose(value, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_transposed_copy_gives_same_gradient(self):
    rng = np.random.default_rng(4)
    features = jnp.asarray(rng.normal(size=(11, 6)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, size=11), jnp.int32)
    params = lp.LogisticRegressionParams(jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
                                         jnp.asarray(rng.normal(size=3), jnp.float32))
    value_and_grad = self.variant(jax.value_and_grad(lp.logistic_regression_objective))
    expected = value_and_grad(params, features, labels, 0.1)
    actual = value_and_grad(params, features, labels, 0.1, features.T)
    chex.assert_trees_all_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_matches_sklearn_logistic_regression(digits, sklearn_by_l2):
  """Same objective (C = 1/(λN), intercept unpenalised) -> same optimum as sklearn."""
  (xtr, ytr), (xva, yva), (xte, yte) = digits
  l2 = 1e-3
  result = lp.linear_probe(xtr, ytr, xva, yva, xte, yte, num_classes=10, l2_grid=(l2,),
                           **_TIGHT)
  assert result.converged_by_l2[l2]
  _, ste = _numpy_standardize(xtr, xte)
  np.testing.assert_allclose(result.feature_mean, xtr.astype(np.float64).mean(0), atol=1e-4)
  reference = sklearn_by_l2[l2]
  ours = result.predict(xte)
  theirs = reference.predict(ste)
  assert np.mean(ours == theirs) >= 0.98
  assert abs(result.test_accuracy - np.mean(theirs == yte)) <= 0.01
  # The optimum is unique in W (the penalty makes its columns sum to zero), and in b up to
  # a common shift (softmax is invariant to it, and b is unpenalised).
  np.testing.assert_allclose(result.weights, reference.coef_.T, atol=2e-3 * np.abs(
      reference.coef_).max())
  np.testing.assert_allclose(result.bias - result.bias.mean(),
                             reference.intercept_ - reference.intercept_.mean(), atol=1e-2)


def test_chooses_lambda_with_best_validation_accuracy(digits, sklearn_by_l2):
  (xtr, ytr), (xva, yva), (xte, yte) = digits
  result = lp.linear_probe(xtr, ytr, xva, yva, xte, yte, num_classes=10, l2_grid=_GRID,
                           **_TIGHT)
  assert set(result.val_accuracy_by_l2) == set(_GRID)
  best = max(result.val_accuracy_by_l2.values())
  # Ties go to the largest λ.
  assert result.best_l2 == max(l2 for l2, a in result.val_accuracy_by_l2.items() if a == best)
  assert result.val_accuracy == best
  # Oracle for the reported accuracies: scikit-learn's LogisticRegression, fitted
  # independently at the chosen λ (same objective, C = 1/(λN)) on the same standardised
  # features. Both reach the same unique optimum, so their accuracies may differ only
  # through predictions at near-tied logits: allow 2 examples per split (they agree
  # exactly today).
  reference = sklearn_by_l2[result.best_l2]
  splits = zip(("train", "val", "test"), _numpy_standardize(xtr, xva, xte), (ytr, yva, yte),
               (result.train_accuracy, result.val_accuracy, result.test_accuracy))
  for split, features, labels, accuracy in splits:
    expected = np.mean(reference.predict(features) == labels)
    assert abs(accuracy - expected) <= 2 / len(labels), (split, accuracy, expected)
  # Every λ's validation accuracy agrees with sklearn's at that λ (same optimum).
  _, sva = _numpy_standardize(xtr, xva)
  for l2, accuracy in result.val_accuracy_by_l2.items():
    assert abs(accuracy - np.mean(sklearn_by_l2[l2].predict(sva) == yva)) <= 0.01, l2


def test_separable_data_is_classified_perfectly():
  rng = np.random.default_rng(2)
  centres = 10.0 * np.eye(3, 6)

  def sample(n):
    labels = rng.integers(0, 3, size=n).astype(np.int32)
    features = centres[labels] + rng.normal(size=(n, 6))
    features[:, 5] = 7.0  # A constant feature: must not create NaN or inf.
    return features.astype(np.float32), labels

  result = lp.linear_probe(*sample(200), *sample(50), *sample(100), num_classes=3,
                           l2_grid=(1e-3, 1e-4), progress=False)
  assert result.test_accuracy == 1.0
  assert result.val_accuracy == 1.0
  assert np.all(np.isfinite(result.weights))


def test_preconditioning_does_not_change_the_optimum(digits):
  (xtr, ytr), _, _ = digits
  (features,) = _numpy_standardize(xtr)
  features = jnp.asarray(features, jnp.float32)
  labels = jnp.asarray(ytr)
  init = lp.LogisticRegressionParams(jnp.zeros((64, 10)), jnp.zeros(10))
  second_moment = features.T @ features / features.shape[0]
  fit = jax.jit(lp.fit_logistic_regression, static_argnames=("num_steps", "tolerance"))
  plain, plain_info = fit(features, labels, 1e-1, init, None, num_steps=3000, tolerance=1e-6)
  precond, precond_info = fit(features, labels, 1e-1, init, second_moment, num_steps=3000,
                              tolerance=1e-6)
  assert plain_info.max_abs_grad <= 1e-6 and precond_info.max_abs_grad <= 1e-6
  np.testing.assert_allclose(precond.weights, plain.weights, atol=1e-3)
  np.testing.assert_allclose(precond_info.objective, plain_info.objective, rtol=1e-6)


@pytest.mark.parametrize("bad", [
    dict(num_classes=1),
    dict(l2_grid=()),
    dict(l2_grid=(-1.0,)),
    dict(train_labels=np.full(20, 5, np.int32)),
    dict(val_features=np.zeros((10, 4), np.float32)),
])
def test_linear_probe_rejects_bad_input(bad):
  args = dict(train_features=np.zeros((20, 3), np.float32),
              train_labels=np.zeros(20, np.int32),
              val_features=np.zeros((10, 3), np.float32), val_labels=np.zeros(10, np.int32),
              test_features=np.zeros((10, 3), np.float32), test_labels=np.zeros(10, np.int32),
              num_classes=3, progress=False)
  args.update(bad)
  with pytest.raises(ValueError):
    lp.linear_probe(**args)


def _knn_loop(train, train_labels, queries, k, num_classes):
  """Independent kNN: cosine similarities one query at a time, stable order (lower index
  first among equal similarities), unweighted votes, ties to the smallest label."""
  predictions = []
  for query in queries:
    sims = np.array([
        np.dot(query, t) / max(np.linalg.norm(query) * np.linalg.norm(t), 1e-30)
        for t in train])
    nearest = np.argsort(-sims, kind="stable")[:k]
    votes = np.bincount(train_labels[nearest], minlength=num_classes)
    predictions.append(int(np.flatnonzero(votes == votes.max())[0]))
  return np.array(predictions)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_matches_sklearn_on_digits(digits, k):
  (xtr, ytr), _, (xte, yte) = digits
  ours = knn.knn_predict(xtr, ytr, xte, k=k, num_classes=10)
  reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
  theirs = reference.fit(xtr, ytr).predict(xte)
  np.testing.assert_array_equal(ours, theirs)
  assert knn.knn_accuracy(xtr, ytr, xte, yte, k=k, num_classes=10) == np.mean(theirs == yte)


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_knn_tie_breaking_matches_loop(k):
  # Vectors in {±1/2}^4 have norm exactly 1 and all dot products are exact multiples of
  # 1/4, so similarity ties are exact in any arithmetic: both neighbour ties (lower index
  # first) and vote ties (smallest label) are exercised.
  rng = np.random.default_rng(3)
  train = (rng.integers(0, 2, size=(60, 4)) - 0.5).astype(np.float32)
  labels = rng.integers(0, 3, size=60).astype(np.int32)
  queries = (rng.integers(0, 2, size=(40, 4)) - 0.5).astype(np.float32)
  expected = _knn_loop(train, labels, queries, k, 3)
  np.testing.assert_array_equal(
      knn.knn_predict(train, labels, queries, k=k, num_classes=3, batch_size=9), expected)


def test_knn_chunking_does_not_change_result(digits):
  (xtr, ytr), _, (xte, yte) = digits
  small = knn.knn_predict(xtr, ytr, xte, k=20, num_classes=10, batch_size=7)
  large = knn.knn_predict(xtr, ytr, xte, k=20, num_classes=10, batch_size=1000)
  np.testing.assert_array_equal(small, large)
  chex.assert_shape(small, (len(xte),))


def test_knn_zero_vector_and_bad_input():
  train = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  labels = np.array([0, 1], np.int32)
  # A zero query is equally (un)similar to both points: lower index wins.
  assert knn.knn_predict(train, labels, np.zeros((1, 2), np.float32), k=1,
                         num_classes=2)[0] == 0
  with pytest.raises(ValueError):
    knn.knn_accuracy(train, labels, train, labels, k=3, num_classes=2)
  with pytest.raises(ValueError):
    knn.knn_accuracy(train, labels, np.zeros((2, 3), np.float32), labels, k=1, num_classes=2)

"""Tests of pretrain_jax.eval.ngram against hand counts, exact enumeration and loop oracles.

Oracles: probabilities hand-computed on a corpus written out below; an independent
dict-and-loop interpolated Kneser–Ney in exact rational arithmetic (`fractions.Fraction`);
perplexity from a per-token loop over `conditional`; and the ordering KN < add-1 < unigram
in held-out perplexity on text drawn from a known Markov chain.
"""

import collections
import fractions
import math

import numpy as np
import pytest
from scipy import sparse

from pretrain_jax.eval import ngram

Fraction = fractions.Fraction
_MODELS = (ngram.UnigramLM, ngram.AddKBigramLM, ngram.KneserNeyBigramLM)

# V = 4, begin of document = 4. Token stream 0 1 2 | 1 2 2 3 | 2, so unigram counts
# c = [1, 2, 4, 1] (N = 8); bigrams (BOS,0) (0,1) (1,2) (BOS,1) (1,2) (2,2) (2,3) (BOS,2):
# c(BOS) = 3, c(0) = 1, c(1) = 2 (both 1→2), c(2) = 2 (2→2, 2→3), c(3) = 0 (unseen history).
_TINY_V = 4
_TINY_CORPUS = ([0, 1, 2], [1, 2, 2, 3], [], [2])


def _random_corpus(rng, vocab_size, num_docs, max_len, num_used):
  """Documents of ids in [0, num_used), so ids in [num_used, V) are never seen."""
  return [list(rng.integers(0, num_used, size=rng.integers(0, max_len + 1)))
          for _ in range(num_docs)]


def _markov_corpus(rng, transition, num_docs, doc_len):
  cdf = np.cumsum(transition, axis=1)
  cdf[:, -1] = 1.0
  docs = []
  for _ in range(num_docs):
    state = int(rng.integers(transition.shape[0]))
    doc = [state]
    for u in rng.random(doc_len - 1):
      state = int(np.searchsorted(cdf[state], u, side="right"))
      doc.append(state)
    docs.append(doc)
  return docs


class _KneserNeyOracle:
  """Interpolated KN bigram in plain Python, dicts and loops, exact Fractions.

  p(w|v) = max(c(v,w) - D, 0)/c(v) + D N1+(v.)/c(v) p_cont(w)  (c(v) > 0), else p_cont(w);
  p_cont(w) = max(N1+(.w) - D1, 0)/N1+(..) + D1 T/N1+(..) / V.
  """

  def __init__(self, docs, vocab_size, discount, unigram_discount):
    self.vocab_size = vocab_size
    self.discount = discount
    self.unigram_discount = unigram_discount
    self.pair = collections.Counter()
    for doc in docs:
      prev = vocab_size  # begin of document
      for w in doc:
        self.pair[(prev, int(w))] += 1
        prev = int(w)
    self.history = collections.Counter()
    self.history_types = collections.Counter()
    self.continuation = collections.Counter()
    for (v, w), count in self.pair.items():
      self.history[v] += count
      self.history_types[v] += 1
      self.continuation[w] += 1

  def ney_discount(self):
    n1 = sum(1 for count in self.pair.values() if count == 1)
    n2 = sum(1 for count in self.pair.values() if count == 2)
    return Fraction(n1, n1 + 2 * n2)

  def p_cont(self, w):
    num_types = len(self.pair)
    num_continued = len(self.continuation)
    d1 = self.unigram_discount
    return (max(self.continuation[w] - d1, 0)
            + d1 * num_continued / Fraction(self.vocab_size)) / num_types

  def prob(self, w, v):
    if self.history[v] == 0:
      return self.p_cont(w)
    d = self.discount
    return (max(self.pair[(v, w)] - d, 0) / Fraction(self.history[v])
            + d * self.history_types[v] / Fraction(self.history[v]) * self.p_cont(w))


@pytest.mark.parametrize("model_cls", _MODELS)
def test_conditionals_sum_to_one_and_are_positive(model_cls):
  rng = np.random.default_rng(0)
  vocab_size = 6
  docs = _random_corpus(rng, vocab_size, num_docs=20, max_len=8, num_used=4)
  model = model_cls.fit(docs, vocab_size)
  assert model.bos_id == vocab_size
  for v in range(vocab_size + 1):  # 4 and 5 are unseen histories, 6 is begin of document
    probs = model.conditional(v)
    assert probs.shape == (vocab_size,) and probs.dtype == np.float64
    assert np.all(probs > 0)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=0, atol=1e-12)
  # Summing p(w | v) over w by scoring each one-token continuation gives 1 too.
  for v in range(vocab_size):
    nll = model.token_nll([[v, w] for w in range(vocab_size)])[1::2]
    np.testing.assert_allclose(np.exp(-nll).sum(), 1.0, rtol=0, atol=1e-12)


def test_unigram_matches_hand_counts():
  model = ngram.UnigramLM.fit(_TINY_CORPUS, _TINY_V)  # k = 1: (c + 1) / (8 + 4)
  np.testing.assert_allclose(model.conditional(0), [2 / 12, 3 / 12, 5 / 12, 2 / 12], rtol=1e-14)
  model = ngram.UnigramLM.fit(_TINY_CORPUS, 6, k=0.5)  # ids 4, 5 unseen: (c + .5) / (8 + 3)
  np.testing.assert_allclose(model.conditional(6), [1.5 / 11, 2.5 / 11, 4.5 / 11, 1.5 / 11,
                                                    0.5 / 11, 0.5 / 11], rtol=1e-14)


def test_add_k_bigram_matches_hand_counts():
  model = ngram.AddKBigramLM.fit(_TINY_CORPUS, _TINY_V, k=0.5)  # (c(v,w) + .5) / (c(v) + 2)
  expected = {
      1: [0.5 / 4, 0.5 / 4, 2.5 / 4, 0.5 / 4],
      2: [0.5 / 4, 0.5 / 4, 1.5 / 4, 1.5 / 4],
      3: [0.25, 0.25, 0.25, 0.25],  # unseen history: uniform
      4: [1.5 / 5, 1.5 / 5, 1.5 / 5, 0.5 / 5],  # begin of document, c(BOS) = 3
  }
  for v, probs in expected.items():
    np.testing.assert_allclose(model.conditional(v), probs, rtol=1e-14)
  laplace = ngram.AddKBigramLM.fit(_TINY_CORPUS, _TINY_V)
  np.testing.assert_allclose(laplace.conditional(0), [1 / 5, 2 / 5, 1 / 5, 1 / 5], rtol=1e-14)


def test_kneser_ney_matches_hand_counts():
  # N1+(.w) = [1, 2, 3, 1], N1+(..) = 7 and every token is continued (T = V), so with
  # D1 = 0.75: p_cont = [1, 2, 3, 1] / 7 exactly.
  model = ngram.KneserNeyBigramLM.fit(_TINY_CORPUS, _TINY_V)
  np.testing.assert_allclose(model.p_cont, np.array([1, 2, 3, 1]) / 7, rtol=1e-14)
  np.testing.assert_allclose(model.conditional(3), np.array([1, 2, 3, 1]) / 7, rtol=1e-14)
  # p(2 | 1) = (2 - .75)/2 + (.75 * 1/2) * 3/7 = 11/14.
  np.testing.assert_allclose(model.conditional(1)[2], 11 / 14, rtol=1e-14)


@pytest.mark.parametrize("discount", [Fraction(3, 4), Fraction(1, 2), None])
def test_kneser_ney_matches_loop_oracle(discount):
  rng = np.random.default_rng(1)
  vocab_size = 9
  train = _random_corpus(rng, vocab_size, num_docs=40, max_len=12, num_used=7)
  oracle = _KneserNeyOracle(train, vocab_size, discount, discount)
  if discount is None:
    discount = oracle.ney_discount()
    oracle = _KneserNeyOracle(train, vocab_size, discount, discount)
    model = ngram.KneserNeyBigramLM.fit(train, vocab_size, discount=None)
    assert model.discount == pytest.approx(float(discount), rel=1e-15)
    assert model.unigram_discount == model.discount
  else:
    model = ngram.KneserNeyBigramLM.fit(train, vocab_size, discount=float(discount))
  for v in range(vocab_size + 1):  # 7, 8 unseen as histories and as tokens
    exact = [oracle.prob(w, v) for w in range(vocab_size)]
    assert sum(exact) == 1  # the formula itself, in exact arithmetic
    np.testing.assert_allclose(model.conditional(v), [float(p) for p in exact], rtol=1e-13)
  # Vectorised scoring of held-out text (unseen pairs, histories and tokens included).
  test = _random_corpus(rng, vocab_size, num_docs=10, max_len=12, num_used=vocab_size)
  expected_nll = []
  for doc in test:
    prev = vocab_size
    for w in doc:
      expected_nll.append(-math.log(oracle.prob(w, prev)))
      prev = w
  np.testing.assert_allclose(model.token_nll(test), expected_nll, rtol=1e-12)


def test_kneser_ney_separate_unigram_discount_matches_oracle():
  rng = np.random.default_rng(2)
  vocab_size = 8
  train = _random_corpus(rng, vocab_size, num_docs=30, max_len=10, num_used=5)
  oracle = _KneserNeyOracle(train, vocab_size, Fraction(3, 5), Fraction(9, 10))
  model = ngram.KneserNeyBigramLM.fit(train, vocab_size, discount=0.6, unigram_discount=0.9)
  for v in range(vocab_size + 1):
    np.testing.assert_allclose(model.conditional(v),
                               [float(oracle.prob(w, v)) for w in range(vocab_size)], rtol=1e-13)


@pytest.mark.parametrize("model_cls", _MODELS)
def test_perplexity_equals_exp_mean_loop_nll(model_cls):
  rng = np.random.default_rng(3)
  vocab_size = 10
  model = model_cls.fit(_random_corpus(rng, vocab_size, 30, 15, 8), vocab_size)
  test = _random_corpus(rng, vocab_size, 12, 15, vocab_size)
  nll = []
  for doc in test:
    prev = model.bos_id
    for w in doc:
      nll.append(-math.log(model.conditional(prev)[w]))
      prev = w
  total, num_tokens = model.log_prob(test)
  assert num_tokens == len(nll)
  np.testing.assert_allclose(total, -math.fsum(nll), rtol=1e-12)
  np.testing.assert_allclose(model.perplexity(test), math.exp(math.fsum(nll) / len(nll)),
                             rtol=1e-12)
  # Numpy documents and a one-shot generator give the same numbers.
  np.testing.assert_allclose(model.perplexity(np.array(doc) for doc in test),
                             model.perplexity(test), rtol=1e-15)


def test_kneser_ney_beats_add_one_beats_unigram_on_markov_text():
  rng = np.random.default_rng(4)
  vocab_size = 40
  transition = rng.dirichlet(np.full(vocab_size, 0.1), size=vocab_size)
  train = _markov_corpus(rng, transition, num_docs=60, doc_len=50)
  held_out = _markov_corpus(rng, transition, num_docs=20, doc_len=50)
  perplexity = {cls.__name__: cls.fit(train, vocab_size).perplexity(held_out) for cls in _MODELS}
  assert perplexity["KneserNeyBigramLM"] < perplexity["AddKBigramLM"] < perplexity["UnigramLM"], (
      perplexity)


def test_large_vocabulary_counts_are_sparse():
  rng = np.random.default_rng(5)
  vocab_size = 32_768
  docs = [rng.integers(0, vocab_size, size=200) for _ in range(20)]
  model = ngram.KneserNeyBigramLM.fit(docs, vocab_size)
  assert isinstance(model.counts.counts, sparse.csr_array)
  assert model.counts.counts.shape == (vocab_size + 1, vocab_size)
  # One nonzero per distinct (history, token) pair, begin-of-document histories included.
  pairs = {(int(v), int(w)) for doc in docs for v, w in zip([vocab_size, *doc[:-1]], doc)}
  assert model.counts.counts.nnz == len(pairs)
  for v in (int(docs[0][0]), 7, vocab_size):
    np.testing.assert_allclose(model.conditional(v).sum(), 1.0, rtol=0, atol=1e-12)
  # The sparse lookup scores as the dense rows do.
  doc = docs[0]
  nll = [-math.log(model.conditional(int(v))[int(w)]) for v, w in zip([vocab_size, *doc[:-1]], doc)]
  np.testing.assert_allclose(model.perplexity([doc]), math.exp(math.fsum(nll) / len(nll)),
                             rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: ngram.UnigramLM.fit([[0, 4]], 4),  # id == V
    lambda: ngram.AddKBigramLM.fit([[0, -1]], 4),
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1], [5]], 4),
    lambda: ngram.UnigramLM.fit([], 4),  # empty data
    lambda: ngram.AddKBigramLM.fit([[], []], 4),
    lambda: ngram.KneserNeyBigramLM.fit(iter([]), 4),
    lambda: ngram.UnigramLM.fit([[0, 1]], 4, k=0),  # k <= 0
    lambda: ngram.AddKBigramLM.fit([[0, 1]], 4, k=-1.0),
    lambda: ngram.AddKBigramLM.fit([[0, 1]], 4, k=float("nan")),
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1]], 4, discount=0.0),  # D not in (0, 1)
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1]], 4, discount=1.0),
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1]], 4, discount=-0.5),
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1]], 4, unigram_discount=1.5),
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1, 2]], 4, discount=None),  # no doubletons
    lambda: ngram.UnigramLM.fit([[0, 1]], 0),  # vocab_size < 1
    lambda: ngram.UnigramLM.fit([[[0, 1]]], 4),  # 2-D document
    lambda: ngram.UnigramLM.fit([0, 1, 2], 4),  # a bare document, not a list of them
    lambda: ngram.AddKBigramLM.fit([[0.0, 1.0]], 4),  # float ids
    lambda: ngram.UnigramLM.fit([[0, 1]], 4).perplexity([[2, 4]]),  # scoring out of range
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1]], 4).perplexity([[]]),  # scoring nothing
    lambda: ngram.AddKBigramLM.fit([[0, 1]], 4).conditional(5),  # history > V
    lambda: ngram.KneserNeyBigramLM.fit([[0, 1]], 4).conditional(-1),
])
def test_bad_inputs_raise_one_line_value_error(make):
  with pytest.raises(ValueError) as error:
    make()
  assert "\n" not in str(error.value)


def test_baseline_perplexities_leave_out_the_first_heldout_token():
  rng = np.random.default_rng(3)
  train, heldout = rng.integers(0, 7, 400), rng.integers(0, 7, 60)
  scores = ngram.baseline_perplexities(train, heldout, 7, add_k=0.5, prefix="val")
  models = {"unigram": ngram.UnigramLM.fit([train], 7),
            "bigram_add_k": ngram.AddKBigramLM.fit([train], 7, k=0.5),
            "bigram_kneser_ney": ngram.KneserNeyBigramLM.fit([train], 7)}
  for name, model in models.items():
    # An independent loop: the held-out tokens after the first, each given its predecessor.
    nll = [-np.log(model.conditional(int(v))[int(w)]) for v, w in zip(heldout[:-1], heldout[1:])]
    assert scores[f"val_{name}_perplexity"] == pytest.approx(np.exp(np.mean(nll)), rel=1e-10)
  with pytest.raises(ValueError, match="at least 2"):
    ngram.baseline_perplexities(train, heldout[:1], 7)

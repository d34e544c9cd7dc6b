"""Count-based word vectors: positive PMI of windowed co-occurrences, then truncated SVD.

The slides' Arora et al. (2016, "A latent variable model approach to PMI-based word
embeddings") view: inner products of word vectors recover pointwise mutual information,
PMI(w, c) = ln P(w, c) / (P(w) P(c)). Following Levy, Goldberg & Dagan (2015, "Improving
distributional similarity with lessons learned from word embeddings"), co-occurrences are
counted within ``word2vec.window`` words of the same sentence, each weighted by
word2vec's expected dynamic-window weight (W − |j| + 1)/W at distance |j| (no
subsampling); the context distribution is smoothed by the power 0.75 (``ns_exponent``);
negative PMI is clipped to 0 (PPMI); and the vectors are U_k Σ_k^{1/2} of the rank-k
truncated SVD (k = ``word2vec.vector_size``, scikit-learn's randomized ``TruncatedSVD``).
Fitted in closed form: no steps, no checkpoints.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import ml_collections
import numpy as np
from scipy import sparse
from sklearn import decomposition

from pretrain_jax.data import vocab as vocab_lib
from pretrain_jax.eval import word_vectors as wv_eval
from pretrain_jax.methods import word_vectors

NAME = "ppmi"
SUPERVISION = "none (co-occurrence counts)"


class Fitted(NamedTuple):
  """The fitted vectors and what words/s needs."""

  vectors: wv_eval.WordVectors
  seconds: float
  train_words: int


def prepare_data(config: ml_collections.ConfigDict, info: Any, data: dict[str, Any]):
  """Vocabulary (``word2vec.min_count``) and the id stream of the train documents.

  Returns:
    ``(vocab, splits)`` with ``splits["train"] = {"ids": int32 [N], "sentence": int32 [N],
    "vocab": the Vocabulary}`` (``Vocabulary.encode``: out-of-vocabulary tokens removed;
    ``fit`` reads the words from ``"vocab"``).

  Raises:
    EmptyVocabularyError: no word reaches ``min_count``.
  """
  del info
  sentences = word_vectors.train_sentences(data["train"])
  vocabulary = vocab_lib.Vocabulary.build(sentences, config.word2vec.min_count)
  ids, sentence = vocabulary.encode(sentences)
  return vocabulary, {"train": {"ids": ids, "sentence": sentence, "vocab": vocabulary},
                      "val": data["val"], "test": data["test"]}


def cooccurrence_counts(ids: np.ndarray, sentence: np.ndarray, vocab_size: int,
                        window: int) -> sparse.csr_matrix:
  """Symmetric co-occurrence counts within ``window`` words of the same sentence.

  A pair at distance j (1 ≤ j ≤ W) counts (W − j + 1)/W in both directions: word2vec's
  expected weight under its dynamic window (Levy et al. 2015, Sec. 3.2).

  Args:
    ids: int32 ``[N]`` word ids in corpus order.
    sentence: int32 ``[N]`` sentence index of each token.
    vocab_size: V.
    window: W ≥ 1.

  Returns:
    float64 CSR ``[V, V]``, entry (w, c) the weighted count of c within W words of w.
  """
  rows, cols, weights = [], [], []
  for j in range(1, window + 1):
    same = sentence[j:] == sentence[:-j]
    left, right = ids[:-j][same], ids[j:][same]
    weight = (window - j + 1) / window
    rows += [left, right]
    cols += [right, left]
    weights += [np.full(2 * left.shape[0], weight)]
  counts = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(vocab_size, vocab_size))
  return counts.tocsr()


def ppmi_matrix(counts: sparse.csr_matrix, context_power: float = 0.75) -> sparse.csr_matrix:
  """max(0, ln P(w, c) / (P(w) P_α(c))) with P_α(c) ∝ count(c)^α, on the non-zero counts.

  Args:
    counts: ``[V, V]`` non-negative co-occurrence counts.
    context_power: α, the context-distribution smoothing (0.75; 1 = plain PMI).

  Returns:
    float64 CSR ``[V, V]`` of positive PMI values in nats.
  """
  counts = counts.tocoo()
  total = counts.sum()
  word_totals = np.asarray(counts.sum(1)).ravel()
  context_totals = np.asarray(counts.sum(0)).ravel() ** context_power
  p_word = word_totals / total
  p_context = context_totals / context_totals.sum()
  pmi = np.log(counts.data / total) - np.log(p_word[counts.row]) - np.log(p_context[counts.col])
  keep = pmi > 0
  return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def fit(train: dict[str, Any], config: ml_collections.ConfigDict) -> Fitted:
  """PPMI of the train split's co-occurrences and its rank-``vector_size`` SVD factor.

  Args:
    train: ``prepare_data``'s train split.
    config: the run's config (``word2vec.window``, ``vector_size``, ``ns_exponent``; ``seed``).

  Returns:
    The vectors (U_k Σ_k^{1/2}, one row per vocabulary word) and the fit time.
  """
  started = time.perf_counter()
  vocabulary = train["vocab"]
  section = config.word2vec
  counts = cooccurrence_counts(train["ids"], train["sentence"], len(vocabulary), section.window)
  ppmi = ppmi_matrix(counts, section.ns_exponent)
  svd = decomposition.TruncatedSVD(n_components=section.vector_size, algorithm="randomized",
                                   n_iter=5, random_state=config.seed)
  left = svd.fit_transform(ppmi)  # U Σ.
  vectors = left / np.sqrt(np.maximum(svd.singular_values_, 1e-12))  # U Σ^{1/2}.
  return Fitted(wv_eval.WordVectors(words=vocabulary.words, vectors=vectors.astype(np.float32),
                                    min_count=vocabulary.min_count),
                time.perf_counter() - started, int(vocabulary.num_tokens))


def evaluate(fitted: Fitted, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """``word_vectors.score_vectors`` of the PPMI-SVD vectors (no vectors for unseen words)."""
  del data
  return word_vectors.score_vectors(fitted.vectors, config, workdir, train_words=fitted.train_words,
                                    seconds=fitted.seconds, oov_handled=False)

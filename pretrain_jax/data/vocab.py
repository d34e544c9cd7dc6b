"""Vocabulary, frequent-word subsampling, the noise distribution and the window chunks of
the word-vector methods, as in word2vec.c and gensim (numpy only).

* ``Vocabulary.build``: words with at least ``min_count`` occurrences, most frequent first
  (ties in first-seen order); every other token is dropped from the sentences before
  windows are formed, as word2vec.c and gensim do.
* ``keep_probabilities``: Mikolov et al. (2013b) "Distributed representations of words and
  phrases", Sec. 2.3, in the form word2vec.c and gensim implement,
  P(keep w) = min(1, (√(f(w)/(t·T)) + 1) · t·T / f(w)), with f(w) the count of w, T the
  number of retained tokens and t the ``sample`` threshold.
* ``noise_distribution``: P_n(w) ∝ f(w)^0.75 (Mikolov et al. 2013b, Sec. 2.2).
* ``window_chunks``: per epoch, a fresh subsample of the token stream (kept tokens close
  ranks, so windows reach past dropped words, as in the reference implementations), cut
  into chunks of ``chunk_size`` centre positions with ``window`` tokens of context on each
  side; the sentence index of every token lets the method keep windows inside sentences.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
from typing import Iterable, Sequence

import numpy as np

PAD_ID = -1  # Token id of padding around the stream (no word).


class EmptyVocabularyError(ValueError):
  """No word reaches ``min_count``: nothing to train on."""


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Words kept for training, most frequent first, and their counts in the train split.

  Attributes:
    words: the V kept words; ``words[i]`` has id ``i``.
    counts: int64 ``[V]``, occurrences of each word in the train split (descending).
    min_count: the threshold the vocabulary was built with.
    num_tokens: tokens of the train split before ``min_count`` (what words/s counts).
  """

  words: tuple[str, ...]
  counts: np.ndarray
  min_count: int
  num_tokens: int

  @classmethod
  def build(cls, sentences: Iterable[Sequence[str]], min_count: int) -> "Vocabulary":
    """Counts the tokens of ``sentences`` and keeps those seen ``min_count`` times or more.

    Args:
      sentences: token lists (``tokenizers.sentences`` of each document).
      min_count: least number of occurrences of a kept word, ``>= 1``.

    Returns:
      The vocabulary, most frequent first; ties keep first-seen order.

    Raises:
      ValueError: ``min_count < 1``.
      EmptyVocabularyError: no word occurs ``min_count`` times (one line: lower min_count
        or use more text).
    """
    if min_count < 1:
      raise ValueError(f"min_count={min_count} must be >= 1.")
    counter = collections.Counter(itertools.chain.from_iterable(sentences))  # First-seen order.
    num_tokens = sum(counter.values())
    kept = [(word, count) for word, count in counter.items() if count >= min_count]
    if not kept:
      raise EmptyVocabularyError(
          f"no word occurs min_count={min_count} times in the {num_tokens} training tokens: "
          "lower --config.word2vec.min_count or train on more text.")
    kept.sort(key=lambda item: -item[1])  # Stable: ties stay in first-seen order.
    return cls(words=tuple(w for w, _ in kept), counts=np.array([c for _, c in kept], np.int64),
               min_count=min_count, num_tokens=num_tokens)

  def __len__(self) -> int:
    return len(self.words)

  def index(self) -> dict[str, int]:
    """``{word: id}``."""
    return {word: i for i, word in enumerate(self.words)}

  def encode(self, sentences: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The id stream of ``sentences`` with out-of-vocabulary tokens removed.

    Args:
      sentences: token lists.

    Returns:
      ``(ids, sentence)``: int32 ``[N]`` word ids in corpus order and int32 ``[N]`` the
      index of the sentence each came from (sentences left empty count too).
    """
    sentences = sentences if isinstance(sentences, (list, tuple)) else list(sentences)
    lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
    flat = itertools.chain.from_iterable(sentences)
    ids = np.fromiter(map(self.index().get, flat, itertools.repeat(-1)), np.int64,
                      count=int(lengths.sum()))
    sentence_ids = np.repeat(np.arange(len(sentences), dtype=np.int32), lengths)
    kept = ids >= 0
    return ids[kept].astype(np.int32), sentence_ids[kept]

  def sha256(self) -> str:
    """Hex sha256 of the words and counts: identifies the vocabulary a checkpoint used."""
    digest = hashlib.sha256()
    for word, count in zip(self.words, self.counts.tolist()):
      digest.update(f"{word}\t{count}\n".encode())
    return digest.hexdigest()


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
  """Probability of keeping each occurrence of a word under frequent-word subsampling.

  P(keep w) = min(1, (√(f/(t·T)) + 1) · (t·T)/f): word2vec.c's ``ran`` and gensim's
  ``Word2Vec.prepare_vocab`` (Mikolov et al. 2013b, Sec. 2.3, in its released form).

  Args:
    counts: int or float ``[V]``, f(w) > 0 for each word.
    sample: threshold t (gensim's ``sample``, 1e-3 by default); ``0`` keeps everything.

  Returns:
    float64 ``[V]`` in (0, 1].

  Raises:
    ValueError: a negative ``sample`` or a non-positive count.
  """
  counts = np.asarray(counts, np.float64)
  if sample < 0:
    raise ValueError(f"sample={sample} must be >= 0 (0 disables subsampling).")
  if np.any(counts <= 0):
    raise ValueError("every count must be positive.")
  if sample == 0:
    return np.ones_like(counts)
  threshold = sample * counts.sum()
  return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
  """The negative-sampling noise distribution P_n(w) = f(w)^power / Σ_v f(v)^power.

  Args:
    counts: ``[V]`` word counts, positive.
    power: the exponent (0.75 in Mikolov et al. 2013b, gensim's ``ns_exponent``).

  Returns:
    float64 ``[V]`` summing to 1.
  """
  weights = np.asarray(counts, np.float64) ** power
  return weights / weights.sum()


def window_chunks(ids: np.ndarray, sentence: np.ndarray, keep_prob: np.ndarray, *,
                  epochs: int, window: int, chunk_size: int, seed: int) -> dict[str, np.ndarray]:
  """Chunks of the subsampled token stream, one fresh subsample per epoch.

  Epoch ``e`` keeps each token with probability ``keep_prob[id]`` using
  ``np.random.default_rng([seed, e])``, closes the gaps (windows reach past dropped words,
  as in word2vec.c), pads the kept stream with ``window`` ``PAD_ID`` tokens on each side
  and cuts it into consecutive chunks of ``chunk_size`` centres. Chunk ``c`` holds the
  padded stream's positions ``[c·L, c·L + L + 2·window)``: its centres are positions
  ``window … window + L − 1`` and every centre sees ``window`` tokens on each side.

  Args:
    ids: int32 ``[N]`` word ids in corpus order (``Vocabulary.encode``).
    sentence: int32 ``[N]`` sentence index of each token.
    keep_prob: float ``[V]``, ``keep_probabilities``.
    epochs: passes over the corpus, each with its own subsample.
    window: the maximum window W (tokens each side).
    chunk_size: centres per chunk L.
    seed: non-negative int.

  Returns:
    ``{"tokens": int32 [M, L + 2W], "sentence": int32 [M, L + 2W]}``, the chunks of all
    epochs in epoch order (padding has token and sentence ``PAD_ID``); the loop shuffles
    them.

  Raises:
    ValueError: ``epochs``, ``window`` or ``chunk_size`` below 1, or no token kept.
  """
  if epochs < 1 or window < 1 or chunk_size < 1:
    raise ValueError(f"epochs={epochs}, window={window} and chunk_size={chunk_size} must be >= 1.")
  tokens, sentences = [], []
  for epoch in range(epochs):
    rng = np.random.default_rng([seed, epoch])
    keep = rng.random(ids.shape[0]) < keep_prob[ids]
    kept_ids, kept_sentence = ids[keep], sentence[keep]
    num_chunks = -(-kept_ids.shape[0] // chunk_size)
    length = num_chunks * chunk_size + 2 * window
    padded_ids = np.full(length, PAD_ID, np.int32)
    padded_sentence = np.full(length, PAD_ID, np.int32)
    padded_ids[window:window + kept_ids.shape[0]] = kept_ids
    padded_sentence[window:window + kept_ids.shape[0]] = kept_sentence
    view = np.lib.stride_tricks.sliding_window_view
    starts = slice(0, num_chunks * chunk_size, chunk_size)
    tokens.append(view(padded_ids, chunk_size + 2 * window)[starts])
    sentences.append(view(padded_sentence, chunk_size + 2 * window)[starts])
  tokens, sentences = np.concatenate(tokens), np.concatenate(sentences)
  if not (tokens >= 0).any():
    raise ValueError("subsampling kept no token: lower the sample threshold or add text.")
  return {"tokens": np.ascontiguousarray(tokens), "sentence": np.ascontiguousarray(sentences)}

"""Classical n-gram baselines for token perplexity: unigram, add-k bigram, Kneser–Ney bigram.

A GPT's validation perplexity means little without the numbers that counting gives on the
same token ids; these models are estimated on BPE token-id documents with vocabulary size V
and scored in nats, so `perplexity` is directly comparable with exp(mean token NLL) of a
neural model evaluated on the same documents and the same tokens.

Conventions:
  * A document is a 1-D sequence of ints in [0, V). Every token of every document is
    scored; no end-of-document token is added (append your EOS id to each document if the
    neural model is scored on it). Empty documents contribute nothing.
  * Begin of document: the bigram models condition a document's first token on a reserved
    history id `bos_id = V` (never predicted, so every conditional distribution is over
    [0, V) only). Bigram counts are therefore a (V + 1) × V sparse matrix whose last row
    counts document-initial tokens. The unigram model ignores history altogether.
  * c(v) below is the count of v *as a history*, Σ_w c(v, w): it leaves out the last token
    of each document, so it can differ from the unigram count of v.
  * Counts are `scipy.sparse.csr_array`s built from one `np.unique` over pair keys
    v · V + w; scoring looks pairs up by `np.searchsorted` on the same keys, so nothing
    V × V is ever dense and both fitting and scoring are vectorised (about a second per
    10M tokens).
  * Every model gives every id in [0, V) nonzero probability under every history, seen or
    unseen, and each conditional distribution sums to 1 (up to float64 rounding).

Sources:
  * Laplace / Lidstone add-k smoothing, see Chen & Goodman 1999, "An empirical study of
    smoothing techniques for language modeling", Computer Speech & Language 13, Sec. 2.1
    (additive smoothing).
  * Kneser & Ney 1995, "Improved backing-off for M-gram language modeling", ICASSP
    (continuation counts N1+(•w) for the lower-order distribution).
  * Chen & Goodman 1999, interpolated Kneser–Ney: absolute discounting of the higher order,
    interpolation with the lower order at weight D · N1+(v•) / c(v), and the recursion
    ended by interpolating with the uniform distribution over V.
  * Ney, Essen & Kneser 1994, "On structuring probabilistic dependences in stochastic
    language modelling", Computer Speech & Language 8: discount estimate
    D = n1 / (n1 + 2 n2).
Shape legend: V vocabulary size, N scored tokens, P distinct bigram types (nonzeros).
"""

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

Documents = Iterable[Sequence[int] | np.ndarray]


def _flatten(sequences, vocab_size):
  """Concatenates documents into (history, token) pairs.

  Args:
    sequences: iterable of documents, each a 1-D sequence of ints in [0, vocab_size).
    vocab_size: V, a positive int.

  Returns:
    histories: int64 [N], the previous token, or V (begin of document) for a document's
      first token.
    tokens: int64 [N], the scored tokens.

  Raises:
    ValueError: if V < 1, a document is not a 1-D integer sequence, an id lies outside
      [0, V), or there are no tokens at all.
  """
  if not _is_int(vocab_size) or vocab_size < 1:
    raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
  if isinstance(sequences, (str, bytes)):
    raise ValueError("sequences must be an iterable of 1-D int documents, got a string")
  docs = []
  for index, seq in enumerate(sequences):
    doc = np.asarray(seq)
    if doc.ndim != 1:
      raise ValueError(f"document {index} must be a 1-D sequence of token ids, got "
                       f"ndim={doc.ndim} (wrap a single document in a list)")
    if doc.size == 0:
      continue
    if not np.issubdtype(doc.dtype, np.integer):
      raise ValueError(f"document {index} must hold integer token ids, got dtype {doc.dtype}")
    docs.append(doc.astype(np.int64, copy=False))
  if not docs:
    raise ValueError("no tokens: sequences is empty or holds only empty documents")
  tokens = np.concatenate(docs)
  low, high = int(tokens.min()), int(tokens.max())
  if low < 0 or high >= vocab_size:
    bad = low if low < 0 else high
    raise ValueError(f"token id {bad} outside [0, {vocab_size})")
  histories = np.empty_like(tokens)
  histories[1:] = tokens[:-1]
  starts = np.cumsum([0] + [len(doc) for doc in docs[:-1]])
  histories[starts] = vocab_size
  return histories, tokens


def _is_int(value):
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value):
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_positive(name, value):
  if not (_is_real(value) and math.isfinite(value) and value > 0):
    raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
  return float(value)


def _check_discount(name, value):
  if not (_is_real(value) and 0 < value < 1):
    raise ValueError(f"{name} must lie in the open interval (0, 1), got {value!r}")
  return float(value)


def ney_discount(counts, name="discount"):
  """Ney, Essen & Kneser (1994) absolute-discount estimate D = n1 / (n1 + 2 n2).

  Args:
    counts: int array [any], the positive counts of one level's n-gram types (zeros are
      ignored).
    name: what the discount is, for the error message.

  Returns:
    D, a float in (0, 1), where n1 and n2 are the numbers of types counted once and twice.

  Raises:
    ValueError: if the estimate is not in (0, 1) (no singletons, or no doubletons).
  """
  counts = np.asarray(counts)
  n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
  if n1 == 0 or n2 == 0:
    raise ValueError(f"Ney estimate of {name} needs types seen once and twice, got n1={n1}, "
                     f"n2={n2}; pass a float discount")
  return n1 / (n1 + 2 * n2)


@dataclasses.dataclass(frozen=True)
class BigramCounts:
  """Sparse bigram counts c(v, w) with a begin-of-document history row.

  Attributes:
    vocab_size: V; token ids lie in [0, V), history ids in [0, V] (V = begin of document).
    counts: int64 `scipy.sparse.csr_array` [V + 1, V], c(v, w), sorted indices, no explicit
      zeros.
    keys: int64 [P], sorted pair keys v · V + w of the nonzeros, in CSR order.
    history_counts: int64 [V + 1], c(v) = Σ_w c(v, w).
    history_types: int64 [V + 1], N1+(v•) = |{w : c(v, w) > 0}|.
  """
  vocab_size: int
  counts: sparse.csr_array
  keys: np.ndarray
  history_counts: np.ndarray
  history_types: np.ndarray

  @classmethod
  def from_sequences(cls, sequences, vocab_size):
    """Counts the bigrams of `sequences`; see `_flatten` for the arguments and errors."""
    histories, tokens = _flatten(sequences, vocab_size)
    keys, values = np.unique(histories * vocab_size + tokens, return_counts=True)
    rows, cols = np.divmod(keys, vocab_size)
    indptr = np.zeros(vocab_size + 2, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=vocab_size + 1), out=indptr[1:])
    counts = sparse.csr_array((values.astype(np.int64), cols, indptr),
                              shape=(vocab_size + 1, vocab_size))
    return cls(vocab_size=int(vocab_size), counts=counts, keys=keys,
               history_counts=np.bincount(histories, minlength=vocab_size + 1).astype(np.int64),
               history_types=np.diff(indptr))

  def lookup(self, histories, tokens):
    """c(v, w) for each pair.

    Args:
      histories: int64 [N], ids in [0, V].
      tokens: int64 [N], ids in [0, V).

    Returns:
      int64 [N], the training count of each (history, token) pair (0 if never seen).
    """
    query = histories * self.vocab_size + tokens
    # Sorted queries make the binary searches cache-friendly (about 4x faster at P ~ 10^6).
    order = np.argsort(query)
    position = np.empty_like(order)
    position[order] = np.searchsorted(self.keys, query[order])
    position = np.minimum(position, len(self.keys) - 1)
    found = self.keys[position] == query
    return np.where(found, self.counts.data[position], 0)

  def row(self, v):
    """Dense row c(v, ·): float64 [V], for a history id v in [0, V] (not checked)."""
    out = np.zeros(self.vocab_size, dtype=np.float64)
    start, stop = self.counts.indptr[v], self.counts.indptr[v + 1]
    out[self.counts.indices[start:stop]] = self.counts.data[start:stop]
    return out


class _LanguageModel:
  """Scoring shared by the models: subclasses define `vocab_size` and `_log_probs`."""

  vocab_size: int

  @property
  def bos_id(self):
    """The reserved begin-of-document history id, V."""
    return self.vocab_size

  def _log_probs(self, histories, tokens):
    raise NotImplementedError

  def token_nll(self, sequences: Documents) -> np.ndarray:
    """Per-token negative log-likelihood.

    Args:
      sequences: iterable of documents, each a 1-D sequence of ints in [0, V).

    Returns:
      float64 [N], -log p(w_t | w_{t-1}) in nats, documents concatenated in order; a
      document's first token is conditioned on `bos_id`.

    Raises:
      ValueError: on ids outside [0, V), non-integer or non-1-D documents, or no tokens.
    """
    histories, tokens = _flatten(sequences, self.vocab_size)
    return -self._log_probs(histories, tokens)

  def log_prob(self, sequences: Documents) -> tuple[float, int]:
    """Total log-likelihood and token count.

    Args:
      sequences: as in `token_nll`.

    Returns:
      (total, num_tokens): total log-probability in nats (float, ≤ 0) and the number of
      scored tokens N (int).

    Raises:
      ValueError: as `token_nll`.
    """
    nll = self.token_nll(sequences)
    return -float(np.sum(nll)), int(nll.size)

  def perplexity(self, sequences: Documents) -> float:
    """exp(mean per-token NLL in nats) over all tokens of `sequences` (float ≥ 1).

    Args:
      sequences: as in `token_nll`.

    Returns:
      exp(-total / N), `log_prob`'s total and count; a float ≥ 1.

    Raises:
      ValueError: as `token_nll`.
    """
    total, num_tokens = self.log_prob(sequences)
    return math.exp(-total / num_tokens)

  def _check_history(self, v):
    if not _is_int(v) or not 0 <= v <= self.vocab_size:
      raise ValueError(f"history must be an int in [0, {self.vocab_size}] ({self.vocab_size} = "
                       f"begin of document), got {v!r}")
    return int(v)


class UnigramLM(_LanguageModel):
  """Add-k (Lidstone) unigram model p(w) = (c(w) + k) / (N + k V).

  k defaults to 1 (Laplace): with the 10^6–10^7 training tokens this baseline is meant for,
  the pseudo-count mass k V / (N + k V) is a few per cent at most, and k > 0 makes every id
  in [0, V) (including ids absent from training) nonzero. History is ignored.

  Attributes:
    vocab_size: V.
    k: pseudo-count added to every id, > 0.
    counts: int64 [V], c(w) over all training tokens.
    log_probs: float64 [V], log p(w) in nats.
  """

  def __init__(self, counts, k):
    self.vocab_size = int(counts.shape[0])
    self.k = k
    self.counts = counts
    probs = (counts + k) / (int(counts.sum()) + k * self.vocab_size)
    self.log_probs = np.log(probs)

  @classmethod
  def fit(cls, sequences: Documents, vocab_size: int, k: float = 1.0):
    """Estimates the model on `sequences`.

    Args:
      sequences: iterable of documents, each a 1-D sequence of ints in [0, vocab_size).
      vocab_size: V.
      k: pseudo-count, finite and > 0.

    Returns:
      A fitted `UnigramLM`.

    Raises:
      ValueError: if k ≤ 0, V < 1, an id lies outside [0, V), or there are no tokens.
    """
    k = _check_positive("k", k)
    _, tokens = _flatten(sequences, vocab_size)
    return cls(np.bincount(tokens, minlength=vocab_size).astype(np.int64), k)

  def conditional(self, v: int) -> np.ndarray:
    """p(· | v) = p(·), float64 [V], for any history v in [0, V] (V = begin of document).

    Raises:
      ValueError: if v is not an int in [0, V].
    """
    self._check_history(v)
    return np.exp(self.log_probs)

  def _log_probs(self, histories, tokens):
    del histories
    return self.log_probs[tokens]


class AddKBigramLM(_LanguageModel):
  """Add-k bigram model p(w | v) = (c(v, w) + k) / (c(v) + k V).

  An unseen history (c(v) = 0) gets the uniform distribution 1 / V, which is what the
  formula gives. k = 1 (Laplace) is the textbook default; it over-smooths badly at large V,
  which is exactly why it is kept as a baseline (tune k on held-out data for a fair one).

  Attributes:
    vocab_size: V.
    k: pseudo-count added to every (v, w), > 0.
    counts: `BigramCounts`.
  """

  def __init__(self, counts, k):
    self.vocab_size = counts.vocab_size
    self.k = k
    self.counts = counts

  @classmethod
  def fit(cls, sequences: Documents, vocab_size: int, k: float = 1.0):
    """Estimates the model on `sequences`.

    Args:
      sequences: iterable of documents, each a 1-D sequence of ints in [0, vocab_size).
      vocab_size: V.
      k: pseudo-count, finite and > 0.

    Returns:
      A fitted `AddKBigramLM`.

    Raises:
      ValueError: if k ≤ 0, V < 1, an id lies outside [0, V), or there are no tokens.
    """
    k = _check_positive("k", k)
    return cls(BigramCounts.from_sequences(sequences, vocab_size), k)

  def conditional(self, v: int) -> np.ndarray:
    """p(· | v), float64 [V], for a history v in [0, V] (V = begin of document).

    Raises:
      ValueError: if v is not an int in [0, V].
    """
    v = self._check_history(v)
    denominator = self.counts.history_counts[v] + self.k * self.vocab_size
    return (self.counts.row(v) + self.k) / denominator

  def _log_probs(self, histories, tokens):
    numerator = self.counts.lookup(histories, tokens) + self.k
    denominator = self.counts.history_counts[histories] + self.k * self.vocab_size
    return np.log(numerator) - np.log(denominator)


class KneserNeyBigramLM(_LanguageModel):
  """Interpolated Kneser–Ney bigram model (Kneser & Ney 1995; Chen & Goodman 1999).

  With c(v) = Σ_w c(v, w), N1+(v•) = |{w : c(v, w) > 0}|, N1+(•w) = |{v : c(v, w) > 0}|
  (v ranging over [0, V], the begin-of-document history included), N1+(••) the number of
  bigram types and T = |{w : N1+(•w) > 0}|:

    p_KN(w | v) = max(c(v, w) − D, 0) / c(v) + D · N1+(v•) / c(v) · p_cont(w)   if c(v) > 0,
    p_KN(w | v) = p_cont(w)                                                     if c(v) = 0,
    p_cont(w)   = max(N1+(•w) − D₁, 0) / N1+(••) + D₁ · T / N1+(••) · 1 / V.

  p_cont is the continuation unigram N1+(•w) / N1+(••), itself absolutely discounted and
  interpolated with the uniform distribution over [0, V) — the same recursion one level
  down, ended at the uniform distribution as in Chen & Goodman — so a token never seen
  after any history still has probability D₁ T / (N1+(••) V) > 0. Because every nonzero
  count is ≥ 1 > D, each level's discounted mass is exactly what it hands to the level
  below, and every p_KN(· | v) sums to 1, for seen and unseen v alike.

  Discounts: D (bigram level) defaults to 0.75, the usual fixed value; `discount=None`
  estimates it from the bigram counts-of-counts by Ney, Essen & Kneser (1994),
  D = n1 / (n1 + 2 n2), n_r the number of bigram types seen r times. D₁ (continuation level)
  defaults to D. It is not Ney-estimated from the continuation counts N1+(•w): on a large
  corpus almost every token has many left contexts, so n1 or n2 is often 0 there.

  Attributes:
    vocab_size: V.
    discount: D in (0, 1).
    unigram_discount: D₁ in (0, 1).
    counts: `BigramCounts`.
    continuation_counts: int64 [V], N1+(•w).
    p_cont: float64 [V], the interpolated continuation unigram p_cont(w) above.
  """

  def __init__(self, counts, discount, unigram_discount):
    self.vocab_size = counts.vocab_size
    self.counts = counts
    self.discount = discount
    self.unigram_discount = unigram_discount
    self.continuation_counts = np.bincount(
        counts.counts.indices, minlength=self.vocab_size).astype(np.int64)
    num_types = counts.keys.size  # N1+(••)
    num_continued = np.count_nonzero(self.continuation_counts)  # T
    self.p_cont = (np.maximum(self.continuation_counts - unigram_discount, 0.0)
                   + unigram_discount * num_continued / self.vocab_size) / num_types

  @classmethod
  def fit(cls, sequences: Documents, vocab_size: int, discount: float | None = 0.75,
          unigram_discount: float | None = None):
    """Estimates the model on `sequences`.

    Args:
      sequences: iterable of documents, each a 1-D sequence of ints in [0, vocab_size).
      vocab_size: V.
      discount: D in (0, 1) for the bigram level, or None for the Ney et al. (1994)
        estimate n1 / (n1 + 2 n2) from the bigram counts-of-counts.
      unigram_discount: D₁ in (0, 1) for the continuation level, or None for D.

    Returns:
      A fitted `KneserNeyBigramLM`.

    Raises:
      ValueError: if a discount is not in (0, 1) (given, or a Ney estimate without types
        seen once and twice), V < 1, an id lies outside [0, V), or there are no tokens.
    """
    if discount is not None:
      discount = _check_discount("discount", discount)
    if unigram_discount is not None:
      unigram_discount = _check_discount("unigram_discount", unigram_discount)
    counts = BigramCounts.from_sequences(sequences, vocab_size)
    if discount is None:
      discount = ney_discount(counts.counts.data, "discount")
    return cls(counts, discount, discount if unigram_discount is None else unigram_discount)

  def conditional(self, v: int) -> np.ndarray:
    """p_KN(· | v), float64 [V], for a history v in [0, V] (V = begin of document).

    Raises:
      ValueError: if v is not an int in [0, V].
    """
    v = self._check_history(v)
    history_count = self.counts.history_counts[v]
    if history_count == 0:
      return self.p_cont.copy()
    backoff = self.discount * self.counts.history_types[v] / history_count
    discounted = np.maximum(self.counts.row(v) - self.discount, 0.0) / history_count
    return discounted + backoff * self.p_cont

  def _log_probs(self, histories, tokens):
    history_counts = self.counts.history_counts[histories]
    seen = history_counts > 0
    safe_counts = np.maximum(history_counts, 1)
    pair_counts = self.counts.lookup(histories, tokens)
    discounted = np.maximum(pair_counts - self.discount, 0.0) / safe_counts
    history_types = self.counts.history_types[histories]
    backoff = np.where(seen, self.discount * history_types / safe_counts, 1.0)
    return np.log(np.where(seen, discounted, 0.0) + backoff * self.p_cont[tokens])


def baseline_perplexities(train_stream: np.ndarray, heldout_stream: np.ndarray, vocab_size: int,
                          *, add_k: float = 0.01, prefix: str = "val") -> dict[str, float]:
  """Held-out perplexity of the three classical baselines, on the tokens a neural language
  model scores (the comparison of a GPT's perplexity).

  Each model is fitted on ``train_stream`` as one sequence and scores ``heldout_stream`` as
  one sequence; the held-out stream's first token is left out of the mean, as a language
  model reading packed rows never predicts it (``methods.language_models``). Document
  separators are ordinary tokens of the streams, so every model predicts them too.

  Args:
    train_stream: int ``[N]`` training token ids in ``[0, vocab_size)``.
    heldout_stream: int ``[M]``, M ≥ 2, held-out token ids.
    vocab_size: V.
    add_k: k of the add-k bigram.
    prefix: the keys' prefix (the held-out split's name).

  Returns:
    ``{f"{prefix}_unigram_perplexity", f"{prefix}_bigram_add_k_perplexity",
    f"{prefix}_bigram_kneser_ney_perplexity"}``: exp of the mean NLL in nats per token.
    The unigram is add-one smoothed, Kneser–Ney uses the absolute discount D = 0.75.

  Raises:
    ValueError: as the models' ``fit``; fewer than 2 held-out tokens.
  """
  heldout = np.asarray(heldout_stream)
  if heldout.size < 2:
    raise ValueError(f"the held-out stream has {heldout.size} tokens; need at least 2.")
  train = [np.asarray(train_stream)]
  models = {"unigram": UnigramLM.fit(train, vocab_size),
            "bigram_add_k": AddKBigramLM.fit(train, vocab_size, k=add_k),
            "bigram_kneser_ney": KneserNeyBigramLM.fit(train, vocab_size)}
  return {f"{prefix}_{name}_perplexity": float(np.exp(model.token_nll([heldout])[1:].mean()))
          for name, model in models.items()}

"""Word-vector evaluation: word2vec text files, 3CosAdd analogies, word similarity, PCA figure.

The numbers reproduce gensim 4.4.0's `KeyedVectors` exactly (same skipped questions, same
float32 arithmetic, same tie-breaking), so results can be compared with published gensim
runs, but the 19,544 analogy questions of Mikolov et al. (2013a) are answered with batched
matrix products in seconds instead of one `most_similar` call per question.

Sources:
  * Mikolov, Chen, Corrado & Dean 2013a, "Efficient Estimation of Word Representations in
    Vector Space", Section 4.1 (the semantic-syntactic analogy set, questions-words.txt,
    answered by 3CosAdd: argmax_w cos(w, b - a + c) over all words but a, b, c).
  * Mikolov, Sutskever, Chen, Corrado & Dean 2013b, "Distributed Representations of Words
    and Phrases and their Compositionality", Fig. 2 (PCA of countries and capitals).
  * Finkelstein et al. 2002, "Placing Search in Context" (WordSim-353, word-pair scores).
  * gensim 4.4.0, `gensim/models/keyedvectors.py`: `most_similar`, `evaluate_word_analogies`,
    `evaluate_word_pairs`, `save_word2vec_format`, `load_word2vec_format`.

Conventions copied from gensim (and checked against it in tests/test_word_vectors_eval.py):
  * Cosines are `(V · m) / |V|` in float32, with m the float32 unit mean of the unit query
    vectors (positive words weight +1, negative -1), summed in query order.
  * `restrict_vocab=R` keeps the first R words (the most frequent ones); a question with any
    word outside them is skipped (counted in `num_skipped`, not scored).
  * `case_insensitive=True` upper-cases words; among case variants the most frequent one
    stands for them all, and every case variant of a question word is excluded as an answer;
    but gensim only looks at its 5 best candidates (question words' own rows removed), so
    when all 5 are case variants of question words its answer is the fifth of them.
  * Ties: candidates are ranked by `np.argpartition` then `np.argsort` of the negated
    cosines, exactly as `gensim.matutils.argsort`; questions whose top two candidates lie
    within `_TIE_TOLERANCE` of each other are re-answered by that exact procedure.
Shape legend: V vocabulary size, D vector dim, R restricted vocabulary, B questions in a batch.
"""

import dataclasses
import functools
import io
import logging
import types
import uuid
import warnings
from typing import Mapping

from etils import epath
import numpy as np
from scipy.linalg import blas as scipy_blas

_LOG = logging.getLogger(__name__)

# Questions whose two best candidate cosines differ by less than this (or that have several
# case variants of the question words near the top) are re-answered with gensim's exact
# float32 procedure; the batched float32 cosines differ from gensim's by ~1e-6 at most.
_TIE_TOLERANCE = 1e-4

# Analogy questions are scored in batches of at most this many questions and at most
# _SCORES_PER_BATCH scores (float32, so 128 MiB) against the R searched words.
_ANALOGY_BATCH = 1024
_SCORES_PER_BATCH = 2**25
# A batch's scores are gathered from the cosines of its distinct question words when it has
# at most this many distinct words per question, else computed by one product.
_GATHER_MAX_WORDS_PER_QUESTION = 0.5

# Rows converted to text per write when saving.
_SAVE_CHUNK = 2048

# Countries and capitals frequent in English text (Mikolov et al. 2013b, Fig. 2 uses most).
DEFAULT_COUNTRY_CAPITALS = (
    ("china", "beijing"),
    ("japan", "tokyo"),
    ("russia", "moscow"),
    ("france", "paris"),
    ("germany", "berlin"),
    ("italy", "rome"),
    ("spain", "madrid"),
    ("england", "london"),
    ("greece", "athens"),
    ("egypt", "cairo"),
    ("turkey", "ankara"),
    ("poland", "warsaw"),
)


class OutOfVocabularyError(KeyError):
  """A word that is not in `WordVectors.words`."""

  def __str__(self):
    # KeyError's str() is the repr of its argument; show the message as written.
    return str(self.args[0]) if self.args else ""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class WordVectors:
  """Word vectors with their vocabulary, in frequency order.

  Attributes:
    words: tuple of V distinct str, most frequent first (gensim's `index_to_key`).
    vectors: float32 array [V, D], row i is the vector of `words[i]` (read-only).
    min_count: int or None, the minimum corpus count a word needed to get a vector (only
      used in error messages).
    index: read-only mapping word -> row of `vectors`.
  """

  words: tuple[str, ...]
  vectors: np.ndarray
  min_count: int | None = None
  index: Mapping[str, int] = dataclasses.field(init=False, compare=False)

  def __post_init__(self):
    words = tuple(self.words)
    vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
      raise ValueError(f"vectors must be [V, D] with V = len(words) = {len(words)}, got shape "
                       f"{vectors.shape}; pass one row per word.")
    index = {}
    for row, word in enumerate(words):
      if not isinstance(word, str):
        raise TypeError(f"words must be str, got {type(word).__name__} {word!r} at row {row}; "
                        "decode token ids to strings first.")
      if word in index:
        raise ValueError(f"word {word!r} appears twice (rows {index[word]} and {row}); "
                         "keep one row per word.")
      index[word] = row
    vectors = vectors.view()
    vectors.flags.writeable = False
    object.__setattr__(self, "words", words)
    object.__setattr__(self, "vectors", vectors)
    object.__setattr__(self, "index", types.MappingProxyType(index))

  def __repr__(self):
    return (f"WordVectors({len(self.words)} words x {self.vectors.shape[1]} dims, "
            f"min_count={self.min_count})")

  def __len__(self):
    return len(self.words)

  def __contains__(self, word):
    return word in self.index

  @property
  def dim(self):
    """int D, the vector size."""
    return self.vectors.shape[1]

  def row(self, word):
    """Row of `word` in `vectors`.

    Args:
      word: str.

    Returns:
      int in [0, V).

    Raises:
      OutOfVocabularyError: `word` has no vector.
    """
    try:
      return self.index[word]
    except KeyError:
      min_count = "unknown" if self.min_count is None else self.min_count
      raise OutOfVocabularyError(
          f"{word!r} is not in the vocabulary of {len(self.words)} words (min_count "
          f"{min_count}); check its spelling and case, or train with a lower min_count.") from None

  def vector(self, word):
    """The vector of `word`.

    Args:
      word: str.

    Returns:
      float32 array [D] (read-only view).

    Raises:
      OutOfVocabularyError: `word` has no vector.
    """
    return self.vectors[self.row(word)]

  def normalized(self):
    """The vectors scaled to unit L2 norm (zero rows stay zero).

    Returns:
      float32 array [V, D], new and writable.
    """
    norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
    return (self.vectors / np.where(norms > 0, norms, 1)).astype(np.float32)

  @functools.cached_property
  def norms(self):
    """float32 array [V], the L2 norm of every row, as gensim's `KeyedVectors.fill_norms`."""
    norms = np.linalg.norm(self.vectors, axis=1)
    norms.flags.writeable = False
    return norms


# ----------------------------------------------------------------------------------------
# word2vec text format.


def _atomic_write(path, write_fn):
  """Calls write_fn(binary file) on a temporary file next to `path`, then renames it."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
  try:
    with tmp.open("wb") as f:
      write_fn(f)
    tmp.replace(path)
  except BaseException:
    if tmp.exists():
      tmp.unlink()
    raise
  return path


def save_word2vec_format(vectors, path):
  """Writes word vectors in the word2vec text format, atomically.

  The bytes are those of gensim's `KeyedVectors.save_word2vec_format(path, binary=False)` for
  the same words in the same order: a header "V D", then one line per word, "word x1 ... xD",
  each number the shortest decimal that reads back as the same float32 (`str(np.float32)`).

  Args:
    vectors: WordVectors.
    path: str or epath.Path; parent folders are created.

  Returns:
    epath.Path of the written file.

  Raises:
    ValueError: a word is empty or contains whitespace (it would break the format).

  Source: Mikolov et al. word2vec.c (text output, `-binary 0`); gensim 4.4.0.
  """
  for word in vectors.words:
    if len(word.split()) != 1 or word.split()[0] != word:
      raise ValueError(f"word {word!r} is empty or contains whitespace, which the word2vec text "
                       "format cannot store; replace spaces (e.g. with '_') before saving.")

  def write(f):
    f.write(f"{len(vectors.words)} {vectors.dim}\n".encode("utf-8"))
    for start in range(0, len(vectors.words), _SAVE_CHUNK):
      text_rows = vectors.vectors[start:start + _SAVE_CHUNK].astype(str)
      words = vectors.words[start:start + _SAVE_CHUNK]
      f.write("".join(f"{word} {' '.join(row)}\n" for word, row in zip(words, text_rows))
              .encode("utf-8"))

  return _atomic_write(path, write)


def load_word2vec_format(path, min_count=None):
  """Reads word vectors in the word2vec text format.

  Reads what gensim's `KeyedVectors.load_word2vec_format(path, binary=False)` reads, into
  the same float32 values: a header "V D", then V lines "word x1 ... xD" (single spaces,
  trailing whitespace ignored, lines after the V-th ignored). A repeated word keeps its first
  vector, as in gensim.

  Args:
    path: str or epath.Path, UTF-8 text.
    min_count: int or None, recorded in the result for error messages.

  Returns:
    WordVectors in file order.

  Raises:
    ValueError: the header is not "V D", the file is not UTF-8 text, a line has the wrong
      number of values, or the file has fewer than V vector lines.
  """
  path = epath.Path(path)
  words, seen = [], set()
  with path.open("rb") as f:
    header = f.readline()
    try:
      num_words, dim = (int(x) for x in header.decode("utf-8").split())
    except (UnicodeDecodeError, ValueError):
      raise ValueError(f"{path}: first line {header[:60]!r} is not 'V D'; expected a word2vec "
                       "TEXT file (binary files are not supported).") from None
    vectors = np.empty((num_words, dim), np.float32)
    pending, pending_rows = [], []

    def flush():
      if pending:
        vectors[pending_rows] = np.asarray(pending, dtype=np.float32).reshape(-1, dim)
        pending.clear()
        pending_rows.clear()

    for line_no in range(2, num_words + 2):
      line = f.readline()
      if not line:
        raise ValueError(f"{path} ends after {line_no - 2} of the {num_words} vectors its header "
                         "announces; the file is truncated, re-save it.")
      try:
        parts = line.rstrip().decode("utf-8").split(" ")
      except UnicodeDecodeError:
        raise ValueError(f"{path}: line {line_no} is not UTF-8; expected a word2vec TEXT file "
                         "(binary files are not supported).") from None
      if len(parts) != dim + 1:
        raise ValueError(f"{path}: line {line_no} has {len(parts) - 1} values instead of {dim}; "
                         "words must not contain spaces and values are single-space separated.")
      if parts[0] in seen:
        _LOG.warning("duplicate word %r on line %d of %s; keeping its first vector", parts[0],
                     line_no, path)
        continue
      seen.add(parts[0])
      pending_rows.append(len(words))
      words.append(parts[0])
      pending.extend(parts[1:])
      if len(pending_rows) >= _SAVE_CHUNK:
        flush()
    flush()
  return WordVectors(tuple(words), vectors[:len(words)], min_count=min_count)


# ----------------------------------------------------------------------------------------
# Similarity queries, gensim-exact.


def _gensim_unit_mean(vectors, rows, weights):
  """gensim's `get_mean_vector(pre_normalize=True, post_normalize=True)`, same float ops.

  Args:
    vectors: WordVectors.
    rows: sequence of int, query rows, in query order (positive words first).
    weights: float64 array [len(rows)], +1 for positive and -1 for negative words.

  Returns:
    float32 array [D], the unit mean of the unit query vectors.
  """
  vectors_VxD, norms_V = vectors.vectors, vectors.norms
  mean = np.zeros(vectors_VxD.shape[1], vectors_VxD.dtype)
  total_weight = 0
  for idx, row in enumerate(rows):
    mean += weights[idx] * (vectors_VxD[row] / norms_V[row])
    total_weight += abs(weights[idx])
  if total_weight > 0:
    mean = mean / total_weight
  # gensim.matutils.unitvec: float64 BLAS nrm2 and scal.
  veclen = 0.0 if mean.size == 0 else scipy_blas.dnrm2(mean)
  if veclen > 0.0:
    mean = scipy_blas.dscal(1.0 / veclen, mean).astype(mean.dtype)
  return mean.astype(np.float32)


def _gensim_top_rows(dists, topn):
  """gensim.matutils.argsort(dists, topn, reverse=True): rows of the topn largest values."""
  x = -np.asarray(dists)
  if topn <= 0:
    return []
  if topn >= x.size:
    return np.argsort(x)[:topn]
  most_extreme = np.argpartition(x, topn)[:topn]
  return most_extreme.take(np.argsort(x.take(most_extreme)))


def _restricted_rows(vectors, restrict_vocab):
  """Number of rows gensim searches: the first restrict_vocab, or all when it is 0 or None."""
  return len(vectors.words[:restrict_vocab]) if restrict_vocab else len(vectors.words)


def _gensim_most_similar_rows(vectors, rows, weights, topn, num_rows):
  """Ranked (row, cosine) list of gensim's most_similar for query rows, query rows excluded."""
  mean_D = _gensim_unit_mean(vectors, rows, weights)
  dists_R = np.dot(vectors.vectors[:num_rows], mean_D) / vectors.norms[:num_rows]
  best = _gensim_top_rows(dists_R, topn + len(rows))
  return [(int(r), float(dists_R[r])) for r in best if r not in rows][:topn]


def most_similar(vectors, positive, negative=(), topn=10, restrict_vocab=None):
  """Words closest in cosine to the mean of unit query vectors (3CosAdd), as gensim.

  Equals gensim's `KeyedVectors.most_similar(positive, negative, topn, restrict_vocab)`:
  m = unit(mean(unit(p) for p in positive, -unit(n) for n in negative)), cosines
  (V · m) / |V| in float32, query words excluded from the result.

  Args:
    vectors: WordVectors.
    positive: str or sequence of str, words added (weight +1).
    negative: str or sequence of str, words subtracted (weight -1).
    topn: int, number of words returned; < 1 returns [].
    restrict_vocab: int or None, search only the first restrict_vocab (most frequent) words.

  Returns:
    list of up to topn (word, cosine) pairs, cosine a float in [-1, 1], best first.

  Raises:
    OutOfVocabularyError: a query word has no vector.
    ValueError: positive and negative are both empty.

  Source: Mikolov et al. 2013a, Section 4.1 (king - man + woman); gensim 4.4.0.
  """
  if topn < 1:
    return []
  positive = [positive] if isinstance(positive, str) else list(positive)
  negative = [negative] if isinstance(negative, str) else list(negative)
  if not positive and not negative:
    raise ValueError("most_similar needs at least one word; pass e.g. positive=['king', 'woman'], "
                     "negative=['man'].")
  rows = [vectors.row(word) for word in positive + negative]
  weights = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))
  ranked = _gensim_most_similar_rows(vectors, rows, weights, topn,
                                     _restricted_rows(vectors, restrict_vocab))
  return [(vectors.words[row], cosine) for row, cosine in ranked]


def nearest_neighbors(vectors, word, topn=10, restrict_vocab=None):
  """The topn words of highest cosine similarity to `word` (gensim's `similar_by_word`).

  Args:
    vectors: WordVectors.
    word: str.
    topn: int ≥ 1.
    restrict_vocab: int or None, search only the first restrict_vocab words.

  Returns:
    list of topn (word, cosine) pairs, best first, `word` itself excluded.

  Raises:
    OutOfVocabularyError: `word` has no vector.
  """
  return most_similar(vectors, [word], topn=topn, restrict_vocab=restrict_vocab)


# ----------------------------------------------------------------------------------------
# Benchmarks.


def _ok_vocab(vectors, restrict_vocab, case_insensitive):
  """gensim's `ok_vocab`: key -> row of its most frequent spelling, first restrict_vocab words."""
  key_fn = str.upper if case_insensitive else (lambda word: word)
  ok_words = vectors.words[:restrict_vocab]
  ok_vocab = {}
  for row in range(len(ok_words) - 1, -1, -1):
    ok_vocab[key_fn(ok_words[row])] = row
  return ok_vocab, key_fn


def _exact_analogy_answer(vectors, ia, ib, ic, group_R, num_rows):
  """gensim's answer to a : b :: c : ?, as the row of the answer's most frequent spelling.

  Returns:
    int row (compare with the expected word's row) or -1 when gensim predicts nothing.
  """
  ranked = _gensim_most_similar_rows(vectors, [ib, ic, ia], np.array([1.0, 1.0, -1.0]), 5,
                                     num_rows)
  predicted = -1
  for row, _ in ranked:
    predicted = int(group_R[row])
    if predicted not in (ia, ib, ic):
      break
  return predicted


def _offset_scores(unit_RxD, ia_B, ib_B, ic_B):
  """unit_RxD · (u_b + u_c - u_a) for a batch of questions: the 3CosAdd cosines times |m|.

  Questions of one analogy file share few words, so when a batch has few distinct words
  (`_GATHER_MAX_WORDS_PER_QUESTION`) the cosines of those words with the vocabulary are computed
  once and combined, cos(w, b) + cos(w, c) - cos(w, a), row by row (memory-bound but cheaper
  than the product); otherwise one product with the offsets.

  Args:
    unit_RxD: float32 array [R, D], unit rows.
    ia_B, ib_B, ic_B: int arrays [B], rows of a, b and c.

  Returns:
    float32 array [B, R], new and writable.
  """
  words_W, inverse = np.unique(np.stack([ia_B, ib_B, ic_B]), return_inverse=True)
  if len(words_W) > _GATHER_MAX_WORDS_PER_QUESTION * len(ia_B):
    return (unit_RxD[ib_B] + unit_RxD[ic_B] - unit_RxD[ia_B]) @ unit_RxD.T
  cos_WxR = unit_RxD[words_W] @ unit_RxD.T
  scores_BxR = np.empty((len(ia_B), unit_RxD.shape[0]), np.float32)
  for q, (ja, jb, jc) in enumerate(inverse.reshape(3, -1).T.tolist()):
    np.add(cos_WxR[jb], cos_WxR[jc], out=scores_BxR[q])
    scores_BxR[q] -= cos_WxR[ja]
  return scores_BxR


def _batched_analogy_answers(vectors, questions_Qx4, group_R, num_rows):
  """Rows predicted by 3CosAdd for each question, gensim-exact, batched.

  Batched float32 scores pick the answer; a question whose best two candidates are within
  `_TIE_TOLERANCE` in cosine, or that has four or more case variants of its question words
  (gensim skips those but they fill its top-5 list) that close to its best candidate, is
  re-answered with gensim's exact procedure (`_exact_analogy_answer`).

  Args:
    vectors: WordVectors.
    questions_Qx4: int array [Q, 4], rows of (a, b, c, expected) in the restricted
      vocabulary, each the row of the word's most frequent spelling.
    group_R: int array [R], row of the most frequent spelling of every restricted word.
    num_rows: int R.

  Returns:
    int array [Q], predicted row of the most frequent spelling, or -1 for no prediction.
  """
  unit_RxD = vectors.vectors[:num_rows] / vectors.norms[:num_rows, None]
  # Case variants that are not the most frequent spelling: excluded as answers by gensim's
  # `ignore` check but still occupying its top-5 list.
  variants = {}
  for row in np.flatnonzero(group_R != np.arange(num_rows)):
    variants.setdefault(int(group_R[row]), []).append(int(row))
  answers_Q = np.full(len(questions_Qx4), -1, np.int64)
  batch_size = max(1, min(_ANALOGY_BATCH, _SCORES_PER_BATCH // max(num_rows, 1)))
  for start in range(0, len(questions_Qx4), batch_size):
    batch_Bx4 = questions_Qx4[start:start + batch_size]
    ia_B, ib_B, ic_B = batch_Bx4[:, 0], batch_Bx4[:, 1], batch_Bx4[:, 2]
    # Scores are cosines times |m|, m = u_b + u_c - u_a; so is the tolerance.
    scores_BxR = _offset_scores(unit_RxD, ia_B, ib_B, ic_B)
    norm_B = np.linalg.norm(unit_RxD[ib_B] + unit_RxD[ic_B] - unit_RxD[ia_B], axis=1)
    tolerance_B = _TIE_TOLERANCE * norm_B
    batch = np.arange(len(batch_Bx4))
    for col in range(3):
      scores_BxR[batch, batch_Bx4[:, col]] = -np.inf
    variant_q, variant_r = [], []
    if variants:
      for q, (ia, ib, ic) in enumerate(batch_Bx4[:, :3].tolist()):
        for group in {ia, ib, ic}:
          for row in variants.get(group, ()):
            variant_q.append(q)
            variant_r.append(row)
    variant_q, variant_r = np.asarray(variant_q, np.int64), np.asarray(variant_r, np.int64)
    variant_scores = scores_BxR[variant_q, variant_r]
    scores_BxR[variant_q, variant_r] = -np.inf
    best_B = np.argmax(scores_BxR, axis=1)
    best_score_B = scores_BxR[batch, best_B]
    scores_BxR[batch, best_B] = -np.inf
    second_score_B = np.max(scores_BxR, axis=1)
    near_variants_B = np.bincount(
        variant_q[variant_scores >= (best_score_B - tolerance_B)[variant_q]],
        minlength=len(batch))
    exact_B = (~np.isfinite(best_score_B) | (norm_B < 1e-3)
               | (best_score_B - second_score_B <= tolerance_B) | (near_variants_B >= 4))
    answers_B = group_R[best_B]
    for q in np.flatnonzero(exact_B):
      ia, ib, ic = batch_Bx4[q, :3].tolist()
      answers_B[q] = _exact_analogy_answer(vectors, ia, ib, ic, group_R, num_rows)
    answers_Q[start:start + len(batch_Bx4)] = answers_B
  return answers_Q


def _fraction(correct, total):
  return correct / total if total else 0.0


def evaluate_word_analogies(vectors, path, restrict_vocab=30000, case_insensitive=True):
  """Accuracy on an analogy file, exactly gensim's `KeyedVectors.evaluate_word_analogies`.

  Each line "a b c d" asks for d = argmax cos(w, unit(unit(b) + unit(c) - unit(a))) over the
  first restrict_vocab words except a, b, c (and their case variants); ": name" lines start
  sections. Questions with a word outside the first restrict_vocab words are skipped; lines
  without exactly four words are ignored.

  Args:
    vectors: WordVectors, most frequent words first.
    path: str or epath.Path of a questions-words.txt style file (UTF-8).
    restrict_vocab: int or None, only the first restrict_vocab words are used, as questions
      and as answers (30000 as in Mikolov et al. 2013a; gensim's default is 300000).
    case_insensitive: bool, compare upper-cased words.

  Returns:
    dict with
      "accuracy": float in [0, 1], over all answered questions (gensim's score);
      "semantic", "syntactic": float, over sections not starting / starting with "gram"
        (Mikolov et al. 2013a: the five semantic sections come first);
      "sections": {name: {"correct": int, "incorrect": int, "accuracy": float}} in file order,
        plus gensim's "Total accuracy" (sections with the same name are merged);
      "num_questions": int, questions answered; "num_skipped": int, skipped for OOV words;
      "oov_ratio": float, skipped questions in percent of all questions.
    An empty group scores 0.0, as in gensim.

  Raises:
    ValueError: a question comes before the first ": section" line, or the file has no
      questions.

  Source: Mikolov et al. 2013a, Section 4.1, Table 1; gensim 4.4.0.
  """
  path = epath.Path(path)
  ok_vocab, key_fn = _ok_vocab(vectors, restrict_vocab, case_insensitive)
  # Row of the most frequent spelling of each of the R searched words (gensim searches the
  # same rows as it accepts in questions, except for restrict_vocab=0, which accepts none).
  group_R = np.asarray([ok_vocab[key_fn(w)] for w in vectors.words[:restrict_vocab]], np.int64)
  num_rows = len(group_R)
  section_names, question_sections, questions = [], [], []
  num_lines = num_skipped = 0
  with path.open("rb") as f:
    for line_no, line in enumerate(f):
      line = line.decode("utf-8")
      if line.startswith(": "):
        section_names.append(line.lstrip(": ").strip())
        continue
      if not section_names:
        raise ValueError(f"{path}: line {line_no + 1} comes before any ': section' line; an "
                         "analogy file starts with a line like ': capital-common-countries'.")
      words = line.split()
      if len(words) != 4:
        _LOG.debug("skipping invalid line #%d in %s", line_no, path)
        continue
      num_lines += 1
      rows = [ok_vocab.get(key_fn(word), -1) for word in words]
      if min(rows) < 0:
        num_skipped += 1
        continue
      question_sections.append(len(section_names) - 1)
      questions.append(rows)
  if not num_lines:
    raise ValueError(f"{path} holds no 'a b c d' question lines; pass a questions-words.txt "
                     "style file.")
  questions_Qx4 = np.asarray(questions, np.int64).reshape(-1, 4)
  answers_Q = _batched_analogy_answers(vectors, questions_Qx4, group_R, num_rows)
  correct_Q = answers_Q == questions_Qx4[:, 3]
  section_Q = np.asarray(question_sections, np.int64)
  correct_S = np.bincount(section_Q[correct_Q], minlength=len(section_names))
  answered_S = np.bincount(section_Q, minlength=len(section_names))

  sections, totals = {}, {"semantic": [0, 0], "syntactic": [0, 0]}
  for name, correct, answered in zip(section_names, correct_S.tolist(), answered_S.tolist()):
    counts = sections.setdefault(name, {"correct": 0, "incorrect": 0})
    counts["correct"] += correct
    counts["incorrect"] += answered - correct
    kind = totals["syntactic" if name.startswith("gram") else "semantic"]
    kind[0] += correct
    kind[1] += answered
  num_correct, num_answered = int(correct_Q.sum()), len(correct_Q)
  sections["Total accuracy"] = {"correct": num_correct, "incorrect": num_answered - num_correct}
  for name, counts in sections.items():
    counts["accuracy"] = _fraction(counts["correct"], counts["correct"] + counts["incorrect"])
    _LOG.info("%s: %.1f%% (%d/%d)", name, 100 * counts["accuracy"], counts["correct"],
              counts["correct"] + counts["incorrect"])
  if not num_answered:
    _LOG.warning("all %d questions of %s have words outside the first %s words; accuracy is 0",
                 num_lines, path, restrict_vocab)
  return {
      "accuracy": _fraction(num_correct, num_answered),
      "semantic": _fraction(*totals["semantic"]),
      "syntactic": _fraction(*totals["syntactic"]),
      "sections": sections,
      "num_questions": num_answered,
      "num_skipped": num_skipped,
      "oov_ratio": 100.0 * num_skipped / num_lines,
  }


def _gensim_similarity(vectors, row_a, row_b):
  """gensim's `similarity`: dot(unitvec(a), unitvec(b)) with float64 BLAS normalisation."""

  def unitvec(vec):
    veclen = scipy_blas.dnrm2(vec)
    return scipy_blas.dscal(1.0 / veclen, vec).astype(vec.dtype) if veclen > 0.0 else vec

  return np.dot(unitvec(vectors.vectors[row_a]), unitvec(vectors.vectors[row_b]))


def evaluate_word_pairs(vectors, path, restrict_vocab=300000, case_insensitive=True):
  """Correlation of cosines with human similarity scores, exactly gensim's `evaluate_word_pairs`.

  Each line is "word1<TAB>word2<TAB>score"; lines starting with '#' and malformed lines are
  ignored; pairs with a word outside the first restrict_vocab words are skipped.

  Args:
    vectors: WordVectors, most frequent words first.
    path: str or epath.Path of a tab-separated file such as wordsim353.tsv (UTF-8).
    restrict_vocab: int or None, only the first restrict_vocab words are looked up.
    case_insensitive: bool, compare upper-cased words.

  Returns:
    dict with "pearson" and "spearman": float correlation coefficients in [-1, 1];
    "oov_ratio": float, skipped pairs in percent of all pairs; "num_pairs": int, pairs
    scored; "num_skipped": int, pairs skipped for OOV words.

  Raises:
    ValueError: no pair could be scored.

  Source: Finkelstein et al. 2002 (WordSim-353); gensim 4.4.0.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top

  path = epath.Path(path)
  ok_vocab, key_fn = _ok_vocab(vectors, restrict_vocab, case_insensitive)
  similarity_gold, similarity_model = [], []
  num_skipped = 0
  with path.open("r", encoding="utf-8") as f:
    for line in f:
      if not line or line.startswith("#"):
        continue
      try:
        word_a, word_b, score = [key_fn(field) for field in line.split("\t")]
        score = float(score)
      except (ValueError, TypeError):
        continue
      if word_a not in ok_vocab or word_b not in ok_vocab:
        num_skipped += 1
        continue
      similarity_gold.append(score)
      similarity_model.append(_gensim_similarity(vectors, ok_vocab[word_a], ok_vocab[word_b]))
  if not similarity_gold:
    raise ValueError(f"no pair of {path} could be scored ({num_skipped} pairs out of "
                     "vocabulary); pass a 'word1<TAB>word2<TAB>score' file that shares words "
                     "with the vectors.")
  spearman = stats.spearmanr(similarity_gold, similarity_model)
  pearson = stats.pearsonr(similarity_gold, similarity_model)
  return {
      "pearson": float(pearson[0]),
      "spearman": float(spearman[0]),
      "oov_ratio": 100.0 * num_skipped / (len(similarity_gold) + num_skipped),
      "num_pairs": len(similarity_gold),
      "num_skipped": num_skipped,
  }


# ----------------------------------------------------------------------------------------
# Figure.


def plot_country_capital_pca(vectors, pairs=DEFAULT_COUNTRY_CAPITALS, path=None):
  """2-D PCA of country and capital vectors with country -> capital arrows.

  The figure of Mikolov et al. 2013b (Fig. 2): if the model has learnt the relation, the
  arrows are roughly parallel. PCA is fitted on the unit vectors of the plotted words only;
  the first axis is oriented so that capitals lie to the right of their countries on average.
  Built with `matplotlib.figure.Figure` (no pyplot, no global backend change).

  Args:
    vectors: WordVectors.
    pairs: sequence of (country, capital) str pairs; pairs with a word out of vocabulary are
      skipped with one warning.
    path: str or epath.Path or None; if given the figure is written there atomically, in the
      format of its suffix (png when none).

  Returns:
    matplotlib.figure.Figure with one axes holding one arrow patch per plotted pair and one
    text label per plotted word.

  Raises:
    ValueError: fewer than two pairs are in the vocabulary.

  Source: Mikolov, Sutskever, Chen, Corrado & Dean 2013b, Fig. 2.
  """
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  pairs = [tuple(pair) for pair in pairs]
  kept = [pair for pair in pairs if pair[0] in vectors and pair[1] in vectors]
  missing = [pair for pair in pairs if pair not in kept]
  if missing:
    warnings.warn(f"plot_country_capital_pca: skipping {len(missing)} of {len(pairs)} pairs with "
                  f"out-of-vocabulary words: {', '.join('/'.join(p) for p in missing)}",
                  stacklevel=2)
  if len(kept) < 2:
    raise ValueError(f"only {len(kept)} of the {len(pairs)} country/capital pairs are in the "
                     "vocabulary; pass pairs of frequent words or train on a larger corpus.")
  rows = [vectors.row(word) for pair in kept for word in pair]
  vectors_NxD = vectors.vectors[rows].astype(np.float64)
  unit_NxD = vectors_NxD / np.maximum(np.linalg.norm(vectors_NxD, axis=1, keepdims=True), 1e-30)
  centered = unit_NxD - unit_NxD.mean(axis=0)
  _, _, vt = np.linalg.svd(centered, full_matrices=False)
  xy_Nx2 = centered @ vt[:2].T
  if xy_Nx2.shape[1] < 2:
    xy_Nx2 = np.pad(xy_Nx2, ((0, 0), (0, 2 - xy_Nx2.shape[1])))
  countries, capitals = xy_Nx2[0::2], xy_Nx2[1::2]
  if np.mean(capitals[:, 0] - countries[:, 0]) < 0:
    countries, capitals = countries * [-1, 1], capitals * [-1, 1]

  fig = Figure(figsize=(7, 5.5), layout="constrained")
  ax = fig.subplots()
  ax.scatter(countries[:, 0], countries[:, 1], color="tab:blue", label="country")
  ax.scatter(capitals[:, 0], capitals[:, 1], color="tab:red", label="capital")
  for (country, capital), start, end in zip(kept, countries, capitals):
    ax.add_patch(patches.FancyArrowPatch(tuple(start), tuple(end), arrowstyle="-|>",
                                         mutation_scale=12, color="0.5", shrinkA=5, shrinkB=5))
    ax.text(start[0], start[1], f" {country}", va="center", ha="left", fontsize=9)
    ax.text(end[0], end[1], f" {capital}", va="center", ha="left", fontsize=9)
  ax.margins(x=0.15, y=0.08)  # room for the labels right of the points
  ax.set_xlabel("principal component 1")
  ax.set_ylabel("principal component 2")
  ax.set_title("Countries and capitals, 2-D PCA of word vectors")
  ax.legend(loc="best")
  if path is not None:
    path = epath.Path(path)
    fmt = path.suffix[1:].lower() or "png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=150)
    _atomic_write(path, lambda f: f.write(buffer.getvalue()))
  return fig

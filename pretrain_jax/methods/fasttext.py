"""fastText: a word is the bag of its character n-grams (plus itself); its vector is their mean.

Bojanowski, Grave, Joulin & Mikolov (2017), "Enriching word vectors with subword
information", Sec. 3.2: the word w is written ``<w>`` and represented by its character
n-grams for n in [``min_n``, ``max_n``] (3-6), each hashed with 32-bit FNV-1a into one of
``bucket`` rows (the hash fastText and gensim use, so our bucket of an n-gram equals
``gensim.models.fasttext.ft_ngram_hashes``), plus the word's own row; the slides' e[w] =
mean of these rows. The input vector of a word never seen in training is the mean of its
n-gram rows, so every word gets a vector. Training is skip-gram (or cbow) with negative
sampling exactly as ``methods.skipgram``, the gradient reaching every subword row.
One difference from fastText, for speed on CPUs: a word keeps at most ``max_subwords``
rows (its own, then its n-grams shortest first; 40 covers every n-gram of words up to
11 letters); 0 keeps them all.

The BPE variant (``fasttext.subwords = "bpe"``): e[w] = the mean of the embeddings of the
word's BPE pieces (Sennrich et al. 2016), the pieces of a byte-level BPE tokenizer
(``data.tokenizers.train_bpe``) trained on the train split; it is saved as
``tokenizer.json`` in the workdir and its sha256 is part of the checkpoints' fingerprint.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

from etils import epath
import ml_collections
import numpy as np

from pretrain_jax.data import tokenizers
from pretrain_jax.data.vocab import Vocabulary
from pretrain_jax.methods import word_vectors

NAME = "fasttext"
SUPERVISION = "none (next words)"

SUBWORD_KINDS = ("ngrams", "bpe")

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def fnv1a_32(data: bytes) -> int:
  """32-bit FNV-1a hash of ``data`` (Fowler, Noll & Vo), as in fastText's ``Dictionary::hash``.

  Args:
    data: bytes.

  Returns:
    An int in [0, 2**32).
  """
  value = _FNV_OFFSET
  for byte in data:
    signed = byte | 0xFFFFFF00 if byte >= 0x80 else byte  # fastText XORs the sign-extended int8.
    value = ((value ^ signed) * _FNV_PRIME) & 0xFFFFFFFF
  return value


def char_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
  """The character n-grams of ``<word>`` for n = min_n … max_n, shortest first.

  Args:
    word: a word (without the boundary marks).
    min_n: shortest n-gram, ``>= 1``.
    max_n: longest n-gram, ``>= min_n``.

  Returns:
    The n-grams in order of n, then of position (fastText and gensim list them by
    position, then n: the same bag), repeats kept,
    e.g. ``char_ngrams("king", 3, 4) == ["<ki", "kin", "ing", "ng>", "<kin", "king", "ing>"]``.

  Raises:
    ValueError: ``min_n < 1`` or ``max_n < min_n``.
  """
  if min_n < 1 or max_n < min_n:
    raise ValueError(f"min_n={min_n}, max_n={max_n}: need 1 <= min_n <= max_n.")
  marked = f"<{word}>"
  return [marked[i:i + n] for n in range(min_n, max_n + 1) for i in range(len(marked) - n + 1)]


def ngram_buckets(word: str, min_n: int, max_n: int, bucket: int) -> list[int]:
  """Bucket of each n-gram of ``word``: FNV-1a of its UTF-8 bytes modulo ``bucket``.

  Args:
    word: a word.
    min_n: shortest n-gram.
    max_n: longest n-gram.
    bucket: number of hash buckets, ``>= 1``.

  Returns:
    One int in [0, bucket) per n-gram of ``char_ngrams(word, min_n, max_n)``.
  """
  return [fnv1a_32(gram.encode("utf-8")) % bucket for gram in char_ngrams(word, min_n, max_n)]


class Subwords(NamedTuple):
  """The input rows of the vocabulary's words (``subwords_fn``'s result).

  Attributes:
    table: int32 ``[V, M]``, word ``i``'s input rows, padded with -1.
    num_inputs: rows of the input table.
    word_fn: the rows of any word (seen in training or not).
    tokenizer: the BPE tokenizer of the ``"bpe"`` variant, else None.
  """

  table: np.ndarray
  num_inputs: int
  word_fn: Callable[[str], list[int]]
  tokenizer: tokenizers.BpeTokenizer | None = None


def _pad(rows: Sequence[Sequence[int]]) -> np.ndarray:
  width = max(len(r) for r in rows)
  table = np.full((len(rows), width), -1, np.int32)
  for i, r in enumerate(rows):
    table[i, :len(r)] = r
  return table


def subwords_fn(vocab: Vocabulary, sentences: Sequence[Sequence[str]],
                config: ml_collections.ConfigDict) -> Subwords:
  """The input rows of every vocabulary word, and of any word (``prepare_data``'s hook).

  Args:
    vocab: the train split's vocabulary.
    sentences: the train split's sentences (the BPE tokenizer is trained on their text).
    config: the run's config (``fasttext`` section: ``subwords``, ``min_n``, ``max_n``,
      ``bucket``, ``max_subwords``, ``bpe_vocab_size``).

  Returns:
    ``Subwords``: n-grams: row ``i`` (the word) then ``V + bucket`` per n-gram,
    ``num_inputs = V + bucket``; BPE: ``piece_id`` per piece, ``num_inputs`` = the
    tokenizer's vocabulary. ``word_fn(word)`` gives the rows of any word (unseen words:
    the n-grams or pieces alone).

  Raises:
    ValueError: an unknown ``fasttext.subwords``.
  """
  section = config.fasttext
  if section.subwords == "ngrams":
    num_words = len(vocab)
    index = vocab.index()

    def word_fn(word: str) -> list[int]:
      rows = [num_words + b for b in ngram_buckets(word, section.min_n, section.max_n, section.bucket)]
      rows = ([index[word]] if word in index else []) + rows
      return rows[:section.max_subwords] if section.max_subwords else rows

    return Subwords(_pad([word_fn(w) for w in vocab.words]), num_words + section.bucket, word_fn)
  if section.subwords == "bpe":
    tokenizer = tokenizers.train_bpe((" ".join(s) for s in sentences),
                                     vocab_size=section.bpe_vocab_size, lowercase=True)

    return Subwords(_pad([tokenizer.piece_ids(w) for w in vocab.words]), tokenizer.vocab_size,
                    tokenizer.piece_ids, tokenizer)
  raise ValueError(f"fasttext.subwords={section.subwords!r}: use one of {SUBWORD_KINDS}.")


def prepare_data(config: ml_collections.ConfigDict, info: Any, data: dict[str, Any]):
  """``word_vectors.prepare_data`` with ``subwords_fn``: vocabulary, chunks and subwords."""
  return word_vectors.prepare_data(config, info, data, subwords_fn=subwords_fn)


make_mesh = word_vectors.make_mesh
make_model = word_vectors.make_model
make_optimizer = word_vectors.make_optimizer


def make_train_step(run):
  """The sparse SGD step over subword rows, architecture ``fasttext.architecture``."""
  return word_vectors.make_train_step(run, run.config.fasttext.architecture)


def oov_vector(table: np.ndarray, info: word_vectors.WordVectorData, word: str) -> np.ndarray:
  """The vector of any word, seen in training or not: the mean of its subword rows.

  Args:
    table: float32 ``[num_inputs, D]``, the trained input embedding.
    info: the run's ``WordVectorData``.
    word: any lower-case word.

  Returns:
    float32 ``[D]``.

  Raises:
    ValueError: the word has no subword (an empty string).
  """
  rows = info.subword_fn(word)
  if not rows:
    raise ValueError(f"{word!r} has no subwords: pass a non-empty word.")
  return np.asarray(table, np.float32)[rows].mean(0)


def evaluate(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """``word_vectors.score_trained_vectors``, plus ``oov_neighbors``: for each of
  ``eval.oov_words`` (words never seen in training) the 5 vocabulary words nearest to its
  ``oov_vector`` by cosine; the BPE variant also saves its tokenizer as ``tokenizer.json``."""
  del data
  info = trained.run.info
  table, vectors = word_vectors.trained_vectors(trained)
  results = word_vectors.score_trained_vectors(trained, vectors, config, workdir)
  if info.tokenizer is not None:
    info.tokenizer.save(epath.Path(workdir) / "tokenizer.json")
  unit = vectors.normalized()
  oov = {}
  for word in config.eval.oov_words:
    vector = oov_vector(table, info, word)
    cosines = unit @ (vector / max(np.linalg.norm(vector), 1e-12))
    oov[word] = {"in_vocabulary": word in vectors,
                 "nearest": [vectors.words[i] for i in np.argsort(-cosines)[:5]]}
  results["oov_neighbors"] = oov
  return results

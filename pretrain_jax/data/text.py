"""English text corpora as documents, their split by document, and the word-vector test files.

The corpus ``english`` (``../shared/DATA.md``, "English text") is fetched once with
``python -m pretrain_jax.data.fetch english`` into ``DATA_DIR/english/documents.jsonl``:
one JSON object per line, ``{"source": ..., "title": ..., "text": ...}``, in the order of
``CORPUS_SOURCES`` and, within a source, in the source's own order. A document is

* ``brown``: one file of the Brown corpus (ca01 ... cr09; title "GENRE FILE", e.g.
  "news ca01"), tags stripped, one sentence per line;
* ``sotu``: one State of the Union address (title "YEAR NAME");
* ``moby_dick``: one chapter of Moby-Dick (title "Moby-Dick, CHAPTER n. Name.");
* ``austen``: one chapter of one of Jane Austen's six novels (title "NOVEL, [VOLUME v,]
  CHAPTER c"); a novel's front matter opens its first chapter;
* ``bible``: one book of the World English Bible, footnotes dropped;
* ``wiki``: one Wikipedia article, wiki markup and reference sections stripped;
* ``lee``: one line (one news story) of the Lee background corpus.

Chapters rather than whole books are the documents of the novels so that a split by
document puts part of every novel into each split (six Austen documents could not be
split 90/5/5). ``word_benchmarks`` holds the word-vector test files ``questions-words.txt``
and ``wordsim353.tsv`` as shipped in the gensim wheel.

Every load checks the cached file against the sha256 that the fetch wrote into
``manifest.json`` (the hash is computed once per process per file version, as in
``datasets``). numpy only: nothing here imports JAX.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from pretrain_jax.data import datasets, tokenizers

# The corpora inside ``english``, in the order of the cache file.
CORPUS_SOURCES = ("brown", "sotu", "moby_dick", "austen", "bible", "wiki", "lee")
# Text datasets made of documents (``load_documents`` reads these).
CORPORA = ("english",)
DOCUMENTS_FILE = "documents.jsonl"
# The dataset holding the word-vector evaluation files, and those files.
BENCHMARKS = "word_benchmarks"
BENCHMARK_FILES = ("questions-words.txt", "wordsim353.tsv")
# The splits ``split_documents`` returns.
TEXT_SPLITS = ("train", "val", "test")


class Document(NamedTuple):
  """One document of a text corpus.

  Attributes:
    source: which corpus it comes from, one of ``CORPUS_SOURCES``.
    title: a short human-readable name (file, address, chapter, book or article).
    text: the plain text, lines separated by ``\\n``; tokenise it with
      ``tokenizers.sentences`` / ``tokenizers.words``.
  """

  source: str
  title: str
  text: str


@dataclasses.dataclass(frozen=True)
class TextInfo:
  """What a run loaded from a text corpus.

  Attributes:
    name: the corpus, e.g. "english".
    sources: the corpora included, in ``CORPUS_SOURCES`` order.
    num_documents: split name -> number of documents in that split.
    num_words: split name -> number of word tokens (``tokenizers.words``) in that split.
  """

  name: str
  sources: tuple[str, ...]
  num_documents: dict[str, int]
  num_words: dict[str, int]


def count_words(documents: Iterable[Document]) -> int:
  """Returns the number of word tokens (``tokenizers.words``) in some documents."""
  return sum(len(tokenizers.words(document.text)) for document in documents)


def _refetch(name: str, data_dir: str | os.PathLike | None) -> str:
  return (f"re-fetch it (this replaces the damaged copy): "
          f"{datasets.fetch_command(name, data_dir)}")


def _read_verified(name: str, file_name: str, data_dir: str | os.PathLike | None) -> bytes:
  """Reads one cache file of a text dataset after checking it against its manifest sha256.

  Args:
    name: the dataset ("english" or "word_benchmarks").
    file_name: the file inside ``DATA_DIR/name``.
    data_dir: cache directory; None for the default.

  Returns:
    The file's bytes, read from the same open file that was hashed.

  Raises:
    FileNotFoundError: the dataset was not fetched (no manifest); names the fetch command.
    ValueError: the file changed since it was fetched, is missing or unreadable, or the
      manifest is damaged; one line naming the file and the re-fetch command.
  """
  path = datasets.dataset_dir(name, data_dir)
  if not (path / datasets.MANIFEST).is_file():
    raise FileNotFoundError(f"Dataset {name!r} is not in the cache {path}; fetch it with: "
                            f"{datasets.fetch_command(name, data_dir)}")
  refetch = _refetch(name, data_dir)
  expected = datasets._manifest_sha256(path, (file_name,), refetch)[file_name]
  file_path = path / file_name
  try:
    with open(file_path, "rb") as f:
      if datasets._cache_file_sha256(f, file_path) == expected:
        f.seek(0)
        return f.read()
  except OSError as error:
    raise ValueError(f"Cache file {file_path} is unreadable ({datasets._one_line(error)}); "
                     f"{refetch}") from error
  raise ValueError(f"Cache file {file_path} does not match its sha256 in {datasets.MANIFEST} "
                   f"(changed since it was fetched); {refetch}")


def _check_sources(sources: Sequence[str]) -> tuple[str, ...]:
  unknown = [source for source in sources if source not in CORPUS_SOURCES]
  if unknown:
    raise ValueError(f"Unknown corpus source(s) {unknown}; use some of {CORPUS_SOURCES} "
                     "(or none for all).")
  return tuple(source for source in CORPUS_SOURCES if source in sources) or CORPUS_SOURCES


def load_documents(name: str = "english", sources: Sequence[str] = (),
                   data_dir: str | os.PathLike | None = None) -> list[Document]:
  """Loads the documents of a fetched text corpus, verified against its manifest.

  Args:
    name: the corpus, one of ``CORPORA``.
    sources: the corpora to keep, a subset of ``CORPUS_SOURCES``; empty for all.
    data_dir: cache directory; None for ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``.

  Returns:
    The documents of the chosen sources, in cache order (``CORPUS_SOURCES`` order, then
    each source's own order).

  Raises:
    ValueError: unknown corpus or source, or a damaged cache (one line naming the file
      and the command that re-fetches it).
    FileNotFoundError: the corpus was not fetched; the message gives the fetch command.
  """
  if name not in CORPORA:
    raise ValueError(f"{name!r} is not a text corpus; use one of {CORPORA}.")
  wanted = set(_check_sources(sources))
  data = _read_verified(name, DOCUMENTS_FILE, data_dir)
  documents = []
  for line_number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
    try:
      record = json.loads(line)
      document = Document(record["source"], record["title"], record["text"])
    except (ValueError, KeyError, TypeError) as error:
      file_path = datasets.dataset_dir(name, data_dir) / DOCUMENTS_FILE
      raise ValueError(f"Cache file {file_path} line {line_number} is not a document "
                       f"({datasets._one_line(error)}); {_refetch(name, data_dir)}") from error
    if document.source in wanted:
      documents.append(document)
  return documents


def _split_rank(seed: int, source: str, index: int) -> bytes:
  """A document's place in its source's shuffled order: sha256 of (seed, source, index)."""
  return hashlib.sha256(f"{seed}\0{source}\0{index}".encode()).digest()


def split_documents(documents: Sequence[Document], *, val_fraction: float,
                    test_fraction: float, seed: int) -> dict[str, list[Document]]:
  """Splits documents into train / val / test by document, stratified per source.

  Each source's documents are ranked by sha256 of ``(seed, source, index in the source)``
  (the same in every process, Python and numpy version); the first
  ``round(test_fraction * n)`` of the ranking are test, the next ``round(val_fraction * n)``
  validation, the rest train. So each source contributes its share to every split, a
  document never appears in two splits, and the splits cover all documents.

  Args:
    documents: the corpus, e.g. from ``load_documents``.
    val_fraction: share of each source's documents for validation, in [0, 1).
    test_fraction: share of each source's documents for the test split, in [0, 1);
      ``val_fraction + test_fraction < 1``.
    seed: non-negative int choosing the split.

  Returns:
    ``{"train", "val", "test"}`` -> lists of documents, grouped by source in the order the
    sources first appear in ``documents``, each source's documents in their input order.

  Raises:
    ValueError: fractions out of range or a negative seed.
  """
  if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in "
                     "[0, 1) with a sum below 1.")
  if seed < 0:
    raise ValueError(f"seed={seed} must be a non-negative int.")
  by_source: dict[str, list[Document]] = {}
  for document in documents:
    by_source.setdefault(document.source, []).append(document)
  splits: dict[str, list[Document]] = {split: [] for split in TEXT_SPLITS}
  for source, group in by_source.items():
    count = len(group)
    num_test = int(test_fraction * count + 0.5)
    num_val = min(int(val_fraction * count + 0.5), count - num_test)
    ranked = sorted(range(count), key=lambda i: _split_rank(seed, source, i))
    split_of = {}
    for position, i in enumerate(ranked):
      split_of[i] = ("test" if position < num_test else
                     "val" if position < num_test + num_val else "train")
    for i, document in enumerate(group):
      splits[split_of[i]].append(document)
  return splits


def _field(config_data: Any, name: str, default: Any) -> Any:
  """``config_data.name`` if the config has that field, else ``default``."""
  try:
    return getattr(config_data, name)
  except (AttributeError, KeyError):
    return default


def load_for_config(config: Any) -> tuple[TextInfo, dict[str, list[Document]]]:
  """The loop's entry to a text corpus: the run's documents, split by document.

  Args:
    config: a run's config; reads ``data.name`` ("english"), ``data.sources`` (tuple of
      ``CORPUS_SOURCES``; empty for all), ``data.val_fraction``, ``data.test_fraction``,
      ``data.max_train_words`` (0 = all; otherwise train keeps its documents, in split
      order, until it holds at least that many words: for smoke runs) and ``seed``.

  Returns:
    ``(info, splits)``: a ``TextInfo`` with the document and word counts of each split, and
    ``{"train", "val", "test"}`` -> list of ``Document``.

  Raises:
    As ``load_documents`` and ``split_documents``; ValueError for a negative
    ``max_train_words``.
  """
  data = config.data
  sources = _check_sources(tuple(_field(data, "sources", ()) or ()))
  documents = load_documents(data.name, sources)
  splits = split_documents(documents, val_fraction=data.val_fraction,
                           test_fraction=data.test_fraction, seed=config.seed)
  max_train_words = int(_field(data, "max_train_words", 0) or 0)
  if max_train_words < 0:
    raise ValueError(f"data.max_train_words={max_train_words} must be >= 0 (0 = all).")
  num_words = {split: 0 for split in TEXT_SPLITS}
  for split in ("val", "test"):
    num_words[split] = count_words(splits[split])
  kept = []
  for document in splits["train"]:
    if max_train_words and num_words["train"] >= max_train_words:
      break
    kept.append(document)
    num_words["train"] += len(tokenizers.words(document.text))
  splits["train"] = kept
  info = TextInfo(name=data.name, sources=sources,
                  num_documents={split: len(splits[split]) for split in TEXT_SPLITS},
                  num_words=num_words)
  return info, splits


def benchmark_path(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The path of a fetched word-vector evaluation file, checked against its manifest sha256.

  Args:
    name: "questions-words.txt" (Mikolov et al. 2013 analogies, "Efficient Estimation of
      Word Representations in Vector Space", arXiv:1301.3781) or "wordsim353.tsv"
      (Finkelstein et al. 2002, "Placing Search in Context: The Concept Revisited").
    data_dir: cache directory; None for the default.

  Returns:
    ``DATA_DIR/word_benchmarks/name``, unchanged since the fetch.

  Raises:
    ValueError: unknown file name, or the file changed since it was fetched (the message
      gives the re-fetch command).
    FileNotFoundError: ``word_benchmarks`` was not fetched (the message gives the command).
  """
  if name not in BENCHMARK_FILES:
    raise ValueError(f"Unknown benchmark file {name!r}; use one of {BENCHMARK_FILES}.")
  _read_verified(BENCHMARKS, name, data_dir)
  return datasets.dataset_dir(BENCHMARKS, data_dir) / name

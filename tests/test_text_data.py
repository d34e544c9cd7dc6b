"""Tests of the English text corpora: the per-corpus readers on generated fixtures, the R
lazy-load reader, markup stripping, the split by document, the verified cache and its errors.

Nothing here downloads; the one test of the real cache skips when it was not fetched.
"""

import bz2
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import types
import zipfile
import zlib

import numpy as np
import pytest

from pretrain_jax.data import corpora, datasets, fetch, text, tokenizers


def _tarball(path, members):
  """Writes a .tgz holding ``{name: bytes}``."""
  with tarfile.open(path, "w:gz") as archive:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      archive.addfile(info, io.BytesIO(data))
  return path


# ------------------------------------------------------------------------------------ Brown


def test_brown_tags_are_stripped_one_sentence_per_line():
  tagged = ("\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` 1/2/cd ''/'' ./.\n\n"
            "\tIt/pps ran/vbd ./.\n\n")
  assert corpora.strip_brown_tags(tagged) == "The Fulton jury said `` 1/2 '' .\nIt ran ."


def test_brown_documents_one_per_file_titled_by_genre(tmp_path):
  tarball = _tarball(tmp_path / "brown.tgz", {
      "package/cb02": b"\n\tA/at dog/nn ./.\n",
      "package/ca01": b"\n\tThe/at jury/nn ./.\n\n\tIt/pps ran/vbd ./.\n",
      "package/cats.txt": b"ca01 news\ncb02 editorial\n",
      "package/README": b"not a corpus file",
  })
  documents = corpora.brown_documents(tarball)
  assert documents == [text.Document("brown", "news ca01", "The jury .\nIt ran ."),
                       text.Document("brown", "editorial cb02", "A dog .")]


# ----------------------------------------------------------------- Moby-Dick and addresses


MOBY = ("CHAPTER 1. Loomings.\n\nCall me Ishmael.\n\n"
        "CHAPTER 2. The Carpet-Bag.\n\n"
        "BOOK I. (Folio), CHAPTER I. (Sperm Whale).—Not a heading.\n"
        "More text.\n\nCHAPTER 3. The Spouter-Inn.\n\nEntering.\n")


def test_moby_dick_splits_at_chapter_heading_lines_only():
  chapters = corpora.split_moby_dick(MOBY)
  assert [title for title, _ in chapters] == [
      "CHAPTER 1. Loomings.", "CHAPTER 2. The Carpet-Bag.", "CHAPTER 3. The Spouter-Inn."]
  assert chapters[0][1] == "Call me Ishmael."
  assert chapters[1][1].startswith("BOOK I. (Folio), CHAPTER I.") and "More text." in chapters[1][1]
  # Nothing is lost or duplicated: the words of the chapters are the words of the book.
  words = sum((tokenizers.words(f"{title} {body}") for title, body in chapters), [])
  assert words == tokenizers.words(MOBY)
  # Text before the first heading opens the first chapter.
  assert corpora.split_moby_dick("Preface.\n" + MOBY)[0][1].startswith("Preface.")


def test_stdlib_tarball_gives_addresses_and_chapters(tmp_path):
  address = lambda year, name: json.dumps(  # noqa: E731
      {"year": year, "name": name, "party": "none", "text": f" Address of {year}. "}).encode()
  tarball = _tarball(tmp_path / "stdlib.tgz", {
      "package/sotu/data/1791_george_washington_n.json": address(1791, "George Washington"),
      "package/sotu/data/1790_george_washington_n.json": address(1790, "George Washington"),
      "package/sotu/data/1790_george_washington_n.txt": b"ignored",
      "package/moby-dick/data/data.txt": MOBY.encode(),
      "package/moby-dick/data/chapter_1.txt": b"ignored",
  })
  sotu, moby = corpora.stdlib_documents(tarball)
  assert sotu == [text.Document("sotu", "1790 George Washington", "Address of 1790."),
                  text.Document("sotu", "1791 George Washington", "Address of 1791.")]
  assert [document.title for document in moby][0] == "Moby-Dick, CHAPTER 1. Loomings."
  assert len(moby) == 3 and {document.source for document in moby} == {"moby_dick"}


# ----------------------------------------------------------------- R lazy-load (janeaustenr)


def _r_serialize(lines, tmp_path):
  """XDR serialization of an R character vector (what R's serialize() writes), via rdata."""
  import rdata

  path = tmp_path / "object.rds"
  rdata.write_rds(path, np.array(lines), compression=None)
  return path.read_bytes()


def _compress_like_r(data, compressed, kind=b""):
  """R_compress1/2/3 (R src/main/connections.c): 4-byte big-endian length, type, payload."""
  header = len(data).to_bytes(4, "big")
  if compressed == 1:
    return header + zlib.compress(data)
  payload = {b"0": data, b"1": zlib.compress(data), b"2": bz2.compress(data),
             b"Z": lzma.compress(data, format=lzma.FORMAT_RAW,
                                 filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])}[kind]
  return header + kind + payload


@pytest.mark.parametrize("compressed,kind", [(1, b""), (2, b"2"), (2, b"0"), (3, b"Z"),
                                             (3, b"2"), (3, b"1"), (3, b"0")])
def test_r_lazyload_database_roundtrip(tmp_path, compressed, kind):
  import rdata

  novels = {"emma": ["EMMA", "", "VOLUME I", "", "CHAPTER I", "", "Emma Woodhouse, handsome,",
                     "clever, and rich.", "", "CHAPTER II", "", "Mr. Weston was a native.",
                     "VOLUME II", "CHAPTER I", "Miss Bates."],
            "persuasion": ["Persuasion", "", "Chapter 1", "Sir Walter Elliot."]}
  rdb, variables = b"", {}
  for name, lines in novels.items():
    blob = _compress_like_r(_r_serialize(lines, tmp_path), compressed, kind)
    variables[name] = np.array([len(rdb), len(blob)], np.int32)
    rdb += blob
  (tmp_path / "Rdata.rdb").write_bytes(rdb)
  flag = np.array([True]) if compressed == 1 else np.array([compressed], np.int32)
  rdata.write_rds(tmp_path / "Rdata.rdx", {"variables": variables, "references": {},
                                           "compressed": flag}, compression="gzip")
  objects = corpora.read_r_lazyload(tmp_path / "Rdata.rdx", tmp_path / "Rdata.rdb")
  assert {name: list(value) for name, value in objects.items()} == novels


def test_r_lazyload_rejects_corrupt_objects():
  data = b"X\n" + bytes(range(40))
  blob = _compress_like_r(data, 3, b"Z")
  assert corpora.decompress_r_lazyload(blob, 3) == data
  with pytest.raises(ValueError, match="header says"):
    corpora.decompress_r_lazyload((len(data) + 1).to_bytes(4, "big") + blob[4:], 3)
  with pytest.raises(ValueError, match="type byte"):
    corpora.decompress_r_lazyload(blob[:4] + b"X" + blob[5:], 3)
  with pytest.raises(ValueError, match="corrupt"):
    corpora.decompress_r_lazyload(_compress_like_r(data, 1)[:-3], 1)


def test_austen_chapters_with_volumes_and_front_matter():
  lines = ["EMMA", "", "By Jane Austen", "VOLUME I", "", "CHAPTER I", "", "Emma Woodhouse.",
           "", "CHAPTER II", "Mr. Weston.", "VOLUME II", "CHAPTER I", "Miss Bates."]
  chapters = corpora.split_austen_chapters("Emma", lines)
  assert [title for title, _ in chapters] == [
      "Emma, VOLUME I, CHAPTER I", "Emma, VOLUME I, CHAPTER II", "Emma, VOLUME II, CHAPTER I"]
  assert chapters[0][1] == "EMMA\n\nBy Jane Austen\n\n\nEmma Woodhouse."
  assert chapters[1][1] == "Mr. Weston." and chapters[2][1] == "Miss Bates."
  assert corpora.split_austen_chapters("Lady Susan", ["No", "chapters."]) == [
      ("Lady Susan", "No\nchapters.")]


# ------------------------------------------------------------------------------ Bible (OSIS)


def test_osis_markup_is_stripped_and_notes_dropped():
  verse = ('<div type="x-milestone" subType="x-preverse" sID="pv1"/><title canonical="true" '
           'type="psalm">A Psalm by David.</title> <l level="1" sID="gen1"/>'
           '<w lemma="strong:H0430">'
           'In</w> <w lemma="strong:H0853">the</w> <w>beginning</w>, <w>God</w><note placement='
           '"foot"><reference type="annotateRef">1:1 </reference>The Hebrew word rendered '
           '<rdg type="alternate">God</rdg> is Elohim.</note><w>created</w> <q who="Jesus">'
           '“light &amp; dark.”</q><l eID="gen1" level="1"/>')
  assert corpora.strip_osis(verse) == ("A Psalm by David. In the beginning, God created "
                                     "“light & dark.”")


# ----------------------------------------------------------------------------- Wikipedia


WIKITEXT = """{{Infobox person|name=Ada {{nowrap|Lovelace}}|image=x.jpg}}
'''Augusta Ada King''' was an [[England|English]] [[mathematician]].<ref name="a">{{cite book|title=Secret}}</ref> She wrote notes.<ref>Hidden note</ref>
[[File:Ada.jpg|thumb|Portrait of [[Ada Lovelace|Ada]] in 1840]]
<!-- a comment -->
== Early life ==
She was born in [[London]] &ndash; in 1815.<br />See [http://example.org the site] and http://example.org/x.
{| class="wikitable"
|-
| Table cell || {{flag|UK}}
|}
* A ''list'' item
== References ==
{{Reflist}}
* Cited book
[[Category:Mathematicians]]
[[de:Ada Lovelace]]
"""


def test_wiki_markup_is_stripped():
  plain = corpora.strip_wiki_markup(WIKITEXT)
  assert plain.split("\n") == [
      "Augusta Ada King was an English mathematician. She wrote notes.",
      "Early life",
      "She was born in London – in 1815.",
      "See the site and .",
      "A list item",
  ]


def test_wiki_documents_keep_articles_only():
  def page(title, ns, body, redirect=False):
    return (f"<page><title>{title}</title><ns>{ns}</ns><id>1</id>"
            + ('<redirect title="X" />' if redirect else "")
            + f"<revision><text xml:space=\"preserve\">{body}</text></revision></page>")

  xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">'
         + page("Ada Lovelace", 0, "'''Ada''' was a [[mathematician]]. &lt;ref&gt;x&lt;/ref&gt;")
         + page("AccessibleComputing", 0, "#REDIRECT [[Computer accessibility]]", redirect=True)
         + page("Talk:Ada", 1, "Talk page.")
         + page("Empty", 0, "{{stub}}")
         + "</mediawiki>")
  documents = corpora.wiki_documents(bz2.compress(xml.encode()))
  assert documents == [text.Document("wiki", "Ada Lovelace", "Ada was a mathematician.")]


def test_lee_one_document_per_latin1_line():
  corpus = "Caf\xe9 opens.\n\nSecond story.\n".encode("latin-1")
  assert corpora.lee_documents(corpus) == [text.Document("lee", "line 1", "Caf\xe9 opens."),
                                         text.Document("lee", "line 3", "Second story.")]


# --------------------------------------------------------------------------------- splits


def _corpus():
  sizes = {"brown": 40, "sotu": 20, "austen": 100, "lee": 3}
  return [text.Document(source, f"{source} {i}", f"word{'s' * (i % 3)} of {source} number {i}.")
          for source, size in sizes.items() for i in range(size)]


def test_split_is_disjoint_covering_stratified_and_seeded():
  documents = _corpus()
  splits = text.split_documents(documents, val_fraction=0.1, test_fraction=0.2, seed=3)
  titles = {split: [document.title for document in docs] for split, docs in splits.items()}
  all_titles = sum(titles.values(), [])
  assert sorted(all_titles) == sorted(document.title for document in documents)  # Covers, disjoint.
  for source, size in {"brown": 40, "sotu": 20, "austen": 100, "lee": 3}.items():
    counts = {split: sum(document.source == source for document in docs)
              for split, docs in splits.items()}
    assert counts["test"] == int(0.2 * size + 0.5) and counts["val"] == int(0.1 * size + 0.5)
  # Each split keeps the input order within a source.
  order = {document.title: i for i, document in enumerate(documents)}
  for docs in splits.values():
    assert [order[d.title] for d in docs] == sorted(order[d.title] for d in docs)
  again = text.split_documents(list(documents), val_fraction=0.1, test_fraction=0.2, seed=3)
  assert again == splits
  other = text.split_documents(documents, val_fraction=0.1, test_fraction=0.2, seed=4)
  assert other["test"] != splits["test"]
  with pytest.raises(ValueError, match="sum below 1"):
    text.split_documents(documents, val_fraction=0.5, test_fraction=0.5, seed=0)


def test_split_is_the_same_in_another_process():
  code = ("from pretrain_jax.data import text\n"
          "docs = [text.Document(s, f'{s} {i}', 'x')\n"
          "        for s in ('brown', 'lee') for i in range(30)]\n"
          "splits = text.split_documents(docs, val_fraction=0.1, test_fraction=0.2, seed=7)\n"
          "print([d.title for d in splits['test']])")
  env = dict(os.environ, PYTHONHASHSEED="12345")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
  documents = [text.Document(s, f"{s} {i}", "x") for s in ("brown", "lee") for i in range(30)]
  splits = text.split_documents(documents, val_fraction=0.1, test_fraction=0.2, seed=7)
  assert result.stdout.strip() == str([document.title for document in splits["test"]])


# ------------------------------------------------------------------ the verified text cache


@pytest.fixture
def fake_english(monkeypatch, tmp_path):
  """An ``english`` recipe whose download writes one generated package file."""
  documents = _corpus()
  package = json.dumps([document._asdict() for document in documents]).encode()
  calls = []

  def download(work_dir, log):
    calls.append(work_dir)
    (work_dir / "corpus.json").write_bytes(package)
    return {"corpus.json": work_dir / "corpus.json"}

  def write(files, work_dir, staging, log):
    records = json.loads(files["corpus.json"].read_bytes())
    fetch.write_documents((text.Document(**record) for record in records),
                          staging / text.DOCUMENTS_FILE)
    return {}

  recipe = fetch.Recipe(download, {"corpus.json": hashlib.sha256(package).hexdigest()}, write,
                        (text.DOCUMENTS_FILE,))
  real_recipes = fetch._recipes
  monkeypatch.setattr(fetch, "_recipes", lambda: {**real_recipes(), "english": recipe})
  data_dir = tmp_path / "cache"
  return {"documents": documents, "calls": calls, "data_dir": data_dir,
          "path": data_dir / "english" / text.DOCUMENTS_FILE}


def test_text_fetch_is_verified_idempotent_and_loads(fake_english):
  data_dir, messages = fake_english["data_dir"], []
  fetch.fetch("english", data_dir, log=messages.append)
  assert text.load_documents("english", data_dir=data_dir) == fake_english["documents"]
  assert text.load_documents(sources=("lee", "sotu"), data_dir=data_dir) == [
      d for d in fake_english["documents"] if d.source in ("sotu", "lee")]
  assert sorted(p.name for p in data_dir.iterdir()) == ["english"]  # No temporary directories.
  fetch.fetch("english", data_dir, log=messages.append)
  assert len(fake_english["calls"]) == 1 and "already" in messages[-1]
  with pytest.raises(ValueError, match="Unknown corpus source"):
    text.load_documents(sources=("gutenberg",), data_dir=data_dir)


def test_changed_byte_is_detected_named_and_repaired(fake_english):
  data_dir, path = fake_english["data_dir"], fake_english["path"]
  fetch.fetch("english", data_dir, log=lambda line: None)
  text.load_documents(data_dir=data_dir)  # Memoises the hash of the good file.
  data = bytearray(path.read_bytes())
  data[100] ^= 0x01
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError) as error:
    text.load_documents(data_dir=data_dir)
  message = str(error.value)
  assert "\n" not in message and str(path) in message
  assert message.endswith(f"python -m pretrain_jax.data.fetch english --data_dir {data_dir}")
  messages = []
  fetch.fetch("english", data_dir, log=messages.append)
  assert "does not match its sha256" in messages[0] and len(fake_english["calls"]) == 2
  assert text.load_documents(data_dir=data_dir) == fake_english["documents"]


def test_not_fetched_errors_name_the_command(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    text.load_documents(data_dir=tmp_path)
  assert str(error.value).endswith(
      f"python -m pretrain_jax.data.fetch english --data_dir {tmp_path}")
  with pytest.raises(FileNotFoundError, match="fetch word_benchmarks --data_dir"):
    text.benchmark_path("wordsim353.tsv", data_dir=tmp_path)
  with pytest.raises(ValueError, match="Unknown benchmark file"):
    text.benchmark_path("simlex999.txt", data_dir=tmp_path)


def test_word_benchmarks_are_cached_byte_for_byte(monkeypatch, tmp_path):
  members = {"questions-words.txt": b": capital\nAthens Greece Baghdad Iraq\n",
             "wordsim353.tsv": b"# header\nlove\tsex\t6.77\n"}
  wheel = tmp_path / fetch.GENSIM_WHEEL
  with zipfile.ZipFile(wheel, "w") as archive:
    for name, data in members.items():
      archive.writestr(f"{fetch.GENSIM_TEST_DATA}/{name}", data)
  monkeypatch.setattr(fetch, "download_gensim_wheel",
                      lambda work_dir, log: {fetch.GENSIM_WHEEL: wheel})
  monkeypatch.setattr(fetch, "GENSIM_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
  data_dir = tmp_path / "cache"
  fetch.fetch("word_benchmarks", data_dir, log=lambda line: None)
  for name, data in members.items():
    assert text.benchmark_path(name, data_dir=data_dir).read_bytes() == data
  manifest = json.loads((data_dir / "word_benchmarks" / datasets.MANIFEST).read_text())
  assert manifest["counts"] == {"analogy_sections": 1, "analogy_questions": 1, "wordsim_pairs": 1}


def test_load_for_config_dispatch_and_max_train_words(fake_english, monkeypatch):
  fetch.fetch("english", fake_english["data_dir"], log=lambda line: None)
  monkeypatch.setenv(datasets.DATA_DIR_ENV, str(fake_english["data_dir"]))
  data = types.SimpleNamespace(name="english", sources=("brown", "austen"), val_fraction=0.1,
                               test_fraction=0.1, max_train_words=0)
  config = types.SimpleNamespace(data=data, seed=0)
  info, splits = datasets.load_for_config(config)
  assert info.sources == ("brown", "austen") and info.num_documents["train"] == 112
  assert info.num_words == {split: text.count_words(docs) for split, docs in splits.items()}
  data.max_train_words = 50
  info, small = datasets.load_for_config(config)
  words = [len(tokenizers.words(d.text)) for d in small["train"]]
  assert sum(words[:-1]) < 50 <= sum(words) and small["train"] == splits["train"][:len(words)]
  assert small["val"] == splits["val"] and small["test"] == splits["test"]


def test_text_names_are_known_to_the_cli_and_not_images(capsys):
  assert fetch.main(["cifar10"]) == 1
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "english, word_benchmarks" in err
  with pytest.raises(ValueError, match="text dataset"):
    datasets.get_info("english")


def test_apt_version_unknown_says_to_update(monkeypatch, tmp_path):
  def fake_run(command, cwd):
    return subprocess.CompletedProcess(
        command, 100, "", "E: Version '426.0-1' for 'sword-text-web' was not found")

  monkeypatch.setattr(fetch, "_run", fake_run)
  monkeypatch.setattr(fetch.os, "geteuid", lambda: 1000)
  with pytest.raises(fetch.FetchError, match=r"sword-text-web=426.0-1: run `sudo apt-get update`"):
    fetch._apt_download(fetch.BIBLE_APT, tmp_path, log=lambda line: None)


# -------------------------------------------------------------------- the real cache, if any


def test_real_english_cache_matches_its_manifest_and_data_md():
  if not (datasets.dataset_dir("english") / datasets.MANIFEST).is_file():
    pytest.skip("english not fetched; run: python -m pretrain_jax.data.fetch english")
  documents = text.load_documents()
  manifest = json.loads((datasets.dataset_dir("english") / datasets.MANIFEST).read_text())
  counts = {source: sum(d.source == source for d in documents) for source in text.CORPUS_SOURCES}
  assert counts == manifest["num_documents"]
  assert counts["brown"] == 500 and counts["sotu"] == 233 and counts["moby_dick"] == 135
  words = manifest["num_words"]
  # ../shared/DATA.md: about 4.73M words without the Wikipedia sample, 5.4M with it.
  assert 4.5e6 < sum(words.values()) - words["wiki"] < 5.0e6
  assert 5.0e6 < sum(words.values()) < 5.6e6

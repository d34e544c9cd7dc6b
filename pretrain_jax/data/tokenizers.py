"""Tokenizers: the word tokenizer of the word-vector methods and, below it, byte-level BPE.

Word tokenizer (what ``methods/{cbow,skipgram,fasttext,ppmi}`` and the gensim reference
see): lower-case the text, split it into sentences at every ``.``, ``!`` or ``?``, and
keep the tokens matching ``WORD_PATTERN`` = ``[a-z]+(?:'[a-z]+)?`` in each sentence:
runs of ASCII letters with at most one inner apostrophe (``don't``, ``king's``). Digits,
hyphens and other punctuation separate tokens and are dropped; letters with accents are
dropped (the corpora are English). This is the tokenisation under which
``../shared/DATA.md`` measured gensim (skip-gram 12.1% / 0.458 on 4.73M words).

BPE (``train_bpe`` -> ``BpeTokenizer``): byte-level byte-pair encoding through HF
``tokenizers`` (imported on first use), trained on the train split's documents. It serves
the fastText-BPE word vectors (``pieces(word)``: a word's vector is the mean of its pieces'
embeddings) and the GPT/BERT methods (``encode``/``decode`` of running text, special
tokens ``[PAD] [UNK] [CLS] [SEP] [MASK] <|endoftext|>`` with ids 0..5). A checkpoint
records ``sha256`` and is resumed only with the same tokenizer (``load_or_refuse``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Iterable, Iterator, Sequence
import uuid

from etils import epath

# A word: lower-case ASCII letters, optionally one apostrophe followed by more letters.
WORD_PATTERN = r"[a-z]+(?:'[a-z]+)?"
# Sentence boundaries: a full stop, exclamation or question mark ends a sentence.
SENTENCE_END_PATTERN = r"[.!?]"

_WORD_RE = re.compile(WORD_PATTERN)
_SENTENCE_END_RE = re.compile(SENTENCE_END_PATTERN)


def words(text: str) -> list[str]:
  """The word tokens of ``text`` in order, lower-cased (``WORD_PATTERN``), ignoring sentences.

  Args:
    text: any string.

  Returns:
    The list of tokens, e.g. ``words("The King's men!") == ["the", "king's", "men"]``.
  """
  return _WORD_RE.findall(text.lower())


def sentences(text: str) -> list[list[str]]:
  """Splits ``text`` into sentences at ``.!?`` and each sentence into ``words``.

  Args:
    text: one document.

  Returns:
    The non-empty sentences of the document, each a list of word tokens,
    e.g. ``sentences("Call me Ishmael. Some years ago") == [["call", "me", "ishmael"],
    ["some", "years", "ago"]]``.
  """
  out = []
  for piece in _SENTENCE_END_RE.split(text.lower()):
    tokens = _WORD_RE.findall(piece)
    if tokens:
      out.append(tokens)
  return out


def corpus_sentences(documents: Iterable[str]) -> Iterator[list[str]]:
  """Every sentence of every document, in order (``sentences`` applied to each).

  Args:
    documents: document texts.

  Yields:
    One list of word tokens per sentence.
  """
  for text in documents:
    yield from sentences(text)


# ---------------------------------------------------------------------------------------
# Byte-pair encoding (BPE): subword tokenizer of the fastText-BPE word vectors and,
# later, of the GPT and BERT methods.
# ---------------------------------------------------------------------------------------

# Special tokens, in the order that fixes their ids 0..5 (the trainer puts them first).
PAD = "[PAD]"  # Padding of short sequences in a batch.
UNK = "[UNK]"  # Kept for BERT-style vocabularies; byte-level BPE never emits it.
CLS = "[CLS]"  # Sequence summary token (BERT).
SEP = "[SEP]"  # Segment separator (BERT).
MASK = "[MASK]"  # Masked-LM input token (BERT).
END_OF_TEXT = "<|endoftext|>"  # Document separator (GPT-2).
DEFAULT_SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK, END_OF_TEXT)

# The byte-level image of a space (U+0120 "Ġ"): how a token marks that it starts a word.
WORD_BOUNDARY = "\u0120"
# Base symbols of byte-level BPE: one per byte value, all in the vocabulary from the start.
BYTE_ALPHABET_SIZE = 256


class TokenizerMismatchError(ValueError):
  """A checkpoint was trained with a different tokenizer than the one being loaded."""


def _hf():
  """The HF ``tokenizers`` package, imported on first use (the word tokenizer needs none)."""
  try:
    import tokenizers as hf_tokenizers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("BPE needs HF tokenizers: pip install 'tokenizers>=0.20'") from e
  return hf_tokenizers


class BpeTokenizer:
  """Byte-level BPE: an HF ``tokenizers.Tokenizer`` with a ``models.BPE`` model.

  Pipeline: NFC normalisation (plus lower-casing when trained with ``lowercase=True``),
  the GPT-2 byte-level pre-tokenizer (text -> UTF-8 bytes, each byte shown as one
  printable character, split by GPT-2's regex into words, numbers and punctuation runs,
  a space kept at the front of the word it precedes as ``WORD_BOUNDARY`` "Ġ"), BPE merges
  inside each pre-token, and the byte-level decoder (characters -> bytes -> UTF-8).

  Why byte-level rather than ``Metaspace`` (SentencePiece's "▁"): the base alphabet is
  the 256 byte values, so every string encodes without ``[UNK]`` and
  ``decode(encode(text)) == normalize(text)`` exactly, newlines, runs of spaces, tabs,
  accents and emoji included. GPT needs this for generation and for likelihoods (a
  held-out character absent from the training split would otherwise become ``[UNK]`` and
  change the bits being scored); ``Metaspace`` also drops a leading space on decode and
  keeps punctuation glued to words ("world." one pre-token), while the GPT-2 regex splits
  it off, so word pieces do not spend merges on "word." / "word," variants. The cost: at
  least 256 + len(special tokens) entries, and the piece strings of non-ASCII text are
  byte images ("é" is "Ã©"); ``decode`` turns them back into text.

  No ``add_prefix_space``: the first word of a text carries no "Ġ", as in GPT-2, so the
  round trip adds nothing. ``pieces(word)`` encodes ``" " + word``, the form a word takes
  inside running text (which is how the trainer saw nearly every occurrence).

  Source: Sennrich, Haddow & Birch (2016), "Neural Machine Translation of Rare Words with
  Subword Units", Algorithm 1 (merges learned by repeatedly joining the most frequent
  adjacent symbol pair); byte-level variant from Radford et al. (2019), "Language Models
  are Unsupervised Multitask Learners" (GPT-2), Sec. 2.2.

  Args:
    tokenizer: a trained HF ``tokenizers.Tokenizer`` whose model is ``BPE``; build one with
      ``train_bpe`` or ``BpeTokenizer.load``.

  Raises:
    ValueError: the tokenizer's model is not BPE.
  """

  def __init__(self, tokenizer):
    model_type = json.loads(tokenizer.to_str())["model"]["type"]
    if model_type != "BPE":
      raise ValueError(f"BpeTokenizer wraps a BPE model, got {model_type}; "
                       "train one with train_bpe")
    self._tokenizer = tokenizer

  # ----- Encoding and decoding -------------------------------------------------------

  def normalize(self, text: str) -> str:
    """``text`` after the normaliser (NFC, and lower-casing if trained so): what decode returns."""
    return self._tokenizer.normalizer.normalize_str(text)

  def encode(self, text: str) -> list[int]:
    """Token ids of ``text``; no special tokens are added (the model adds its own).

    Args:
      text: running text. Special-token strings inside it (``"[MASK]"``) become their ids.

    Returns:
      The ids, each in ``[0, vocab_size)``; ``decode`` of them is ``normalize(text)``.
    """
    return self._tokenizer.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
    """``[encode(t) for t in texts]``, computed in parallel by HF tokenizers."""
    encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [e.ids for e in encodings]

  def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
    """The text of token ids (inverse of ``encode`` up to normalisation).

    Args:
      ids: token ids, a list or a 1-D integer array.
      skip_special_tokens: drop ``[PAD]``, ``[CLS]``, ... instead of writing them out.

    Returns:
      The decoded string; bytes of a split multi-byte character come back as U+FFFD.

    Raises:
      ValueError: an id outside ``[0, vocab_size)``.
    """
    ids = [int(i) for i in ids]
    size = self.vocab_size
    bad = [i for i in ids if not 0 <= i < size]
    if bad:
      raise ValueError(f"token id {bad[0]} is outside [0, {size}) of this tokenizer; "
                       "decode with the tokenizer that produced the ids")
    return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

  def pieces(self, word: str) -> list[str]:
    """The BPE pieces of one word as it occurs inside running text (fastText-BPE variant).

    The word is encoded as ``" " + word``, so the first piece starts with
    ``WORD_BOUNDARY`` ("Ġ"); for ASCII words ``"".join(pieces(w)) == "Ġ" + normalize(w)``.
    The GPT-2 regex splits contractions: no piece of ``"king's"`` spans the apostrophe.

    Args:
      word: one word, non-empty, without whitespace (e.g. an item of ``words(text)``).

    Returns:
      The piece strings in order (byte images for non-ASCII characters).

    Raises:
      ValueError: ``word`` is empty or contains whitespace.
    """
    return self._tokenizer.encode(self._as_word(word), add_special_tokens=False).tokens

  def piece_ids(self, word: str) -> list[int]:
    """The ids of ``pieces(word)`` (rows of the embedding table averaged into a word vector)."""
    return self.encode(self._as_word(word))

  @staticmethod
  def _as_word(word: str) -> str:
    if not word or any(c.isspace() for c in word):
      raise ValueError(f"pieces takes one word without whitespace, got {word!r}; "
                       "split the text with words() first")
    return " " + word

  # ----- Vocabulary ------------------------------------------------------------------

  @property
  def vocab_size(self) -> int:
    """Number of ids: special tokens + 256 byte symbols + one per distinct merge result."""
    return self._tokenizer.get_vocab_size(with_added_tokens=True)

  def token_to_id(self, token: str) -> int:
    """The id of a token string (a piece such as ``"Ġthe"`` or a special such as ``"[MASK]"``).

    Raises:
      KeyError: the token is not in the vocabulary.
    """
    token_id = self._tokenizer.token_to_id(token)
    if token_id is None:
      raise KeyError(f"token {token!r} is not in this BPE vocabulary; use pieces() or encode() "
                     "for arbitrary text")
    return token_id

  def id_to_token(self, token_id: int) -> str:
    """The token string of an id.

    Raises:
      IndexError: ``token_id`` is outside ``[0, vocab_size)``.
    """
    token = self._tokenizer.id_to_token(int(token_id))
    if token is None:
      raise IndexError(f"token id {token_id} is outside [0, {self.vocab_size}) of this tokenizer")
    return token

  @property
  def special_tokens(self) -> tuple[str, ...]:
    """The special tokens in id order (``DEFAULT_SPECIAL_TOKENS`` -> ids 0..5)."""
    added = json.loads(self._tokenizer.to_str())["added_tokens"]
    return tuple(t["content"] for t in sorted(added, key=lambda t: t["id"]) if t["special"])

  @property
  def merges(self) -> list[tuple[str, str]]:
    """The learned merges in the order they were learned (= their rank when encoding).

    Returns:
      Pairs ``(left, right)`` of token strings (byte images); merge ``k`` created the
      token ``left + right``.
    """
    merges = json.loads(self._tokenizer.to_str())["model"]["merges"]
    # tokenizers >= 0.20 writes [left, right]; older files hold "left right" strings.
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in merges]

  @property
  def hf_tokenizer(self):
    """The wrapped HF ``tokenizers.Tokenizer`` (do not mutate: ``sha256`` would change)."""
    return self._tokenizer

  # ----- Identity, saving and loading -------------------------------------------------

  def to_json(self) -> str:
    """The HF tokenizer JSON (what ``save`` writes; ``Tokenizer.from_file`` reads it)."""
    return self._tokenizer.to_str(pretty=True)

  @property
  def sha256(self) -> str:
    """Hex SHA-256 of the canonical JSON (keys sorted, no whitespace, UTF-8).

    Equal for equal normaliser, pre-tokenizer, vocabulary, merges, special tokens and
    decoder, whatever the file's formatting. A ``tokenizers`` upgrade that adds fields to
    the JSON changes it too: record it in checkpoints and compare with ``check_matches``.
    """
    canonical = json.dumps(json.loads(self._tokenizer.to_str()), sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

  def check_matches(self, expected_sha256: str, where: str | os.PathLike) -> None:
    """Refuses to go on when a checkpoint was trained with another tokenizer.

    Args:
      expected_sha256: the ``sha256`` recorded with the checkpoint.
      where: the checkpoint (or workdir) it was recorded in, for the message.

    Raises:
      TokenizerMismatchError: the hashes differ.
    """
    if self.sha256 != expected_sha256:
      raise TokenizerMismatchError(
          f"the checkpoint at {os.fspath(where)} was trained with tokenizer sha256 "
          f"{expected_sha256[:12]}..., this tokenizer is {self.sha256[:12]}...; load the "
          "tokenizer.json saved with that checkpoint, or train in a fresh workdir")

  def save(self, path: str | os.PathLike) -> epath.Path:
    """Writes ``to_json()`` to ``path`` atomically (temporary file, then rename).

    A reader never sees a half-written file: the JSON goes to a uniquely named sibling
    first and is renamed into place. Works for local paths and ``gs://`` URLs.

    Args:
      path: the ``.json`` file to write (parents are created).

    Returns:
      ``path`` as an ``epath.Path``.
    """
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.write_text(self.to_json())
    tmp.replace(path)
    return path

  @classmethod
  def load(cls, path: str | os.PathLike) -> BpeTokenizer:
    """Reads a tokenizer written by ``save`` (or any HF BPE ``tokenizer.json``).

    Args:
      path: local path or ``gs://`` URL.

    Returns:
      The tokenizer; its ``sha256`` equals the saved one's.

    Raises:
      FileNotFoundError: nothing at ``path``.
      ValueError: the file is not an HF tokenizer JSON with a BPE model.
    """
    path = epath.Path(path)
    if not path.exists():
      raise FileNotFoundError(f"no tokenizer at {path}; write one with train_bpe(...).save(path)")
    text = path.read_text()
    try:
      tokenizer = _hf().Tokenizer.from_str(text)
    except Exception as e:  # HF raises its own Exception type for bad JSON.
      raise ValueError(f"{path} is not an HF tokenizer JSON ({e}); point to the file written "
                       "by BpeTokenizer.save") from e
    return cls(tokenizer)

  def __repr__(self) -> str:
    return (f"BpeTokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"sha256={self.sha256[:12]})")


def train_bpe(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
              lowercase: bool = False) -> BpeTokenizer:
  """Learns byte-level BPE merges on ``texts`` (Sennrich et al. 2016, Algorithm 1).

  Pass the train split's documents only: merges learned on held-out text would leak it.
  Ids: ``special_tokens`` first (``DEFAULT_SPECIAL_TOKENS`` -> 0..5), then the 256 byte
  symbols in code-point order of their printable images, then one id per merge result in
  the order learned. Each step merges the adjacent pair with the highest count over the
  pre-tokenized word counts; on equal counts HF's trainer takes the pair with the smallest
  ``(id(left), id(right))``. Training stops at ``vocab_size`` ids or when no pair occurs
  ``min_frequency`` times, so the result may be smaller than ``vocab_size``.

  Args:
    texts: documents (strings), streamed once.
    vocab_size: target number of ids, special tokens and the 256 byte symbols included.
    min_frequency: smallest pair count (occurrences in the corpus) that is still merged.
    special_tokens: strings with fixed ids ``0..len-1``; never split, never merged.
    lowercase: lower-case before tokenizing (BERT-uncased / word-vector style); default
      keeps case, as GPT needs.

  Returns:
    The trained tokenizer.

  Raises:
    ValueError: ``texts`` is one string; ``vocab_size`` below 256 + len(special_tokens);
      ``min_frequency`` < 1; empty or repeated special tokens; no non-blank text.
    TypeError: an item of ``texts`` is not a string.
  """
  hf = _hf()
  if isinstance(texts, str):
    raise ValueError("train_bpe takes an iterable of documents, not one string; pass [text]")
  special_tokens = tuple(special_tokens)
  if any(not t for t in special_tokens) or len(set(special_tokens)) != len(special_tokens):
    raise ValueError(f"special tokens must be distinct non-empty strings, got {special_tokens}")
  minimum = BYTE_ALPHABET_SIZE + len(special_tokens)
  if vocab_size < minimum:
    raise ValueError(f"vocab_size={vocab_size} is below the {BYTE_ALPHABET_SIZE} byte symbols + "
                     f"{len(special_tokens)} special tokens; pass vocab_size >= {minimum} "
                     "(a few thousand and up for a real corpus)")
  if min_frequency < 1:
    raise ValueError(f"min_frequency={min_frequency} must be >= 1 (a pair count)")

  norm = [hf.normalizers.NFC()] + ([hf.normalizers.Lowercase()] if lowercase else [])
  tokenizer = hf.Tokenizer(hf.models.BPE())
  tokenizer.normalizer = hf.normalizers.Sequence(norm)
  tokenizer.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tokenizer.decoder = hf.decoders.ByteLevel()
  trainer = hf.trainers.BpeTrainer(
      vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special_tokens),
      initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

  seen = {"documents": 0, "non_blank": 0}

  def checked():
    for text in texts:
      if not isinstance(text, str):
        raise TypeError(f"train_bpe texts must be strings, got {type(text).__name__}; "
                        "decode bytes to str first")
      seen["documents"] += 1
      seen["non_blank"] += bool(text.strip())
      yield text

  tokenizer.train_from_iterator(checked(), trainer)
  if not seen["non_blank"]:
    raise ValueError(f"train_bpe got no text ({seen['documents']} documents, all blank); "
                     "pass the train split's documents")
  return BpeTokenizer(tokenizer)


def load_or_refuse(path: str | os.PathLike, expected_sha256: str, *,
                   where: str | os.PathLike | None = None) -> BpeTokenizer:
  """Loads the tokenizer at ``path`` and checks it is the one a checkpoint was trained with.

  Args:
    path: the saved ``tokenizer.json`` (local or ``gs://``).
    expected_sha256: the ``sha256`` recorded with the checkpoint.
    where: the checkpoint, for the error message (default: ``path``).

  Returns:
    The tokenizer.

  Raises:
    TokenizerMismatchError: its ``sha256`` differs from ``expected_sha256``.
    FileNotFoundError, ValueError: as ``BpeTokenizer.load``.
  """
  tokenizer = BpeTokenizer.load(path)
  tokenizer.check_matches(expected_sha256, where=path if where is None else where)
  return tokenizer

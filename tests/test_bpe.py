"""Byte-level BPE (``pretrain_jax.data.tokenizers.train_bpe`` / ``BpeTokenizer``).

Oracles: the learned merges against an independent plain-Python transcription of
Sennrich et al. (2016), Algorithm 1 (pair counts recounted from the word counts after
every merge), with HF's tie rule; the encoding of words against a plain-Python greedy
application of the merges by rank; the byte images against GPT-2's ``bytes_to_unicode``
table written out here.
"""

import collections
import unicodedata

import pytest

from pretrain_jax.data import tokenizers as tok_lib

pytest.importorskip("tokenizers")

NUM_SPECIAL = len(tok_lib.DEFAULT_SPECIAL_TOKENS)
BASE = tok_lib.BYTE_ALPHABET_SIZE + NUM_SPECIAL  # First id of a merge result: 262.

# Training documents: lower-case ASCII letters separated by single spaces, so the
# pre-tokenization is known without HF (first word of a document bare, the others "Ġ"+word).
TRAIN_DOCS = [
    "the quick brown fox jumps over the lazy dog",
    "the lazy dog sleeps in the sun and the fox runs",
    "a brown dog and a brown fox meet in the green field",
    "the farmer sees the fox and the dog in the field",
    "slow brown cows graze in the green green fields",
    "the sun sets over the fields and the farmer sleeps",
    "foxes and dogs and cows share the farm in the sun",
    "running dogs jump over sleeping foxes near the barn",
] * 3
# Held-out text: unseen words, upper case, digits, punctuation, runs of spaces, tabs,
# newlines, a decomposed accent (e + U+0301), CJK and an emoji.
HELD_OUT = ("The Zebra's 42 quick-ish jumps!\n\n  Caf" + "e\u0301" + " na\u00efve\tfox;  "
            "\u6771\u4eac \U0001F98A end ")


def _byte_image(text):
  """GPT-2's ``bytes_to_unicode`` image of ``text``'s UTF-8 bytes (Radford et al. 2019).

  Printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves;
  the other 68 bytes map to U+0100, U+0101, ... in byte order.
  """
  printable = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
  table, shifted = {}, 0
  for b in range(256):
    if b in printable:
      table[b] = chr(b)
    else:
      table[b] = chr(0x100 + shifted)
      shifted += 1
  return "".join(table[b] for b in text.encode("utf-8"))


def _word_counts(docs):
  """Pre-tokenized word counts, computed without HF (valid for ``[a-z ]`` documents)."""
  counts = collections.Counter()
  for doc in docs:
    assert set(doc) <= set("abcdefghijklmnopqrstuvwxyz "), doc
    first, *rest = doc.split(" ")
    counts[first] += 1
    counts.update(_byte_image(" ") + w for w in rest)
  return counts


def _merge_word(symbols, pair, new):
  """Replaces occurrences of ``pair`` in ``symbols``, left to right, non-overlapping."""
  out, i = [], 0
  while i < len(symbols):
    if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
      out.append(new)
      i += 2
    else:
      out.append(symbols[i])
      i += 1
  return tuple(out)


def _sennrich_merges(word_counts, *, num_new_tokens, min_frequency):
  """Sennrich et al. (2016) Algorithm 1, with HF's tie rule; recounts pairs every step.

  Ties (equal counts) go to the pair with the smallest (id(left), id(right)), where ids
  order single characters by code point before merge results by creation order.

  Returns:
    (merges, number of steps whose top count was tied).
  """
  words = {tuple(w): c for w, c in word_counts.items()}
  created = {}  # merge result -> creation index (a repeated result keeps its first id)

  def symbol_id(s):
    return (0, ord(s)) if len(s) == 1 else (1, created[s])

  merges, ties = [], 0
  while len(created) < num_new_tokens:
    stats = collections.Counter()
    for symbols, count in words.items():
      for pair in zip(symbols, symbols[1:]):
        stats[pair] += count
    if not stats:
      break
    best = min(stats, key=lambda p: (-stats[p], symbol_id(p[0]), symbol_id(p[1])))
    if stats[best] < min_frequency:
      break
    ties += sum(c == stats[best] for c in stats.values()) > 1
    new = best[0] + best[1]
    created.setdefault(new, len(created))
    merges.append(best)
    words = {_merge_word(s, best, new): c for s, c in words.items()}
  return merges, ties


def _apply_merges(word, merges):
  """Segments a pre-token by merging, repeatedly, the adjacent pair of lowest rank."""
  rank = {pair: r for r, pair in enumerate(merges)}
  symbols = tuple(word)
  while len(symbols) > 1:
    pairs = [p for p in zip(symbols, symbols[1:]) if p in rank]
    if not pairs:
      break
    best = min(pairs, key=rank.get)
    symbols = _merge_word(symbols, best, best[0] + best[1])
  return list(symbols)


@pytest.fixture(scope="module")
def tokenizer():
  return tok_lib.train_bpe(TRAIN_DOCS, vocab_size=BASE + 60, min_frequency=2)


def test_pretokenization_oracle_matches_hf(tokenizer):
  # The oracle's word counts assume HF splits [a-z ] text this way; check the assumption.
  assert _byte_image(" ") == tok_lib.WORD_BOUNDARY
  pre = tokenizer.hf_tokenizer.pre_tokenizer
  hf_counts = collections.Counter(w for d in TRAIN_DOCS for w, _ in pre.pre_tokenize_str(d))
  assert hf_counts == _word_counts(TRAIN_DOCS)


def test_merges_follow_sennrich_algorithm_1_with_smallest_id_ties(tokenizer):
  expected, ties = _sennrich_merges(_word_counts(TRAIN_DOCS), num_new_tokens=60, min_frequency=2)
  assert ties >= 5, "the text must exercise the tie rule"
  assert len(expected) == 60
  assert tokenizer.merges == expected
  # Merge results get ids BASE, BASE+1, ... in the order learned (no result repeats here).
  assert [tokenizer.token_to_id(a + b) for a, b in expected] == list(range(BASE, BASE + 60))
  assert tokenizer.vocab_size == BASE + 60


def test_min_frequency_stops_merging():
  # Allow 500 new tokens; the oracle stops at the first pair seen fewer than 4 times.
  tok = tok_lib.train_bpe(TRAIN_DOCS, vocab_size=BASE + 500, min_frequency=4)
  expected, _ = _sennrich_merges(_word_counts(TRAIN_DOCS), num_new_tokens=500, min_frequency=4)
  assert 0 < len(expected) < 500
  assert tok.merges == expected
  assert tok.vocab_size == BASE + len(expected)


@pytest.mark.parametrize("docs", [["ba", "ab", "ba", "ab"], ["ab", "ba", "ab", "ba"]])
def test_tie_goes_to_smallest_ids_not_first_seen(docs):
  # ("a","b") and ("b","a") both occur twice; "a" has the smaller id, whatever comes first.
  tok = tok_lib.train_bpe(docs, vocab_size=BASE + 1, min_frequency=2)
  assert tok.merges == [("a", "b")]


def test_pieces_are_the_greedy_merges_and_concatenate_to_the_word(tokenizer):
  merges = tokenizer.merges
  for word in ["the", "foxes", "fielded", "zebra's", "Brown", "caf\u00e9", "na\u00efve", "dogs"]:
    pieces = tokenizer.pieces(word)
    assert "".join(pieces) == _byte_image(" " + word), word
    assert pieces[0].startswith(tok_lib.WORD_BOUNDARY)
    assert tokenizer.decode(tokenizer.piece_ids(word)) == " " + word
    assert [tokenizer.id_to_token(i) for i in tokenizer.piece_ids(word)] == pieces
    if word.isalpha():  # One pre-token: segmented by the merges alone.
      assert pieces == _apply_merges(_byte_image(" " + word), merges), word
  assert tokenizer.pieces("the") == ["\u0120the"]  # A frequent word is one piece.
  # GPT-2's regex splits "'s" off, so no piece spans the apostrophe.
  assert any(p.startswith("'") for p in tokenizer.pieces("zebra's"))


def test_round_trip_on_held_out_text(tokenizer):
  ids = tokenizer.encode(HELD_OUT)
  assert tokenizer.token_to_id(tok_lib.UNK) not in ids  # Byte-level: nothing is unknown.
  assert all(0 <= i < tokenizer.vocab_size for i in ids)
  expected = unicodedata.normalize("NFC", HELD_OUT)
  assert tokenizer.normalize(HELD_OUT) == expected
  assert tokenizer.decode(ids) == expected
  assert tokenizer.encode_batch([HELD_OUT, "", "the fox"]) == [
      ids, [], tokenizer.encode("the fox")]
  # Merges learned on the train split shorten text of the same kind.
  assert len(tokenizer.encode(TRAIN_DOCS[0])) < len(TRAIN_DOCS[0]) / 2


def test_lowercase_round_trip():
  tok = tok_lib.train_bpe(TRAIN_DOCS, vocab_size=BASE + 20, lowercase=True)
  expected = unicodedata.normalize("NFC", HELD_OUT).lower()
  assert tok.decode(tok.encode(HELD_OUT)) == expected
  assert tok.pieces("THE") == tok.pieces("the")


def test_special_tokens_have_fixed_ids(tokenizer):
  assert tok_lib.DEFAULT_SPECIAL_TOKENS == (
      "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>")
  assert tokenizer.special_tokens == tok_lib.DEFAULT_SPECIAL_TOKENS
  for i, special in enumerate(tok_lib.DEFAULT_SPECIAL_TOKENS):
    assert tokenizer.token_to_id(special) == i
    assert tokenizer.id_to_token(i) == special
  # In running text a special token is one id, never split, and decodes back.
  text = "[CLS] the fox [MASK] the dog [SEP]<|endoftext|>"
  ids = tokenizer.encode(text)
  assert ids[0] == 2 and ids[-2:] == [3, 5] and 4 in ids
  assert tokenizer.decode(ids) == text
  assert tokenizer.decode(ids, skip_special_tokens=True) == " the fox  the dog "
  custom = tok_lib.train_bpe(TRAIN_DOCS, vocab_size=300, special_tokens=("<pad>", "<eos>"))
  assert [custom.token_to_id(t) for t in ("<pad>", "<eos>")] == [0, 1]
  assert custom.token_to_id("a") == 2 + ord("a") - ord("!")  # Bytes by code point after.


def test_save_load_identical(tokenizer, tmp_path):
  path = tmp_path / "run" / "tokenizer.json"
  assert tokenizer.save(path) == path
  tokenizer.save(path)  # Overwriting is atomic too.
  assert sorted(p.name for p in path.parent.iterdir()) == ["tokenizer.json"]  # No tmp left.
  loaded = tok_lib.BpeTokenizer.load(path)
  assert loaded.sha256 == tokenizer.sha256
  assert loaded.merges == tokenizer.merges
  assert loaded.encode_batch([HELD_OUT] + TRAIN_DOCS) == tokenizer.encode_batch(
      [HELD_OUT] + TRAIN_DOCS)
  assert loaded.decode(loaded.encode(HELD_OUT)) == tokenizer.decode(tokenizer.encode(HELD_OUT))
  # The file is plain HF JSON.
  import tokenizers  # pylint: disable=g-import-not-at-top
  assert tokenizers.Tokenizer.from_file(str(path)).encode(HELD_OUT).ids == tokenizer.encode(
      HELD_OUT)
  assert tok_lib.load_or_refuse(path, tokenizer.sha256).sha256 == tokenizer.sha256


def test_training_is_deterministic(tokenizer):
  again = tok_lib.train_bpe(list(reversed(TRAIN_DOCS)), vocab_size=BASE + 60, min_frequency=2)
  assert again.sha256 == tokenizer.sha256


@pytest.mark.parametrize("change", [
    dict(vocab_size=BASE + 59), dict(vocab_size=BASE + 60, lowercase=True),
    dict(vocab_size=BASE + 60, special_tokens=tok_lib.DEFAULT_SPECIAL_TOKENS[::-1])])
def test_changed_tokenizer_is_refused(tokenizer, tmp_path, change):
  other = tok_lib.train_bpe(TRAIN_DOCS, min_frequency=2, **change)
  assert other.sha256 != tokenizer.sha256
  where = "gs://bucket/run/checkpoints/1000"
  with pytest.raises(tok_lib.TokenizerMismatchError) as excinfo:
    other.check_matches(tokenizer.sha256, where)
  message = str(excinfo.value)
  assert isinstance(excinfo.value, ValueError)
  assert "\n" not in message
  assert where in message and tokenizer.sha256[:12] in message and other.sha256[:12] in message
  assert "load the tokenizer.json" in message
  path = other.save(tmp_path / "tokenizer.json")
  with pytest.raises(tok_lib.TokenizerMismatchError, match="checkpoint at .*tokenizer.json"):
    tok_lib.load_or_refuse(path, tokenizer.sha256)
  tokenizer.check_matches(tokenizer.sha256, where)  # The same one passes.


def _one_line_error(exc_type, fn, match):
  with pytest.raises(exc_type, match=match) as excinfo:
    fn()
  assert "\n" not in str(excinfo.value)


def test_bad_input_errors(tokenizer, tmp_path):
  _one_line_error(ValueError, lambda: tok_lib.train_bpe(TRAIN_DOCS, vocab_size=BASE - 1),
                  rf"vocab_size={BASE - 1} .* pass vocab_size >= {BASE}")
  assert tok_lib.train_bpe(TRAIN_DOCS, vocab_size=BASE).merges == []  # The smallest allowed.
  _one_line_error(ValueError, lambda: tok_lib.train_bpe([], vocab_size=300), "no text")
  _one_line_error(ValueError, lambda: tok_lib.train_bpe(["", " \n"], vocab_size=300),
                  r"2 documents, all blank")
  _one_line_error(ValueError, lambda: tok_lib.train_bpe("the fox", vocab_size=300),
                  "not one string")
  _one_line_error(TypeError, lambda: tok_lib.train_bpe([b"the fox"], vocab_size=300), "bytes")
  _one_line_error(ValueError, lambda: tok_lib.train_bpe(TRAIN_DOCS, vocab_size=300,
                                                        min_frequency=0), "min_frequency")
  _one_line_error(ValueError, lambda: tok_lib.train_bpe(TRAIN_DOCS, vocab_size=300,
                                                        special_tokens=("[PAD]", "[PAD]")),
                  "distinct")
  _one_line_error(ValueError, lambda: tokenizer.pieces("two words"), "without whitespace")
  _one_line_error(ValueError, lambda: tokenizer.pieces(""), "without whitespace")
  _one_line_error(ValueError, lambda: tokenizer.decode([0, tokenizer.vocab_size]), "outside")
  _one_line_error(KeyError, lambda: tokenizer.token_to_id("not-a-token"), "not in")
  _one_line_error(IndexError, lambda: tokenizer.id_to_token(10**6), "outside")
  _one_line_error(FileNotFoundError, lambda: tok_lib.BpeTokenizer.load(tmp_path / "none.json"),
                  "no tokenizer")
  (tmp_path / "bad.json").write_text("{not json")
  _one_line_error(ValueError, lambda: tok_lib.BpeTokenizer.load(tmp_path / "bad.json"),
                  "not an HF tokenizer JSON")

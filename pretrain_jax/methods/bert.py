"""BERT: a bidirectional transformer encoder pretrained by masked-LM and next-sentence prediction.

Model. The project's ``nn.transformer.Transformer`` with ``causal=False`` (every position
attends to every real token of its row) and ``num_segments=2`` (segment embeddings: 0 for
``[CLS] A [SEP]``, 1 for ``B [SEP]``), wrapped in ``BertModel`` with BERT's next-sentence
head: a pooler tanh(W h_[CLS] + b) on the final hidden state of ``[CLS]`` and a 2-way
linear layer. The masked-LM logits are the Transformer's own output layer (untied from the
input embedding, and without BERT's extra dense + LayerNorm transform before it).

Data (``prepare_data``). The byte-level BPE tokenizer of ``methods.language_models``
(same config fields, trained on the train split only, so GPT and BERT runs of one config
share it). Each document is cut into sentences (``split_sentences``): paragraphs at blank
lines, whitespace runs collapsed to one space, then a sentence ends after a run of ``.``,
``!`` or ``?`` (closing quotes or brackets included) that is followed by whitespace,
except after a full stop that ends a title abbreviation (``Mr.``, ``Mrs.``, ``Dr.``,
``St.``, ... in ``ABBREVIATIONS``) or a one-letter capital initial (``J.``; not the
pronoun ``I.``). Every sentence is encoded as ``" " + sentence`` so that each word carries
the word-boundary mark it has in running text.

Pairs (``make_pairs``), drawn once per split with ``np.random.default_rng([seed, split
index])`` (static over training): inside each document an anchor i walks through the
sentences. A is the next a sentences, a uniform in 1..``bert.max_sentences`` (at most up
to the document's second-last sentence, stopping early once A holds half the token
budget). With probability ``bert.random_next_fraction`` B is taken from another document
of the same split (uniform over the other documents with text, then a uniform start
sentence; ``is_next = 0``), otherwise B is the sentences that follow A (``is_next = 1``);
B has b sentences, b uniform in 1..``bert.max_sentences`` (within its document, at least
one, stopping early once A + B fill the budget). The anchor then moves past A, so each
sentence but a document's last belongs to exactly one A (before truncation). Each example is ``[CLS]
A [SEP] B [SEP]`` padded with ``[PAD]`` to T = ``model.max_len``. Truncation
(``truncate_pair``), budget T − 3 tokens: while A + B is too long, one token is removed
from the longer segment (B on ties), A losing its first tokens and B its last, so that the
text on both sides of the A|B boundary, which NSP judges, is kept.

Masking (``mask_tokens``), drawn afresh in every ``loss_fn`` call from the step's key, so
every epoch masks differently: in each row, round(``bert.mask_rate`` × n) of its n real,
non-special tokens (at least 1 when n ≥ 1) are chosen uniformly without replacement; a
chosen token becomes ``[MASK]`` with probability ``bert.mask_token_fraction`` (0.8), a
token drawn uniformly from the non-special ids with probability
``bert.random_token_fraction`` (0.1; it may equal the original), and stays unchanged
otherwise; the masked-LM loss is computed at the chosen positions only.

Loss (``loss_fn``), nats: the masked-LM cross-entropy averaged over the batch's chosen
positions plus the next-sentence cross-entropy averaged over its rows (Devlin et al.
2019, Sec. 3.1 and Appendix A.2: the sum of both mean likelihoods).

  python -m pretrain_jax.main --config configs/bert.py:demo --workdir runs/bert

Source: Devlin, Chang, Lee & Toutanova 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding" (Sec. 3.1: masked LM with the 80/10/10 rule and
next-sentence prediction; Fig. 2: token + segment + position embeddings; Appendix A.1-A.2:
the pooler, the sequence-pair sampling and truncation).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, NamedTuple, Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax.data import tokenizers
from pretrain_jax.data.text import TEXT_SPLITS, Document, TextInfo
from pretrain_jax.methods import language_models
from pretrain_jax.methods.language_models import LanguageModelInfo
from pretrain_jax.nn.transformer import Transformer

NAME = "bert"
SUPERVISION = "masked tokens + next sentence (MLM + NSP)"
load_info = language_models.load_info

# Special tokens occupy ids 0 .. NUM_SPECIAL - 1 (tokenizers.DEFAULT_SPECIAL_TOKENS); they
# are never chosen for prediction and never drawn as random replacements.
NUM_SPECIAL = len(tokenizers.DEFAULT_SPECIAL_TOKENS)
# Words whose full stop does not end a sentence (compared in lower case).
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "messrs", "mme", "mlle", "dr", "st", "rev",
                           "hon", "col", "capt", "gen", "lt", "sgt", "esq", "jr", "sr", "vs",
                           "vol", "fig"})
# A candidate sentence end: .!? runs, optional closing quotes/brackets, then whitespace.
_BOUNDARY_RE = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+")
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
_LAST_WORD_RE = re.compile(r"(\w+)$")
_SPACE_BEFORE_MASK_RE = re.compile(r"\s+(?=" + re.escape(tokenizers.MASK) + ")")


# ----- Sentences and sentence pairs ------------------------------------------------------


def split_sentences(text: str) -> list[str]:
  """The sentences of a document (the rule of the module docstring).

  Args:
    text: raw document text.

  Returns:
    Non-empty sentences in order, each stripped, with whitespace runs collapsed to one
    space; e.g. ``split_sentences("Mr. Darcy came.  Was he\\nproud?\\n\\nYes")`` is
    ``["Mr. Darcy came.", "Was he proud?", "Yes"]``.
  """
  sentences = []
  for paragraph in _PARAGRAPH_RE.split(text):
    paragraph = " ".join(paragraph.split()) + " "  # The final sentence also ends in a space.
    start = 0
    for match in _BOUNDARY_RE.finditer(paragraph):
      if match.group().rstrip() == ".":
        word = _LAST_WORD_RE.search(paragraph, 0, match.start())
        if word and (word.group(1).lower() in ABBREVIATIONS
                     or (len(word.group(1)) == 1 and word.group(1).isupper()
                         and word.group(1) != "I")):
          continue
      sentences.append(paragraph[start:match.end()].strip())
      start = match.end()
    sentences.append(paragraph[start:].strip())
  return [s for s in sentences if s]


def encode_sentences(tokenizer: tokenizers.BpeTokenizer, texts: Sequence[str]
                     ) -> list[list[np.ndarray]]:
  """Each document as its sentences' token ids (``" " + sentence`` encoded).

  Args:
    tokenizer: the BPE tokenizer.
    texts: document texts.

  Returns:
    One list per document (empty for a document without sentences) of int32 ``[n_s]``
    arrays, n_s ≥ 1.
  """
  per_document = [split_sentences(text) for text in texts]
  flat = tokenizer.encode_batch([" " + s for sentences in per_document for s in sentences])
  out, position = [], 0
  for sentences in per_document:
    ids = flat[position:position + len(sentences)]
    position += len(sentences)
    out.append([np.asarray(i, np.int32) for i in ids if i])
  return out


class SentencePair(NamedTuple):
  """Where an example's segments come from: sentences [a_start, a_stop) of document
  ``document`` and sentences [b_start, b_stop) of document ``b_document``; ``is_next`` 1
  when B is the text that follows A (then b_document == document, b_start == a_stop)."""

  document: int
  a_start: int
  a_stop: int
  b_document: int
  b_start: int
  b_stop: int
  is_next: int


def make_pairs(documents: Sequence[Sequence[np.ndarray]], rng: np.random.Generator, *,
               max_tokens: int, max_sentences: int, random_next_fraction: float
               ) -> list[SentencePair]:
  """The sentence pairs of a split (the rule of the module docstring).

  Args:
    documents: per document, its sentences' token ids (``encode_sentences``).
    rng: the split's numpy generator (consumed).
    max_tokens: the token budget of A + B (``model.max_len - 3``), ≥ 2.
    max_sentences: most sentences per segment, ≥ 1.
    random_next_fraction: probability in [0, 1] that B comes from another document.

  Returns:
    The pairs, documents in order and anchors in order within each.

  Raises:
    ValueError: fewer than two documents with sentences (no other document for a random
      B), or a bad setting.
  """
  if max_tokens < 2 or max_sentences < 1 or not 0.0 <= random_next_fraction <= 1.0:
    raise ValueError(f"need max_tokens >= 2 (model.max_len >= 5), bert.max_sentences >= 1 and "
                     f"bert.random_next_fraction in [0, 1]; got {max_tokens}, {max_sentences}, "
                     f"{random_next_fraction}.")
  lengths = [[len(s) for s in doc] for doc in documents]
  candidates = [d for d, doc in enumerate(documents) if doc]
  if len(candidates) < 2:
    raise ValueError(f"next-sentence pairs need at least 2 documents with text in a split, got "
                     f"{len(candidates)}; use more data (data.sources, data.val_fraction).")
  pairs = []
  for d, doc_lengths in enumerate(lengths):
    num_sentences, i = len(doc_lengths), 0
    while i < num_sentences - 1:
      a_stop, a_length = i, 0
      limit = min(i + int(rng.integers(1, max_sentences + 1)), num_sentences - 1)
      while a_stop < limit and a_length < max_tokens / 2:
        a_length += doc_lengths[a_stop]
        a_stop += 1
      is_next = int(rng.random() >= random_next_fraction)
      num_b = int(rng.integers(1, max_sentences + 1))
      if is_next:
        b_document, b_start = d, a_stop
      else:
        other = int(rng.integers(len(candidates) - 1))
        b_document = candidates[other + (candidates[other] >= d)]  # Uniform over others.
        b_start = int(rng.integers(len(lengths[b_document])))
      b_stop, b_length = b_start, 0
      limit = min(b_start + num_b, len(lengths[b_document]))
      while b_stop < limit and (b_stop == b_start or a_length + b_length < max_tokens):
        b_length += lengths[b_document][b_stop]
        b_stop += 1
      pairs.append(SentencePair(d, i, a_stop, b_document, b_start, b_stop, is_next))
      i = a_stop
  return pairs


def truncate_pair(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
  """How many tokens of A and B are kept (module docstring: trim the longer, B on ties).

  Args:
    len_a, len_b: segment lengths ≥ 1.
    max_tokens: the budget ≥ 2.

  Returns:
    (kept_a, kept_b), each ≥ 1, summing to min(len_a + len_b, max_tokens); A keeps its
    last ``kept_a`` tokens and B its first ``kept_b``.
  """
  excess = len_a + len_b - max_tokens
  if excess <= 0:
    return len_a, len_b
  # Trim the longer alone down to the shorter's length, then both alternately, B first.
  cut_a = min(excess, len_a - len_b) if len_a > len_b else 0
  cut_b = min(excess, len_b - len_a) if len_b > len_a else 0
  rest = excess - cut_a - cut_b
  return len_a - cut_a - rest // 2, len_b - cut_b - (rest + 1) // 2


def pack_pairs(pairs: Sequence[SentencePair], documents: Sequence[Sequence[np.ndarray]], *,
               max_len: int) -> dict[str, np.ndarray]:
  """The examples ``[CLS] A [SEP] B [SEP] [PAD]...`` of some pairs.

  Args:
    pairs: from ``make_pairs``.
    documents: the sentences' token ids they index.
    max_len: T ≥ 5.

  Returns:
    ``{"tokens": int32 [n, T], "segment_ids": int32 [n, T] (0 for [CLS] A [SEP] and for
    padding, 1 for B [SEP]), "padding_mask": bool [n, T] (True on the la + lb + 3 real
    tokens), "is_next": int32 [n]}``.
  """
  cls = tokenizers.DEFAULT_SPECIAL_TOKENS.index(tokenizers.CLS)
  sep = tokenizers.DEFAULT_SPECIAL_TOKENS.index(tokenizers.SEP)
  pad = tokenizers.DEFAULT_SPECIAL_TOKENS.index(tokenizers.PAD)
  num = len(pairs)
  tokens = np.full((num, max_len), pad, np.int32)
  segment_ids = np.zeros((num, max_len), np.int32)
  padding_mask = np.zeros((num, max_len), bool)
  is_next = np.zeros((num,), np.int32)
  for row, pair in enumerate(pairs):
    a = np.concatenate(documents[pair.document][pair.a_start:pair.a_stop])
    b = np.concatenate(documents[pair.b_document][pair.b_start:pair.b_stop])
    kept_a, kept_b = truncate_pair(len(a), len(b), max_len - 3)
    a, b = a[len(a) - kept_a:], b[:kept_b]
    tokens[row, :kept_a + kept_b + 3] = np.concatenate([[cls], a, [sep], b, [sep]])
    segment_ids[row, kept_a + 2:kept_a + kept_b + 3] = 1
    padding_mask[row, :kept_a + kept_b + 3] = True
    is_next[row] = pair.is_next
  return {"tokens": tokens, "segment_ids": segment_ids, "padding_mask": padding_mask,
          "is_next": is_next}


def prepare_data(config: ml_collections.ConfigDict, info: TextInfo,
                 data: dict[str, list[Document]]) -> tuple[LanguageModelInfo, dict[str, Any]]:
  """The loop's ``prepare_data``: BPE, sentences, static sentence pairs (module docstring).

  Args:
    config: reads ``tokenizer.*``, ``model.max_len``, ``bert.max_sentences``,
      ``bert.random_next_fraction`` and ``seed``.
    info: the corpus's ``TextInfo``.
    data: ``{"train", "val", "test"}`` -> list of ``Document``.

  Returns:
    ``(LanguageModelInfo, splits)``; ``num_tokens[split]`` counts the real tokens of the
    split's examples ([CLS] and [SEP] included), ``num_characters`` its documents'
    characters. Each split is ``pack_pairs``'s dict.

  Raises:
    ValueError: ``model.max_len < 5``, a split with fewer than two documents with text, or
      a bad ``tokenizer`` section (as ``language_models.train_tokenizer``).
  """
  if config.model.max_len < 5:
    raise ValueError(f"model.max_len={config.model.max_len} must be >= 5 "
                     "([CLS] A [SEP] B [SEP] with one token each).")
  tokenizer = language_models.train_tokenizer(config, data["train"])
  splits, num_tokens, num_characters = {}, {}, {}
  for index, split in enumerate(TEXT_SPLITS):
    texts = [doc.text for doc in data[split]]
    documents = encode_sentences(tokenizer, texts)
    pairs = make_pairs(documents, np.random.default_rng([config.seed, index]),
                       max_tokens=config.model.max_len - 3,
                       max_sentences=config.bert.max_sentences,
                       random_next_fraction=config.bert.random_next_fraction)
    splits[split] = pack_pairs(pairs, documents, max_len=config.model.max_len)
    num_tokens[split] = int(splits[split]["padding_mask"].sum())
    num_characters[split] = sum(len(tokenizer.normalize(t)) for t in texts)
  return language_models.make_info(tokenizer, info, num_tokens, num_characters), splits


# ----- Masking and losses ----------------------------------------------------------------


def maskable_positions(tokens: jax.Array, padding_mask: jax.Array) -> jax.Array:
  """Positions that may be chosen for prediction: real tokens with a non-special id.

  Args:
    tokens: int32 ``[B, T]``.
    padding_mask: bool ``[B, T]``, True on real tokens.

  Returns:
    bool ``[B, T]``.
  """
  return padding_mask.astype(bool) & (tokens >= NUM_SPECIAL)


def mask_tokens(key: jax.Array, tokens: jax.Array, maskable: jax.Array, *, vocab_size: int,
                mask_id: int, mask_rate: float = 0.15, mask_token_fraction: float = 0.8,
                random_token_fraction: float = 0.1, num_special: int = NUM_SPECIAL
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """BERT's masking of a batch (Devlin et al. 2019, Sec. 3.1 "Task #1: Masked LM").

  In each row, k = round(mask_rate × n) of its n maskable positions (k ≥ 1 when n ≥ 1;
  round half to even) are chosen uniformly without replacement. Each chosen token is
  replaced, independently, by ``mask_id`` with probability ``mask_token_fraction``, by an
  id drawn uniformly from [num_special, vocab_size) with probability
  ``random_token_fraction`` (possibly the original id), and left unchanged otherwise.

  Args:
    key: PRNG key.
    tokens: int32 ``[B, T]`` token ids.
    maskable: bool ``[B, T]``, True where a token may be chosen (``maskable_positions``).
    vocab_size: V.
    mask_id: the ``[MASK]`` id.
    mask_rate: fraction in (0, 1] of the maskable tokens chosen per row.
    mask_token_fraction: probability that a chosen token becomes ``[MASK]``.
    random_token_fraction: probability that it becomes a random non-special id.
    num_special: ids below it are special, never drawn as random replacements.

  Returns:
    ``(inputs, targets, loss_weights)``: int32 ``[B, T]`` the model's input, int32
    ``[B, T]`` the original tokens, float32 ``[B, T]`` 1 at chosen positions, 0 elsewhere.

  Raises:
    ValueError: a rate outside (0, 1], negative fractions summing to more than 1, or
      ``num_special >= vocab_size``.
  """
  if not 0.0 < mask_rate <= 1.0:
    raise ValueError(f"bert.mask_rate={mask_rate} must be in (0, 1].")
  if (min(mask_token_fraction, random_token_fraction) < 0
      or mask_token_fraction + random_token_fraction > 1.0):
    raise ValueError("bert.mask_token_fraction and bert.random_token_fraction must be >= 0 and "
                     f"sum to at most 1, got {mask_token_fraction} and {random_token_fraction}.")
  if not 0 <= num_special < vocab_size:
    raise ValueError(f"num_special={num_special} must be in [0, vocab_size={vocab_size}).")
  choose_key, action_key, random_key = jax.random.split(key, 3)
  maskable = maskable.astype(bool)
  count_B = maskable.sum(-1)
  num_chosen_B = jnp.where(count_B > 0, jnp.maximum(
      jnp.round(mask_rate * count_B.astype(jnp.float32)), 1.0), 0.0).astype(jnp.int32)
  # Uniform without replacement: maskable positions ranked by independent uniforms (ranks
  # of non-maskable positions come after them); the first k of each row are chosen.
  scores_BxT = jnp.where(maskable, jax.random.uniform(choose_key, tokens.shape), 2.0)
  ranks_BxT = jnp.argsort(jnp.argsort(scores_BxT, axis=-1), axis=-1)
  chosen_BxT = maskable & (ranks_BxT < num_chosen_B[:, None])
  action_BxT = jax.random.uniform(action_key, tokens.shape)
  to_mask = chosen_BxT & (action_BxT < mask_token_fraction)
  to_random = chosen_BxT & ~to_mask & (action_BxT < mask_token_fraction + random_token_fraction)
  random_ids = jax.random.randint(random_key, tokens.shape, num_special, vocab_size, jnp.int32)
  inputs = jnp.where(to_mask, mask_id, jnp.where(to_random, random_ids, tokens))
  return inputs.astype(jnp.int32), tokens.astype(jnp.int32), chosen_BxT.astype(jnp.float32)


def max_predictions(mask_rate: float, num_positions: int) -> int:
  """An upper bound P on the tokens ``mask_tokens`` chooses in a row of T positions
  (ceil rather than round: safe whatever the float32 rounding of rate × count).

  Args:
    mask_rate: ``bert.mask_rate``, in (0, 1].
    num_positions: T, positions per row.

  Returns:
    P = max(1, ceil(mask_rate · T)), an int ≥ 1 (the static width of the gathered heads).
  """
  return max(1, math.ceil(mask_rate * num_positions))


def masked_lm_loss(logits: jax.Array, targets: jax.Array, weights: jax.Array
                   ) -> tuple[jax.Array, jax.Array]:
  """Mean cross-entropy and accuracy at the weighted (chosen) positions.

  Args:
    logits: float ``[..., V]`` masked-LM logits (softmax taken in float32).
    targets: int ``[...]`` original token ids.
    weights: float32 ``[...]``, 1 at chosen positions, 0 elsewhere (other positions'
      logits do not enter the result).

  Returns:
    (loss: float32 scalar, nats per chosen token; accuracy: float32 scalar fraction of
    chosen tokens whose arg-max logit is the target). Both 0 when nothing is chosen.
  """
  nll = language_models.next_token_nll(logits, targets)
  total = jnp.maximum(weights.sum(), 1.0)
  nll = jnp.where(weights > 0, nll, 0.0)  # A non-finite logit elsewhere cannot leak in.
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return (nll * weights).sum() / total, (correct * weights).sum() / total


# ----- Model -----------------------------------------------------------------------------


class BertModel(nnx.Module):
  """The encoder with its masked-LM output and BERT's next-sentence head.

  Attributes:
    transformer: ``Transformer(causal=False, num_segments=...)``; its ``logits_out`` gives
      the masked-LM logits.
    pooler: nnx.Linear D -> D, the pooler W of tanh(W h_[CLS] + b) (Devlin et al. 2019,
      Sec. 3, "C"; Appendix A.2).
    nsp_out: nnx.Linear D -> 2, next-sentence logits (index 1 = B follows A).
  """

  def __init__(self, *, vocab_size, num_layers, num_heads, model_dim, mlp_dim, max_len,
               positional="sinusoidal", num_segments=2, attention_implementation="project",
               rngs):
    """Creates the model (arguments as ``Transformer``; causal=False).

    Raises:
      ValueError: as ``Transformer``.
    """
    self.transformer = Transformer(vocab_size=vocab_size, num_layers=num_layers,
                                   num_heads=num_heads, model_dim=model_dim, mlp_dim=mlp_dim,
                                   max_len=max_len, causal=False, positional=positional,
                                   num_segments=num_segments,
                                   attention_implementation=attention_implementation, rngs=rngs)
    self.pooler = nnx.Linear(model_dim, model_dim, rngs=rngs)
    self.nsp_out = nnx.Linear(model_dim, 2, rngs=rngs)

  def encode(self, tokens, *, segment_ids=None, padding_mask=None):
    """Final hidden states: int32 tokens, segment_ids and bool padding_mask ``[B, T]`` ->
    float ``[B, T, D]`` (``Transformer.encode``)."""
    return self.transformer.encode(tokens, padding_mask=padding_mask, segment_ids=segment_ids)

  def mlm_logits(self, hidden):
    """Masked-LM logits of hidden states: float ``[..., D]`` -> float32 ``[..., V]``."""
    return self.transformer.logits_out(hidden).astype(jnp.float32)

  def nsp_logits(self, hidden):
    """Next-sentence logits from the [CLS] state: float ``[B, T, D]`` -> float32 ``[B, 2]``."""
    return self.nsp_out(jnp.tanh(self.pooler(hidden[:, 0]))).astype(jnp.float32)

  def __call__(self, tokens, *, segment_ids=None, padding_mask=None):
    """(masked-LM logits float32 ``[B, T, V]``, next-sentence logits float32 ``[B, 2]``)."""
    hidden = self.encode(tokens, segment_ids=segment_ids, padding_mask=padding_mask)
    return self.mlm_logits(hidden), self.nsp_logits(hidden)


def make_model(config: ml_collections.ConfigDict, info: LanguageModelInfo, *,
               rngs: nnx.Rngs) -> BertModel:
  """``BertModel`` of ``config.model`` over ``info.vocab_size`` tokens, two segments.

  Raises:
    ValueError: as ``Transformer``.
  """
  model = config.model
  return BertModel(vocab_size=info.vocab_size, num_layers=model.num_layers,
                   num_heads=model.num_heads, model_dim=model.model_dim, mlp_dim=model.mlp_dim,
                   max_len=model.max_len, positional=model.positional, num_segments=2,
                   attention_implementation=model.get("attention", "project"), rngs=rngs)


def mask_batch(key: jax.Array, batch: dict[str, jax.Array], config: ml_collections.ConfigDict,
               vocab_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``mask_tokens`` of a batch with the ``bert`` section's rates.

  Args:
    key: PRNG key.
    batch: ``{"tokens": int32 [B, T], "padding_mask": bool [B, T], ...}``.
    config: reads ``bert.mask_rate``, ``bert.mask_token_fraction``,
      ``bert.random_token_fraction``.
    vocab_size: V.

  Returns:
    As ``mask_tokens``: (inputs int32 [B, T], targets int32 [B, T], weights float32 [B, T]).

  Raises:
    ValueError: as ``mask_tokens``.
  """
  return mask_tokens(key, batch["tokens"],
                     maskable_positions(batch["tokens"], batch["padding_mask"]),
                     vocab_size=vocab_size,
                     mask_id=tokenizers.DEFAULT_SPECIAL_TOKENS.index(tokenizers.MASK),
                     mask_rate=config.bert.mask_rate,
                     mask_token_fraction=config.bert.mask_token_fraction,
                     random_token_fraction=config.bert.random_token_fraction)


def _heads(model: BertModel, inputs, batch, weights, num_predictions):
  """Masked-LM logits at the (at most P) chosen positions of each row, and NSP logits.

  Only the chosen positions go through the V-way output layer: ``lax.top_k`` of the
  weights picks, per row, the P highest-weighted positions, which include every chosen
  one (P ≥ the chosen count), the rest carrying weight 0.

  Returns:
    (logits float32 [B, P, V], positions int32 [B, P], weights float32 [B, P],
    nsp_logits float32 [B, 2]).
  """
  hidden_BxTxD = model.encode(inputs, segment_ids=batch["segment_ids"],
                              padding_mask=batch["padding_mask"])
  weights_BxP, positions_BxP = jax.lax.top_k(weights, num_predictions)
  hidden_BxPxD = jnp.take_along_axis(hidden_BxTxD, positions_BxP[:, :, None], axis=1)
  return (model.mlm_logits(hidden_BxPxD), positions_BxP, weights_BxP,
          model.nsp_logits(hidden_BxTxD))


def loss_fn(model: BertModel, batch: dict[str, jax.Array], key: jax.Array,
            config: ml_collections.ConfigDict):
  """Masked-LM + next-sentence loss of a batch, the masking drawn from ``key``.

  Args:
    model: the ``BertModel``.
    batch: ``{"tokens", "segment_ids": int32 [B, T], "padding_mask": bool [B, T],
      "is_next": int32 [B]}`` (``pack_pairs``).
    key: the step's PRNG key (the masking; a new one every step).
    config: reads the ``bert`` section.

  Returns:
    (loss = mlm_loss + nsp_loss in nats, {"mlm_loss": nats per chosen token, "nsp_loss":
    nats per row, "mlm_accuracy", "nsp_accuracy": fractions}).
  """
  vocab_size = model.transformer.vocab_size
  inputs, targets, weights = mask_batch(key, batch, config, vocab_size)
  num_predictions = max_predictions(config.bert.mask_rate, inputs.shape[1])
  logits, positions, weights, nsp_logits = _heads(model, inputs, batch, weights,
                                                  num_predictions)
  mlm_loss, mlm_accuracy = masked_lm_loss(logits, jnp.take_along_axis(targets, positions, 1),
                                          weights)
  nsp_nll = language_models.next_token_nll(nsp_logits, batch["is_next"])
  nsp_loss = nsp_nll.mean()
  nsp_accuracy = (jnp.argmax(nsp_logits, -1) == batch["is_next"]).astype(jnp.float32).mean()
  return mlm_loss + nsp_loss, {"mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
                               "mlm_accuracy": mlm_accuracy, "nsp_accuracy": nsp_accuracy}


# ----- Evaluation ------------------------------------------------------------------------


def _heldout_fn(model: BertModel, batch: dict[str, jax.Array], config: ml_collections.ConfigDict
                ) -> dict[str, jax.Array]:
  """Per-row held-out scores for ``TrainedModel.map``, each row masked by its own key.

  Args:
    model: the ``BertModel``.
    batch: a held-out batch (``pack_pairs``) plus ``row_key``: uint32 [B, 2], the raw PRNG
      key of each row (``heldout_keys``), so a row's mask depends on the seed, the split
      and the row alone, never on the evaluation batch size.
    config: reads the ``bert`` section.

  Returns:
    ``{"nll": float32 [B] masked-LM NLL summed over the chosen tokens (nats), "count":
    float32 [B] chosen tokens, "correct": float32 [B] arg-max hits, "nsp_nll": float32 [B]
    nats, "nsp_correct": float32 [B], "targets": int32 [B, T], "weights": float32 [B, T]}``.
  """
  vocab_size = model.transformer.vocab_size

  def mask_row(key, row):
    row = jax.tree.map(lambda x: x[None], row)
    return jax.tree.map(lambda x: x[0], mask_batch(key, row, config, vocab_size))

  rows = {k: batch[k] for k in ("tokens", "padding_mask")}
  inputs, targets, weights = jax.vmap(mask_row)(batch["row_key"], rows)
  mlm_logits, nsp_logits = model(inputs, segment_ids=batch["segment_ids"],
                                 padding_mask=batch["padding_mask"])
  nll = jnp.where(weights > 0, language_models.next_token_nll(mlm_logits, targets), 0.0)
  correct = (jnp.argmax(mlm_logits, -1) == targets).astype(jnp.float32)
  nsp_nll = language_models.next_token_nll(nsp_logits, batch["is_next"])
  return {"nll": (nll * weights).sum(-1), "count": weights.sum(-1),
          "correct": (correct * weights).sum(-1), "nsp_nll": nsp_nll,
          "nsp_correct": (jnp.argmax(nsp_logits, -1) == batch["is_next"]).astype(jnp.float32),
          "targets": targets, "weights": weights}


def heldout_keys(seed: int, split_index: int, num_rows: int) -> np.ndarray:
  """uint32 ``[num_rows, 2]``: row r's masking key is ``fold_in(fold_in(PRNGKey(seed),
  split_index), r)`` (raw key data), the fixed masking of a held-out split; row r's key
  does not depend on ``num_rows``."""
  split_key = jax.random.fold_in(jax.random.PRNGKey(seed), split_index)
  return np.asarray(jax.vmap(lambda r: jax.random.fold_in(split_key, r))(
      jnp.arange(num_rows, dtype=jnp.uint32)))


def unigram_nll(train: dict[str, np.ndarray], targets: np.ndarray, weights: np.ndarray,
                vocab_size: int) -> float:
  """Masked-LM NLL of a unigram model: what predicting token frequencies alone scores.

  p(v) = (c_v + 1) / (N + V − NUM_SPECIAL) over the non-special ids, c_v the count of v
  among the N real, non-special tokens of the train examples (add-one smoothing).

  Args:
    train: the train split (``pack_pairs``).
    targets: int32 ``[n, T]`` held-out target ids.
    weights: float32 ``[n, T]``, 1 at the chosen positions.
    vocab_size: V.

  Returns:
    Nats per chosen token (NaN when none is chosen).
  """
  tokens = train["tokens"][maskable_positions(train["tokens"], train["padding_mask"])]
  counts = np.bincount(tokens, minlength=vocab_size)[NUM_SPECIAL:].astype(np.float64) + 1.0
  log_p = np.full((vocab_size,), -np.inf)
  log_p[NUM_SPECIAL:] = np.log(counts / counts.sum())
  chosen = weights > 0
  return float(-log_p[targets[chosen]].mean()) if chosen.any() else float("nan")


def evaluate(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """Held-out masked-LM likelihood and next-sentence accuracy, with one fixed masking
  (``heldout_keys``: drawn from the seed, the split and the row).

  Args:
    trained: the loop's ``TrainedModel``.
    data: the prepared splits (``prepare_data``).
    config: the run's config (``eval.batch_size``, ``bert``, ``seed``).
    workdir: unused (the tokenizer is already there).

  Returns:
    For val and test: ``{split}_mlm_nll`` (nats per chosen token), ``{split}_mlm_perplexity``
    (exp of it), ``{split}_mlm_accuracy``, ``{split}_mlm_unigram_nll`` (the unigram
    baseline on the same chosen tokens), ``{split}_nsp_loss`` (nats per pair),
    ``{split}_nsp_accuracy``, ``{split}_num_examples``; ``train_tokens_per_second``
    (token positions, padding included, per second of training without compilation);
    ``num_parameters``; ``vocab_size``.
  """
  del workdir
  vocab_size = trained.run.info.vocab_size
  results = {}
  heldout_fn = functools.partial(_heldout_fn, config=config)
  for index, split in enumerate(("val", "test")):
    batch = dict(data[split], row_key=heldout_keys(config.seed, index + 1,
                                                   len(data[split]["is_next"])))
    out = trained.map(heldout_fn, batch, batch_size=config.eval.batch_size)
    count = float(np.sum(out["count"]))
    nll = float(np.sum(out["nll"], dtype=np.float64)) / max(count, 1.0)
    results[f"{split}_mlm_nll"] = nll
    results[f"{split}_mlm_perplexity"] = float(math.exp(min(nll, 700.0)))
    results[f"{split}_mlm_accuracy"] = float(np.sum(out["correct"])) / max(count, 1.0)
    results[f"{split}_mlm_unigram_nll"] = unigram_nll(data["train"], out["targets"],
                                                      out["weights"], vocab_size)
    results[f"{split}_nsp_loss"] = float(np.mean(out["nsp_nll"]))
    results[f"{split}_nsp_accuracy"] = float(np.mean(out["nsp_correct"]))
    results[f"{split}_num_examples"] = int(len(out["nsp_nll"]))
  seconds = trained.summary.get("pretrain_seconds") or float("nan")
  positions = trained.run.num_steps * config.train.batch_size * config.model.max_len
  results["train_tokens_per_second"] = positions / seconds
  results["num_parameters"] = int(sum(np.size(x) for x in jax.tree.leaves(trained.state.params)))
  results["vocab_size"] = int(vocab_size)
  return results


def fill_mask(model: BertModel, tokenizer: tokenizers.BpeTokenizer, text: str,
              top_k: int = 5) -> list[list[tuple[str, float]]]:
  """The model's most likely tokens at each ``[MASK]`` of ``text``.

  The text is encoded as in training: whitespace runs collapsed, a leading space, and the
  whitespace right before each ``[MASK]`` removed (a masked token carries its own
  word-boundary space: " cat" rather than "cat"). Each ``[MASK]`` stands for exactly one
  BPE token. The input is ``[CLS] text [SEP]``, all segment 0, no padding.

  Args:
    model: a trained ``BertModel`` (``trained.model()``).
    tokenizer: its tokenizer (``trained.run.info.tokenizer``).
    text: text with one or more ``[MASK]``, e.g. ``"It is a truth universally [MASK]."``.
    top_k: candidates per mask, ≥ 1.

  Returns:
    One list per ``[MASK]``, in order, of ``(decoded token, probability)`` pairs, most
    likely first; probabilities are the softmax over the whole vocabulary, and special
    tokens are never proposed.

  Raises:
    ValueError: no ``[MASK]`` in ``text``, ``top_k < 1``, or the text longer than the
      model's ``max_len`` − 2 tokens.
  """
  if top_k < 1:
    raise ValueError(f"top_k={top_k} must be >= 1.")
  text = _SPACE_BEFORE_MASK_RE.sub("", " ".join(text.split()))
  mask_id = tokenizer.token_to_id(tokenizers.MASK)
  ids = ([tokenizer.token_to_id(tokenizers.CLS)] + tokenizer.encode(" " + text)
         + [tokenizer.token_to_id(tokenizers.SEP)])
  positions = [t for t, i in enumerate(ids) if i == mask_id]
  if not positions:
    raise ValueError(f"no {tokenizers.MASK} in {text!r}; write e.g. 'The [MASK] sat on the mat.'")
  max_len = model.transformer.max_len
  if len(ids) > max_len:
    raise ValueError(f"the text is {len(ids) - 2} tokens, more than the model's max_len - 2 = "
                     f"{max_len - 2}; shorten it.")
  graphdef, state = nnx.split(model)
  probs = np.asarray(_mask_probabilities(graphdef, state, jnp.asarray([ids], jnp.int32),
                                         jnp.asarray(positions, jnp.int32)))
  out = []
  for row in probs:
    best = NUM_SPECIAL + np.argsort(-row[NUM_SPECIAL:], kind="stable")[:top_k]
    out.append([(tokenizer.decode([int(i)]), float(row[i])) for i in best])
  return out


@functools.partial(jax.jit, static_argnums=0)
def _mask_probabilities(graphdef, state, tokens, positions):
  """Softmax over the vocabulary at ``positions`` of one unpadded segment-0 row: int32
  tokens [1, T] and positions [M] -> float32 [M, V] (jitted once per T and M)."""
  model = nnx.merge(graphdef, state)
  hidden = model.encode(tokens, segment_ids=jnp.zeros_like(tokens),
                        padding_mask=jnp.ones(tokens.shape, bool))
  return jax.nn.softmax(model.mlm_logits(hidden[0, positions]), axis=-1)


class Classifier(nnx.Module):
  """BERT fine-tuned on a text classification task: one linear layer on the pooled [CLS]
  state tanh(W h_[CLS] + b) (the pretrained pooler), the whole model trained.

  Source: Devlin et al. 2019, Sec. 3 ("C") and Sec. 4.1 (the only new parameters are the
  classification layer W ∈ R^{K×H}).

  Attributes:
    backbone: the ``BertModel`` of ``make_model`` (its params are the pretrained run's).
    head: ``nnx.Linear`` D -> num_classes.
  """

  def __init__(self, config: ml_collections.ConfigDict, info: LanguageModelInfo,
               num_classes: int, *, rngs: nnx.Rngs):
    self.backbone = make_model(config, info, rngs=rngs)
    self.head = nnx.Linear(config.model.model_dim, num_classes, rngs=rngs)

  def __call__(self, batch: dict[str, jax.Array]) -> jax.Array:
    """``{"tokens": int32 [B, T] ([CLS] text [SEP]), "padding_mask": bool [B, T]}`` ->
    float32 logits [B, C]; every token is in segment 0 (a single sentence)."""
    hidden_BxTxD = self.backbone.encode(batch["tokens"], padding_mask=batch["padding_mask"],
                                        segment_ids=jnp.zeros_like(batch["tokens"]))
    pooled_BxD = jnp.tanh(self.backbone.pooler(hidden_BxTxD[:, 0]))
    return self.head(pooled_BxD).astype(jnp.float32)


def make_classifier(config: ml_collections.ConfigDict, info: LanguageModelInfo, num_classes: int,
                    *, rngs: nnx.Rngs) -> Classifier:
  """The fine-tuning model of a BERT run (``methods.finetune``); ``config`` is the pretrained
  run's, ``num_classes`` C the number of labels (logits float32 [B, C]).

  Raises:
    ValueError: as ``Transformer``.
  """
  return Classifier(config, info, num_classes, rngs=rngs)


def classifier_inputs(info: LanguageModelInfo, texts: list[str], max_len: int) -> dict[str, np.ndarray]:
  """``[CLS] text [SEP]`` rows (``language_models.encode_texts``), each text encoded as in
  pretraining (``" " + text``, so its first word carries the word-boundary mark).

  Args:
    info: the pretrained run's ``LanguageModelInfo`` (its tokenizer).
    texts: N strings.
    max_len: T, tokens per row (≥ 3); a long text keeps its first T − 2 tokens.

  Returns:
    ``{"tokens": int32 [N, T], "padding_mask": bool [N, T]}``.

  Raises:
    ValueError: as ``language_models.encode_texts`` (``max_len`` < 3).
  """
  tokenizer = info.tokenizer
  return language_models.encode_texts(
      tokenizer, [" " + text for text in texts], max_len,
      prefix=[tokenizer.token_to_id(tokenizers.CLS)], suffix=[tokenizer.token_to_id(tokenizers.SEP)])

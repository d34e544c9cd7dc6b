"""What the language models share (GPT; ELMo and BERT build on it): the corpus as BPE
tokens packed into fixed-length sequences, the tokenizer saved beside the checkpoints,
and the likelihood of held-out text in nats per token, perplexity and bits per character.

Data. ``prepare_data`` trains a byte-level BPE tokenizer (``data.tokenizers.train_bpe``,
``tokenizer.vocab_size`` ids) on the train split's documents only, encodes every split,
ends each document with ``<|endoftext|>`` (GPT-2's separator) and concatenates a split's
documents in split order into one token stream. The stream is cut into rows of
``model.max_len + 1`` tokens that overlap by one (row i holds stream[i·T : i·T + T + 1],
T = ``model.max_len``): a model reads the first T tokens of a row and predicts the last
T, so every token of the stream but the first is predicted exactly once, with between 0
and T − 1 tokens of context (the standard non-overlapping evaluation; a sliding window
would give each token more context and a lower perplexity). The tail shorter than a row
is dropped from train and padded (``[PAD]``, weight 0) in val and test so that held-out
text is scored to its last token.

Tokenizer on disk. The run's ``info.workdir_files`` holds ``tokenizer.json``, which the
loop writes into the workdir before step 0 (refusing a workdir whose tokenizer differs);
its sha256 is ``info.fingerprint``, stored with every checkpoint, so a resume, a
``generate`` or a fine-tuning run with another tokenizer is refused.

Units: NLL in nats per predicted token; perplexity = exp(mean NLL per token); bits per
character = total NLL / ln 2 / characters of the scored text.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from pretrain_jax.data import tokenizers
from pretrain_jax.data.text import TEXT_SPLITS, Document, TextInfo

TOKENIZER_FILE = "tokenizer.json"


@dataclasses.dataclass(frozen=True)
class LanguageModelInfo:
  """What a language model's run knows about its data (the loop's ``info``).

  Attributes:
    text: the corpus's ``TextInfo`` (documents and words per split).
    tokenizer: the run's ``BpeTokenizer``.
    vocab_size: V, the tokenizer's number of ids (the model's input and output size).
    num_tokens: split -> tokens in the split's stream (separators included).
    num_characters: split -> characters of the split's documents (for bits/char).
    fingerprint: the tokenizer's sha256, stored with every checkpoint.
    workdir_files: file name -> text the loop writes into the workdir before step 0
      (``tokenizer.json``).
  """

  text: TextInfo | None
  tokenizer: tokenizers.BpeTokenizer
  vocab_size: int
  num_tokens: dict[str, int]
  num_characters: dict[str, int]
  fingerprint: str
  workdir_files: dict[str, str]


def make_info(tokenizer: tokenizers.BpeTokenizer, text: TextInfo | None = None,
              num_tokens: dict[str, int] | None = None,
              num_characters: dict[str, int] | None = None) -> LanguageModelInfo:
  """``LanguageModelInfo`` of ``tokenizer`` (counts empty when the corpus is not loaded,
  e.g. for ``generate`` and ``score`` on a trained run)."""
  return LanguageModelInfo(text=text, tokenizer=tokenizer, vocab_size=tokenizer.vocab_size,
                           num_tokens=dict(num_tokens or {}),
                           num_characters=dict(num_characters or {}),
                           fingerprint=tokenizer.sha256,
                           workdir_files={TOKENIZER_FILE: tokenizer.to_json()})


def load_info(config: ml_collections.ConfigDict, workdir: Any) -> LanguageModelInfo:
  """The ``info`` of a trained run, rebuilt from the workdir's ``tokenizer.json``.

  Raises:
    FileNotFoundError: the workdir has no tokenizer (not a language model's run).
  """
  del config
  path = epath.Path(workdir) / TOKENIZER_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist: --workdir must be a language model's run "
                            "(GPT, ELMo, BERT), which saves its tokenizer there.")
  return make_info(tokenizers.BpeTokenizer.load(path))


def encode_documents(tokenizer: tokenizers.BpeTokenizer, texts: Sequence[str]) -> np.ndarray:
  """One token stream of ``texts``: each text's ids followed by ``<|endoftext|>``.

  Args:
    tokenizer: the BPE tokenizer.
    texts: documents, in order.

  Returns:
    int32 ``[sum of lengths + len(texts)]``.
  """
  end = tokenizer.token_to_id(tokenizers.END_OF_TEXT)
  pieces = []
  for ids in tokenizer.encode_batch(texts):
    pieces.append(np.asarray(ids, np.int32))
    pieces.append(np.asarray([end], np.int32))
  return np.concatenate(pieces) if pieces else np.zeros((0,), np.int32)


def pack_sequences(stream: np.ndarray, max_len: int, *, pad_id: int | None = None
                   ) -> dict[str, np.ndarray]:
  """Rows of ``max_len + 1`` tokens overlapping by one (module docstring).

  Args:
    stream: int32 ``[N]`` token ids.
    max_len: T, tokens a model reads per row.
    pad_id: with an id, the last partial row is padded with it (weight 0); with None it
      is dropped.

  Returns:
    ``{"tokens": int32 [n, T + 1], "weights": float32 [n, T]}``: weights[i, t] is 1 where
    tokens[i, t + 1] is a real token to predict, 0 on padding.

  Raises:
    ValueError: ``max_len < 1``.
  """
  if max_len < 1:
    raise ValueError(f"max_len={max_len} must be >= 1.")
  stream = np.asarray(stream, np.int32)
  num_predicted = max(len(stream) - 1, 0)
  num_rows = num_predicted // max_len if pad_id is None else -(-num_predicted // max_len)
  padded_length = num_rows * max_len + 1
  weights = np.zeros((padded_length,), np.float32)
  weights[1:min(len(stream), padded_length)] = 1.0
  if len(stream) < padded_length:
    stream = np.concatenate([stream, np.full((padded_length - len(stream),), pad_id, np.int32)])
  starts = np.arange(num_rows) * max_len
  rows = starts[:, None] + np.arange(max_len + 1)[None, :]
  return {"tokens": stream[rows] if num_rows else np.zeros((0, max_len + 1), np.int32),
          "weights": weights[rows[:, 1:]] if num_rows else np.zeros((0, max_len), np.float32)}


def train_tokenizer(config: ml_collections.ConfigDict,
                    documents: Sequence[Document]) -> tokenizers.BpeTokenizer:
  """The run's byte-level BPE, learned on the train split's documents only
  (``tokenizer.vocab_size`` ids, pairs seen ``tokenizer.min_frequency`` times or more), so
  GPT, ELMo and BERT runs of one data config share one tokenizer.

  Raises:
    As ``data.tokenizers.train_bpe``.
  """
  return tokenizers.train_bpe((doc.text for doc in documents),
                              vocab_size=config.tokenizer.vocab_size,
                              min_frequency=config.tokenizer.min_frequency)


def prepare_data(config: ml_collections.ConfigDict, info: TextInfo,
                 data: dict[str, list[Document]]) -> tuple[LanguageModelInfo, dict[str, Any]]:
  """The loop's ``prepare_data`` for next-token language models (module docstring).

  Args:
    config: reads ``tokenizer.vocab_size``, ``tokenizer.min_frequency``, ``model.max_len``.
    info: the corpus's ``TextInfo``.
    data: ``{"train", "val", "test"}`` -> list of ``Document``.

  Returns:
    ``(LanguageModelInfo, splits)``, each split ``{"tokens": int32 [n, T + 1], "weights":
    float32 [n, T]}`` (``pack_sequences``); train drops its last partial row, val and test
    pad it.

  Raises:
    ValueError: the train split is shorter than one row (``model.max_len + 1`` tokens).
  """
  tokenizer = train_tokenizer(config, data["train"])
  pad = tokenizer.token_to_id(tokenizers.PAD)
  splits, num_tokens, num_characters = {}, {}, {}
  for split in TEXT_SPLITS:
    texts = [doc.text for doc in data[split]]
    stream = encode_documents(tokenizer, texts)
    num_tokens[split] = len(stream)
    num_characters[split] = sum(len(tokenizer.normalize(t)) for t in texts)
    splits[split] = pack_sequences(stream, config.model.max_len,
                                   pad_id=None if split == "train" else pad)
  if not len(splits["train"]["tokens"]):
    raise ValueError(f"the train split has {num_tokens['train']} tokens, fewer than one row of "
                     f"model.max_len + 1 = {config.model.max_len + 1}; use more data "
                     "(data.sources, data.max_train_words).")
  return make_info(tokenizer, info, num_tokens, num_characters), splits


def next_token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-position NLL of the targets, −ln softmax(logits)[target], in float32 nats.

  Args:
    logits: float ``[..., V]``.
    targets: int ``[...]`` in ``[0, V)``.

  Returns:
    float32 ``[...]`` nats.
  """
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def sequence_nll_fn(logits_fn: Callable[[Any, jax.Array], jax.Array]):
  """A ``fn(model, batch)`` for ``TrainedModel.map``: summed NLL and token count per row.

  Args:
    logits_fn: ``logits_fn(model, inputs int32 [B, T]) -> float [B, T, V]`` logits of
      the next token at every position.

  Returns:
    ``fn(model, {"tokens": [B, T + 1], "weights": [B, T]}) -> {"nll": float32 [B] nats,
    "count": float32 [B] predicted tokens}``.
  """

  def fn(model, batch):
    tokens, weights = batch["tokens"], batch["weights"]
    nll = next_token_nll(logits_fn(model, tokens[:, :-1]), tokens[:, 1:])
    return {"nll": (nll * weights).sum(-1), "count": weights.sum(-1)}

  return fn


def likelihood_scores(total_nll: float, num_tokens: float, num_characters: int) -> dict[str, float]:
  """NLL per token (nats), perplexity and bits per character of a scored text.

  Args:
    total_nll: summed NLL in nats.
    num_tokens: tokens predicted.
    num_characters: characters of the scored text (0: bits/char is NaN).

  Returns:
    ``{"nll": nats/token, "perplexity": exp(nll), "bits_per_character": total / ln 2 /
    characters}``.
  """
  nll = total_nll / max(num_tokens, 1)
  return {"nll": float(nll), "perplexity": float(math.exp(min(nll, 700.0))),
          "bits_per_character": float(total_nll / math.log(2) / num_characters)
          if num_characters else float("nan")}


def heldout_scores(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
                   logits_fn: Callable[[Any, jax.Array], jax.Array],
                   splits: Sequence[str] = ("val", "test")) -> dict[str, float]:
  """``{split}_nll``, ``{split}_perplexity`` and ``{split}_bits_per_character`` of a trained
  language model on the packed held-out splits.

  Args:
    trained: the loop's ``TrainedModel``.
    data: the prepared splits (``prepare_data``).
    config: reads ``eval.batch_size`` (rows per forward pass).
    logits_fn: as in ``sequence_nll_fn``.
    splits: which splits to score.

  Returns:
    A flat dict of floats (units as in ``likelihood_scores``).
  """
  fn = sequence_nll_fn(logits_fn)
  info = trained.run.info
  scores = {}
  for split in splits:
    out = trained.map(fn, data[split], batch_size=config.eval.batch_size)
    for key, value in likelihood_scores(float(np.sum(out["nll"], dtype=np.float64)),
                                        float(np.sum(out["count"])),
                                        info.num_characters.get(split, 0)).items():
      scores[f"{split}_{key}"] = value
  return scores


def unpack_stream(split: dict[str, np.ndarray]) -> np.ndarray:
  """The token stream a packed split was cut from (``pack_sequences`` inverted, padding
  dropped): what the n-gram baselines score, so that they predict the same tokens.

  Args:
    split: ``{"tokens": int32 [n, T + 1], "weights": float32 [n, T]}``.

  Returns:
    int32 ``[N]``: the first token of the stream, then every predicted token in order.
  """
  tokens, weights = split["tokens"], split["weights"]
  if not len(tokens):
    return np.zeros((0,), np.int32)
  return np.concatenate([tokens[:1, 0], tokens[:, 1:][weights > 0]]).astype(np.int32)


def score_text(trained: Any, text: str) -> dict[str, float]:
  """NLL, perplexity and bits per character of ``text`` under a trained language model.

  The text is encoded with the run's tokenizer (byte-level BPE: characters never seen in
  training fall back to their bytes, nothing becomes ``[UNK]``), cut into rows of
  ``model.max_len + 1`` tokens as in training, and scored with the method's ``logits_fn``;
  every token but the first is predicted once.

  Args:
    trained: a ``TrainedModel`` of a language model (``train.loop.restore_trained``).
    text: the text to score.

  Returns:
    ``{"nll": nats/token, "perplexity", "bits_per_character": total NLL / ln 2 /
    characters of the whole text, "num_tokens": tokens predicted, "num_characters"}``.

  Raises:
    ValueError: the text encodes to fewer than 2 tokens (nothing to predict).
  """
  info, config = trained.run.info, trained.run.config
  stream = np.asarray(info.tokenizer.encode(text), np.int32)
  if len(stream) < 2:
    raise ValueError(f"the text encodes to {len(stream)} token(s); scoring needs at least 2 "
                     "(the first token is only conditioned on).")
  rows = pack_sequences(stream, config.model.max_len,
                        pad_id=info.tokenizer.token_to_id(tokenizers.PAD))
  out = trained.map(sequence_nll_fn(trained.run.method.logits_fn), rows,
                    batch_size=config.eval.batch_size)
  num_characters = len(info.tokenizer.normalize(text))
  count = float(np.sum(out["count"]))
  scores = likelihood_scores(float(np.sum(out["nll"], dtype=np.float64)), count, num_characters)
  scores.update(num_tokens=int(count), num_characters=num_characters)
  return scores


def encode_texts(tokenizer: tokenizers.BpeTokenizer, texts: Sequence[str], max_len: int, *,
                 prefix: Sequence[int] = (), suffix: Sequence[int] = ()) -> dict[str, np.ndarray]:
  """Texts as right-padded rows of token ids, for classifiers fine-tuned on them.

  Each row is ``prefix + ids + suffix`` (e.g. BERT's [CLS] … [SEP]); a text too long keeps
  its first ``max_len − len(prefix) − len(suffix)`` ids (the beginning of a review carries
  its topic; the cut is the same for every method).

  Args:
    tokenizer: the pretrained run's tokenizer.
    texts: N strings.
    max_len: T, tokens per row.
    prefix: ids put before every text.
    suffix: ids put after every text (after the truncation).

  Returns:
    ``{"tokens": int32 [N, T] (``[PAD]`` after the end), "padding_mask": bool [N, T]
    (True on real tokens)}``.

  Raises:
    ValueError: ``max_len`` leaves no room for text after the prefix and suffix.
  """
  room = max_len - len(prefix) - len(suffix)
  if room < 1:
    raise ValueError(f"max_len={max_len} leaves no room for text after {len(prefix)} + "
                     f"{len(suffix)} special tokens; raise finetune.max_len.")
  pad = tokenizer.token_to_id(tokenizers.PAD)
  tokens = np.full((len(texts), max_len), pad, np.int32)
  mask = np.zeros((len(texts), max_len), bool)
  for row, ids in enumerate(tokenizer.encode_batch(list(texts))):
    ids = list(prefix) + ids[:room] + list(suffix)
    tokens[row, :len(ids)] = ids
    mask[row, :len(ids)] = True
  return {"tokens": tokens, "padding_mask": mask}

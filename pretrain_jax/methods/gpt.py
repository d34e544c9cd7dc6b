"""GPT: a causal transformer decoder pretrained by next-token prediction on BPE tokens.

The model is the project's ``nn.transformer.Transformer`` with ``causal=True``: position
t attends to positions ≤ t and its logits predict token t + 1. The loss is the mean
next-token cross-entropy, −(1/T) Σ_t ln p(x_{t+1} | x_≤t), in nats per token. Data,
tokenizer and held-out scoring are ``methods.language_models``'; ``evaluate`` adds the
classical baselines estimated on the same BPE tokens (a unigram, an add-k bigram and an
interpolated Kneser–Ney bigram, ``eval.ngram``) and a continuation of a held-out prompt.

  python -m pretrain_jax.main --config configs/gpt.py:demo --workdir runs/gpt
  python -m pretrain_jax.generate --workdir runs/gpt --prompt "It is a truth" --max_new_tokens 40
  python -m pretrain_jax.score --workdir runs/gpt --text-file some.txt

Source: Radford et al. 2018, "Improving Language Understanding by Generative
Pre-Training" (decoder-only transformer, next-token objective, Eq. 1); Radford et al.
2019 (GPT-2: pre-LN blocks, byte-level BPE, ``<|endoftext|>`` between documents).
"""

from __future__ import annotations

from typing import Any, Sequence

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax.data import tokenizers
from pretrain_jax.eval import ngram
from pretrain_jax.methods import language_models
from pretrain_jax.methods.language_models import LanguageModelInfo
from pretrain_jax.nn import decoding
from pretrain_jax.nn.transformer import Transformer

NAME = "gpt"
SUPERVISION = "next token (causal LM)"
prepare_data = language_models.prepare_data
load_info = language_models.load_info


def make_model(config: ml_collections.ConfigDict, info: LanguageModelInfo, *,
               rngs: nnx.Rngs) -> Transformer:
  """The causal decoder of ``config.model`` over ``info.vocab_size`` tokens.

  Raises:
    ValueError: as ``Transformer`` (e.g. model_dim not a multiple of num_heads).
  """
  model = config.model
  return Transformer(vocab_size=info.vocab_size, num_layers=model.num_layers,
                     num_heads=model.num_heads, model_dim=model.model_dim,
                     mlp_dim=model.mlp_dim, max_len=model.max_len, causal=True,
                     positional=model.positional,
                     attention_implementation=model.get("attention", "project"), rngs=rngs)


class Classifier(nnx.Module):
  """GPT fine-tuned on a text classification task: the pretrained decoder plus one linear
  layer on the final hidden state (after the final LayerNorm) of each text's last token,
  the only position that has read the whole text.

  Source: Radford et al. 2018, Sec. 3.2 (Eq. 3: softmax(h_l^m W_y) on the last token's
  final activation); their auxiliary language-modelling loss is not used.

  Attributes:
    backbone: the ``Transformer`` of ``make_model`` (its params are the pretrained run's).
    head: ``nnx.Linear`` D -> num_classes.
  """

  def __init__(self, config: ml_collections.ConfigDict, info: LanguageModelInfo,
               num_classes: int, *, rngs: nnx.Rngs):
    self.backbone = make_model(config, info, rngs=rngs)
    self.head = nnx.Linear(config.model.model_dim, num_classes, rngs=rngs)

  def __call__(self, batch: dict[str, jax.Array]) -> jax.Array:
    """``{"tokens": int32 [B, T], "padding_mask": bool [B, T]}`` -> float32 logits [B, C]."""
    mask = batch["padding_mask"]
    hidden_BxTxD = self.backbone.encode(batch["tokens"], padding_mask=mask)
    last_B = jnp.maximum(mask.sum(-1) - 1, 0)
    return self.head(hidden_BxTxD[jnp.arange(hidden_BxTxD.shape[0]), last_B]).astype(jnp.float32)


def make_classifier(config: ml_collections.ConfigDict, info: LanguageModelInfo, num_classes: int,
                    *, rngs: nnx.Rngs) -> Classifier:
  """The fine-tuning model of a GPT run (``methods.finetune``); ``config`` is the pretrained
  run's."""
  return Classifier(config, info, num_classes, rngs=rngs)


def classifier_inputs(info: LanguageModelInfo, texts: list[str], max_len: int) -> dict[str, np.ndarray]:
  """``language_models.encode_texts`` of the texts, no special tokens (GPT reads raw text)."""
  return language_models.encode_texts(info.tokenizer, texts, max_len)


def logits_fn(model: Transformer, inputs: jax.Array) -> jax.Array:
  """Next-token logits: int32 ``[B, T]`` -> float32 ``[B, T, V]``."""
  return model(inputs)


# Summed NLL per row, one function object so that ``TrainedModel.map`` compiles it once per run.
_SEQUENCE_NLL = language_models.sequence_nll_fn(logits_fn)


def loss_fn(model: Transformer, batch: dict[str, jax.Array], key: jax.Array,
            config: ml_collections.ConfigDict):
  """Mean next-token cross-entropy of a batch of packed rows.

  Args:
    model: the decoder.
    batch: ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}``
      (``language_models.pack_sequences``); the model reads tokens[:, :T] and predicts
      tokens[:, 1:].
    key: unused (no dropout).
    config: unused.

  Returns:
    (loss in nats per predicted token, {"perplexity": exp(loss)}).
  """
  del key, config
  tokens, weights = batch["tokens"], batch["weights"]
  nll = language_models.next_token_nll(model(tokens[:, :-1]), tokens[:, 1:])
  loss = (nll * weights).sum() / jnp.maximum(weights.sum(), 1.0)  # All padding: 0, not NaN.
  return loss, {"perplexity": jnp.exp(loss)}


def evaluate(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """Held-out likelihood, the n-gram baselines on the same tokens, and a sample.

  Args:
    trained: the loop's ``TrainedModel``.
    data: the prepared splits (``language_models.prepare_data``).
    config: the run's config (``eval`` section).
    workdir: the run's directory; the sample is also written to ``samples.txt``.

  Returns:
    ``val_/test_`` ``nll`` (nats/token), ``perplexity``, ``bits_per_character``;
    ``val_unigram_perplexity``, ``val_bigram_add_k_perplexity`` and
    ``val_bigram_kneser_ney_perplexity`` of the baselines on the same tokens;
    ``train_tokens_per_second`` (training time without compilation); ``sample_prompt`` and
    ``sample`` (decoded text); ``num_parameters``; ``vocab_size``.
  """
  info = trained.run.info
  results = language_models.heldout_scores(trained, data, config, logits_fn)
  train_stream = language_models.unpack_stream(data["train"])
  val_stream = language_models.unpack_stream(data["val"])
  results.update(ngram.baseline_perplexities(train_stream, val_stream, info.vocab_size,
                                             add_k=config.eval.bigram_add_k, prefix="val"))
  seconds = trained.summary.get("pretrain_seconds") or float("nan")
  num_predicted = trained.run.num_steps * config.train.batch_size * config.model.max_len
  results["train_tokens_per_second"] = num_predicted / seconds
  results["num_parameters"] = int(sum(np.size(x) for x in jax.tree.leaves(trained.state.params)))
  results["vocab_size"] = int(info.vocab_size)
  prompt, sample = sample_continuation(trained, data["val"], config)
  results["sample_prompt"], results["sample"] = prompt, sample
  if jax.process_index() == 0:
    (epath.Path(workdir) / "samples.txt").write_text(f"PROMPT:\n{prompt}\n\nCONTINUATION:\n{sample}\n")
  return results


def sample_continuation(trained: Any, split: dict[str, np.ndarray],
                        config: ml_collections.ConfigDict) -> tuple[str, str]:
  """The first ``eval.sample_prompt_tokens`` tokens of a held-out split and the model's
  continuation of them (``eval.sample_new_tokens`` tokens at ``eval.temperature``,
  ``eval.top_k``, seeded by ``seed``).

  Returns:
    (prompt text, continuation text).
  """
  tokenizer = trained.run.info.tokenizer
  prompt = language_models.unpack_stream(split)[:config.eval.sample_prompt_tokens]
  continuation = continue_tokens(trained, prompt, max_new_tokens=config.eval.sample_new_tokens,
                                 temperature=config.eval.temperature, top_k=config.eval.top_k,
                                 seed=config.seed)
  return tokenizer.decode(prompt.tolist()), tokenizer.decode(continuation.tolist())


def continue_tokens(trained: Any, prompt_ids: Any, *, max_new_tokens: int, temperature: float,
                    top_k: int, seed: int) -> np.ndarray:
  """The model's continuation of token ids (``nn.decoding.generate`` with a KV cache).

  Args:
    trained: a GPT ``TrainedModel``.
    prompt_ids: int ``[T0]`` token ids, T0 ≥ 1.
    max_new_tokens, temperature, top_k, seed: as ``generate_text``.

  Returns:
    int32 ``[max_new_tokens]``: the generated ids (without the prompt).

  Raises:
    ValueError: as ``nn.decoding.generate`` (empty prompt, bad settings).
  """
  graphdef, params = nnx.split(trained.model(), nnx.Param)
  generated = decoding.generate(graphdef, params, jax.random.PRNGKey(seed),
                                np.asarray(prompt_ids, np.int32)[None, :],
                                max_new_tokens=max_new_tokens, temperature=temperature,
                                top_k=top_k)
  return np.asarray(generated)[0, -max_new_tokens:]


def generate_text(trained: Any, prompt: str, *, max_new_tokens: int, temperature: float,
                  top_k: int, seed: int) -> str:
  """The model's continuation of ``prompt`` (``nn.decoding.generate`` with a KV cache).

  Args:
    trained: a GPT ``TrainedModel`` (``train.loop.restore_trained``).
    prompt: text to continue; encoded with the run's tokenizer.
    max_new_tokens: tokens to generate, in ``[1, model.max_len)``.
    temperature: softmax temperature ≥ 0; 0 = greedy.
    top_k: sample among the k most likely tokens, ≤ the vocabulary; 0 = all.
    seed: seed of the sampling key.

  Returns:
    The decoded continuation (without the prompt).

  Raises:
    ValueError: an empty prompt, or a bad setting (as ``nn.decoding.generate``).
  """
  ids = trained.run.info.tokenizer.encode(prompt)
  if not ids:
    raise ValueError("the prompt is empty; pass --prompt 'some text' (generation needs at least "
                     "one token to condition on).")
  return trained.run.info.tokenizer.decode(continue_tokens(
      trained, ids, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
      seed=seed).tolist())


def completion_log_likelihoods(trained: Any, prompt: str, completions: Sequence[str]
                               ) -> np.ndarray:
  """ln p(completion | prompt) of each candidate completion, summed over its tokens.

  The way a causal LM is asked a multiple-choice question, as in GPT-2's and GPT-3's
  zero- and few-shot evaluations: the prompt (task examples ``"A = B"`` followed by the
  query ``"C ="``) is encoded once and each completion separately (start it with a space:
  ``" D"``, as a word reads in running text); the model scores every completion token given
  the prompt and the completion tokens before it. The most likely completion is the
  model's answer.

  Source: Radford et al. 2019 (GPT-2), Sec. 3 (zero-shot tasks scored by likelihood);
  Brown et al. 2020 (GPT-3), Sec. 2.4 (few-shot: K examples of context, then the query;
  multiple choice compares the LM likelihood of each completion).

  Args:
    trained: a GPT ``TrainedModel`` (``train.loop.restore_trained``).
    prompt: the conditioning text, at least one token.
    completions: N ≥ 1 candidate texts, each at least one token.

  Returns:
    float64 ``[N]``: ln p of each completion in nats (≤ 0; compare candidates with equal
    token counts, or divide by ``len(tokenizer.encode(c))`` for a per-token score).

  Raises:
    ValueError: an empty prompt, no completions, an empty completion, or prompt plus a
      completion longer than ``model.max_len + 1`` tokens (shorten the prompt: fewer
      examples).
  """
  tokenizer, config = trained.run.info.tokenizer, trained.run.config
  max_len = config.model.max_len
  prompt_ids = tokenizer.encode(prompt)
  if not prompt_ids:
    raise ValueError("the prompt is empty; a completion is scored given at least one token.")
  if not completions:
    raise ValueError("no completions to score; pass a list of candidate texts.")
  tokens = np.full((len(completions), max_len + 1), tokenizer.token_to_id(tokenizers.PAD),
                   np.int32)
  weights = np.zeros((len(completions), max_len), np.float32)
  for row, completion in enumerate(completions):
    ids = prompt_ids + tokenizer.encode(completion)
    if len(ids) == len(prompt_ids):
      raise ValueError(f"completion {row} ({completion!r}) encodes to no tokens.")
    if len(ids) > max_len + 1:
      raise ValueError(f"prompt + completion {row} is {len(ids)} tokens, more than the model's "
                       f"context + 1 = {max_len + 1}; shorten the prompt (fewer examples).")
    tokens[row, :len(ids)] = ids
    weights[row, len(prompt_ids) - 1:len(ids) - 1] = 1.0  # Targets = the completion's tokens.
  out = trained.map(_SEQUENCE_NLL, {"tokens": tokens, "weights": weights},
                    batch_size=config.eval.batch_size)
  return -np.asarray(out["nll"], np.float64)

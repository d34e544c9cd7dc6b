"""ELMo: a bidirectional LSTM language model (biLM) pretrained on BPE tokens.

A forward LSTM LM predicts each token from the tokens before it and a backward LSTM LM
predicts it from the tokens after it (``nn.elmo.BiLM``: one token embedding shared by both
directions and tied to their softmax, separate LSTM weights). On a packed row
``tokens [B, T + 1]`` (``methods.language_models``):

* forward: reads tokens[:, :T] and predicts tokens[:, 1:]; its logits at t depend on
  tokens[:, :t + 1] only;
* backward: reads tokens[:, 1:] right to left and predicts tokens[:, :T]; its logits at t
  predict tokens[:, t] from tokens[:, t + 1:] only (the reading of tokens[:, 1:] at
  positions ≥ t).

Both directions predict T tokens per full row and use the same ``weights`` (weights[:, t]
is 1 iff tokens[:, t + 1] is real: then tokens[:, t] is too, and has a real successor to
be predicted from). The padded tail of the last held-out row is masked in the recurrence,
so the backward LM starts at each row's last real token. The loss is the mean of the two
directions' weighted NLL, (NLL→ + NLL←) / 2 in nats per predicted token (Peters et al.
2018, Eq. 1 jointly maximises the two log likelihoods; we average them so the loss is on
the per-token scale of a single LM).

Evaluation scores the forward LM as GPT's (``logits_fn``: held-out NLL, perplexity, bits
per character, comparable with GPT and the n-gram baselines on the same tokens), and the
backward LM's held-out perplexity beside it. The pretrained biLM's contextual
representations (``representations``, mixed by ``nn.elmo.ScalarMix``) are what
fine-tuning reads.

  python -m pretrain_jax.main --config configs/elmo.py:demo --workdir runs/elmo
  python -m pretrain_jax.score --workdir runs/elmo --text-file some.txt   # forward LM

Source: Peters et al. 2018, "Deep contextualized word representations" (NAACL), Sec. 3.1
(biLM), 3.2 (ELMo), 3.4 (architecture); McAllester, TTIC 31230 slides on ELMo.
"""

from __future__ import annotations

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax.eval import ngram
from pretrain_jax.methods import language_models
from pretrain_jax.methods.language_models import LanguageModelInfo
from pretrain_jax.nn.elmo import BiLM, ScalarMix
from pretrain_jax.train import sharding

NAME = "elmo"
SUPERVISION = "next and previous token (biLM)"
prepare_data = language_models.prepare_data
load_info = language_models.load_info


def make_model(config: ml_collections.ConfigDict, info: LanguageModelInfo, *,
               rngs: nnx.Rngs) -> BiLM:
  """The biLM of ``config.elmo`` with D = ``model.model_dim`` over ``info.vocab_size`` tokens.

  Args:
    config: the run's config; reads ``model.model_dim`` (D), ``elmo.hidden_dim`` (H),
      ``elmo.num_layers`` (L per direction) and ``elmo.residual``.
    info: the tokenizer's ``LanguageModelInfo`` (``vocab_size`` V).
    rngs: nnx.Rngs with a ``params`` stream.

  Returns:
    a float32 ``BiLM`` (Peters et al. 2018, Sec. 3.1, 3.4).

  Raises:
    ValueError: a dimension < 1.
  """
  return BiLM(vocab_size=info.vocab_size, model_dim=config.model.model_dim,
              hidden_dim=config.elmo.hidden_dim, num_layers=config.elmo.num_layers,
              residual=config.elmo.residual, rngs=rngs)


# The LSTM steps are long sequential scans: one device on a CPU host (the two-device
# all-reduce aborted the demo on a busy 2-core host, and one device ran as fast).
make_mesh = sharding.small_step_mesh


def logits_fn(model: BiLM, inputs: jax.Array) -> jax.Array:
  """Forward-LM next-token logits: int32 ``[B, T]`` -> float32 ``[B, T, V]``.

  No padding mask: the forward LM is causal and padding only trails a row, so the logits
  of real positions do not depend on it (what ``heldout_scores`` and ``score_text`` need).
  """
  return model.forward_logits(inputs)


def _weighted_mean(nll: jax.Array, weights: jax.Array) -> jax.Array:
  return (nll * weights).sum() / jnp.maximum(weights.sum(), 1.0)  # All padding: 0, not NaN.


def direction_logits(model: BiLM, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """Both directions' logits on packed rows (module docstring).

  Args:
    model: the biLM.
    batch: ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}``; weights[:, t] > 0
      marks tokens[:, t + 1] as real (the recurrences skip the padding).

  Returns:
    (forward, backward): float32 ``[B, T, V]``; forward[:, t] predicts tokens[:, t + 1]
    from tokens[:, :t + 1], backward[:, t] predicts tokens[:, t] from tokens[:, t + 1:].
  """
  tokens, weights = batch["tokens"], batch["weights"]
  real_BxT = weights > 0  # tokens[:, t + 1] is real.
  forward_mask = jnp.concatenate([jnp.ones_like(real_BxT[:, :1]), real_BxT[:, :-1]], axis=1)
  return (model.forward_logits(tokens[:, :-1], padding_mask=forward_mask),
          model.backward_logits(tokens[:, 1:], padding_mask=real_BxT))


def direction_nlls(model: BiLM, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """Per-position NLL of both directions on packed rows (``direction_logits``).

  Args:
    model: the biLM.
    batch: ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}``.

  Returns:
    (forward, backward): float32 ``[B, T]`` nats; forward[:, t] = −ln p(tokens[:, t + 1] |
    tokens[:, :t + 1]), backward[:, t] = −ln p(tokens[:, t] | tokens[:, t + 1:]). Both are
    meaningful where weights[:, t] > 0.
  """
  tokens = batch["tokens"]
  forward_logits, backward_logits = direction_logits(model, batch)
  return (language_models.next_token_nll(forward_logits, tokens[:, 1:]),
          language_models.next_token_nll(backward_logits, tokens[:, :-1]))


def loss_fn(model: BiLM, batch: dict[str, jax.Array], key: jax.Array,
            config: ml_collections.ConfigDict):
  """Mean of the forward and backward LMs' NLL on a batch of packed rows.

  Args:
    model: the biLM.
    batch: ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}``.
    key: unused (no dropout).
    config: unused.

  Returns:
    (loss = (NLL→ + NLL←) / 2 in nats per predicted token, {"forward_nll",
    "backward_nll" (nats/token), "forward_perplexity", "backward_perplexity"}).
  """
  del key, config
  forward, backward = direction_nlls(model, batch)
  forward_nll = _weighted_mean(forward, batch["weights"])
  backward_nll = _weighted_mean(backward, batch["weights"])
  return 0.5 * (forward_nll + backward_nll), {
      "forward_nll": forward_nll, "backward_nll": backward_nll,
      "forward_perplexity": jnp.exp(forward_nll), "backward_perplexity": jnp.exp(backward_nll)}


def backward_sequence_nll(model: BiLM, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Summed backward-LM NLL and predicted-token count per row (for ``TrainedModel.map``).

  Args:
    model: the biLM.
    batch: ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}``.

  Returns:
    ``{"nll": float32 [B] nats, "count": float32 [B]}``.
  """
  _, backward = direction_nlls(model, batch)
  return {"nll": (backward * batch["weights"]).sum(-1), "count": batch["weights"].sum(-1)}


def representations(model: BiLM, tokens: jax.Array, padding_mask: jax.Array | None = None
                    ) -> jax.Array:
  """ELMo's contextual layers (``BiLM.representations``).

  Args:
    model: a (pretrained) biLM.
    tokens: int32 ``[B, T]`` token ids.
    padding_mask: optional bool ``[B, T]``, True = real token.

  Returns:
    float32 ``[L + 1, B, T, 2D]``: layer 0 = [x ; x] (the token embedding read by the
    LSTMs, √D · E[w]), layer j = [z→_j ; z←_j] where the forward half at t has read tokens
    ≤ t and the backward half tokens ≥ t. Mix them with ``nn.elmo.ScalarMix(L + 1)``.
  """
  return model.representations(tokens, padding_mask=padding_mask)


def evaluate(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """Held-out likelihood of the forward LM (and of the backward LM), n-gram baselines.

  Args:
    trained: the loop's ``TrainedModel``.
    data: the prepared splits (``language_models.prepare_data``).
    config: the run's config (``eval`` section).
    workdir: unused.

  Returns:
    ``val_/test_`` ``nll`` (nats/token), ``perplexity``, ``bits_per_character`` of the
    forward LM; ``val_/test_`` ``backward_nll`` and ``backward_perplexity`` of the backward
    LM (the same tokens but the row's first, predicted from the other side);
    ``val_unigram_perplexity``, ``val_bigram_add_k_perplexity``,
    ``val_bigram_kneser_ney_perplexity`` (``eval.ngram`` on the same tokens);
    ``train_tokens_per_second`` (rows × T per second of training, compilation excluded;
    each token is read by both directions); ``num_parameters``; ``vocab_size``.
  """
  del workdir
  info = trained.run.info
  results = language_models.heldout_scores(trained, data, config, logits_fn)
  for split in ("val", "test"):
    out = trained.map(backward_sequence_nll, data[split], batch_size=config.eval.batch_size)
    scores = language_models.likelihood_scores(float(np.sum(out["nll"], dtype=np.float64)),
                                               float(np.sum(out["count"])), 0)
    results[f"{split}_backward_nll"] = scores["nll"]
    results[f"{split}_backward_perplexity"] = scores["perplexity"]
  results.update(ngram.baseline_perplexities(
      language_models.unpack_stream(data["train"]), language_models.unpack_stream(data["val"]),
      info.vocab_size, add_k=config.eval.bigram_add_k, prefix="val"))
  seconds = trained.summary.get("pretrain_seconds") or float("nan")
  num_read = trained.run.num_steps * config.train.batch_size * config.model.max_len
  results["train_tokens_per_second"] = num_read / seconds
  results["num_parameters"] = int(sum(np.size(x) for x in jax.tree.leaves(trained.state.params)))
  results["vocab_size"] = int(info.vocab_size)
  return results


class Classifier(nnx.Module):
  """ELMo used for a text classification task: the biLM's layers mixed by a learned
  ``ScalarMix`` (γ Σ_j softmax(s)_j h_j), averaged over the text's tokens, then a linear
  layer. Fine-tuned with ``finetune.head_only`` the biLM stays frozen, as in the paper.

  Source: Peters et al. 2018, Sec. 3.3 (freeze the biLM, learn the task-specific mix,
  feed ELMo_k to the task model); the task model here is a mean pool and one linear layer.

  Attributes:
    backbone: the ``BiLM`` of ``make_model`` (its params are the pretrained run's).
    mix: ``ScalarMix`` over the L + 1 layers.
    head: ``nnx.Linear`` 2D -> num_classes.
  """

  def __init__(self, config: ml_collections.ConfigDict, info: LanguageModelInfo,
               num_classes: int, *, rngs: nnx.Rngs):
    """Creates the backbone, the mix and the head.

    Args:
      config: the pretrained run's config (``make_model``).
      info: its ``LanguageModelInfo``.
      num_classes: int C ≥ 1.
      rngs: nnx.Rngs with a ``params`` stream.

    Raises:
      ValueError: a dimension < 1.
    """
    self.backbone = make_model(config, info, rngs=rngs)
    self.mix = ScalarMix(config.elmo.num_layers + 1)
    self.head = nnx.Linear(2 * config.model.model_dim, num_classes, rngs=rngs)

  def __call__(self, batch: dict[str, jax.Array]) -> jax.Array:
    """``{"tokens": int32 [B, T], "padding_mask": bool [B, T]}`` -> float32 logits [B, C]."""
    mask = batch["padding_mask"]
    mixed_BxTx2D = self.mix(self.backbone.representations(batch["tokens"], padding_mask=mask))
    weights_BxT = mask.astype(jnp.float32)
    pooled_Bx2D = (mixed_BxTx2D * weights_BxT[..., None]).sum(1) / jnp.maximum(
        weights_BxT.sum(1, keepdims=True), 1.0)
    return self.head(pooled_Bx2D).astype(jnp.float32)


def make_classifier(config: ml_collections.ConfigDict, info: LanguageModelInfo, num_classes: int,
                    *, rngs: nnx.Rngs) -> Classifier:
  """The fine-tuning model of an ELMo run (``methods.finetune``): ``Classifier(...)``.

  Args:
    config: the pretrained run's config.
    info: its ``LanguageModelInfo``.
    num_classes: int C, width of the float32 logits [B, C].
    rngs: nnx.Rngs with a ``params`` stream.
  """
  return Classifier(config, info, num_classes, rngs=rngs)


def classifier_inputs(info: LanguageModelInfo, texts: list[str], max_len: int) -> dict[str, np.ndarray]:
  """``language_models.encode_texts`` of the texts, no special tokens (as in pretraining).

  Args:
    info: the pretrained run's ``LanguageModelInfo`` (its tokenizer).
    texts: N strings.
    max_len: int T, tokens per row (longer texts keep their first T ids).

  Returns:
    ``{"tokens": int32 [N, T], "padding_mask": bool [N, T]}`` (``Classifier``'s batch).

  Raises:
    ValueError: ``max_len < 1``.
  """
  return language_models.encode_texts(info.tokenizer, texts, max_len)

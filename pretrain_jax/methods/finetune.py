"""Supervised fine-tuning of a pretrained language model on labelled texts, as a run of
the spine (TrainState, Orbax checkpoints, resume, metrics, one-line errors).

The run's config names a pretrained run (``finetune.pretrained_workdir``: a GPT, BERT or
ELMo workdir). Its stored config and tokenizer decide the architecture; the pretrained
method's ``make_classifier`` adds the task head (GPT: one linear layer on the last
token; BERT: on [CLS]; ELMo: a scalar mix and a linear layer) around a ``backbone`` with
the pretrained model's structure, and ``warm_start`` copies the pretrained weights into
it before step 0. ``finetune.from_scratch`` keeps the same architecture and tokenizer but
random weights: the "no pretraining" rows of the language table. ``finetune.head_only``
trains the head alone (the backbone's updates are zero: ELMo's protocol, Peters et al.
2018, Sec. 3.3); otherwise the whole model is trained (GPT and BERT).

Data: ``data.name`` is ``rotten_tomatoes`` or ``fine_food`` (``data.sentiment``), encoded
with the pretrained tokenizer into rows of ``finetune.max_len`` tokens. ``evaluate``
scores the validation split only; ``eval.finetune.select_and_test`` picks the learning
rate and number of epochs on it and scores the test split once.

Refused in one line: a pretrained workdir that is not a language model's run or has no
checkpoint; a resume whose pretrained run (tokenizer, step, architecture) changed, through
``info.fingerprint`` stored with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from pretrain_jax import methods
from pretrain_jax.data import sentiment
from pretrain_jax.train.optimizers import make_optimizer as make_adamw

NAME = "finetune"
SUPERVISION = "task labels (after pretraining)"


@dataclasses.dataclass(frozen=True)
class FinetuneInfo:
  """What a fine-tuning run knows about its pretrained run and task (the loop's ``info``).

  Attributes:
    pretrained_config: the pretrained run's stored config (``ConfigDict``).
    backbone_info: the pretrained method's ``info`` (``load_info``): its tokenizer.
    num_classes: classes of the task.
    fingerprint: sha256 of the pretrained tokenizer, step and config, and from_scratch.
    workdir_files: none (the tokenizer stays with the pretrained run).
  """

  pretrained_config: ml_collections.ConfigDict
  backbone_info: Any
  num_classes: int
  fingerprint: str
  workdir_files: dict[str, str] = dataclasses.field(default_factory=dict)


def pretrained_method(info: FinetuneInfo):
  """The method module of the pretrained run (``methods.METHODS[pretrained_config.method]``),
  which builds the classifier (``make_classifier``) and encodes texts (``classifier_inputs``)."""
  return methods.get_method(info.pretrained_config.method)


def read_pretrained(workdir: str) -> tuple[int, ml_collections.ConfigDict, Any]:
  """The newest checkpoint step, stored config and ``info`` of a pretrained run.

  Raises:
    FileNotFoundError: no checkpoint there (one line saying what to pass).
    ValueError: the run's method cannot be fine-tuned (no ``make_classifier``).
  """
  from pretrain_jax.train import loop  # pylint: disable=g-import-not-at-top  # loop imports methods.

  path = loop.as_path(workdir) if workdir else None
  if path is None or not (path / "checkpoints").exists():
    raise FileNotFoundError(f"finetune.pretrained_workdir={workdir!r} holds no checkpoints/; pass "
                            "the --workdir of a GPT, BERT or ELMo run.")
  step, config = loop.saved_config(path)
  method = methods.get_method(config.method)
  if not hasattr(method, "make_classifier"):
    raise ValueError(f"{workdir} is a {config.method} run, which cannot be fine-tuned on texts "
                     "(no make_classifier); pass a GPT, BERT or ELMo run.")
  return step, config, method.load_info(config, path)


def load_info(config: ml_collections.ConfigDict, workdir: Any = None) -> FinetuneInfo:
  """The run's ``FinetuneInfo``, from its pretrained run alone (no task data): what
  ``prepare_data`` returns as ``info``, and what ``train.loop.restore_trained`` needs.

  Raises:
    As ``read_pretrained``.
  """
  del workdir
  step, pretrained_config, backbone_info = read_pretrained(config.finetune.pretrained_workdir)
  digest = hashlib.sha256()
  for part in (backbone_info.fingerprint, str(step),
               json.dumps(pretrained_config.to_dict(), sort_keys=True, default=str),
               str(bool(config.finetune.from_scratch))):
    digest.update(part.encode())
  return FinetuneInfo(pretrained_config=pretrained_config, backbone_info=backbone_info,
                      num_classes=len(sentiment.LABEL_NAMES[config.data.name]),
                      fingerprint=digest.hexdigest())


def prepare_data(config: ml_collections.ConfigDict, info: Any,
                 data: dict[str, sentiment.LabelledTexts]) -> tuple[FinetuneInfo, dict[str, Any]]:
  """The task's texts encoded with the pretrained tokenizer (the loop's ``prepare_data``).

  Args:
    config: reads ``finetune.pretrained_workdir``, ``finetune.from_scratch``,
      ``finetune.max_len`` and ``data.train_limit`` (first N train texts; 0 = all).
    info: the data layer's info (the task's name).
    data: ``{"train", "val", "test"}`` -> ``LabelledTexts``.

  Returns:
    ``(FinetuneInfo, splits)``, each split the pretrained method's ``classifier_inputs``
    (``{"tokens": int32 [n, T], "padding_mask": bool [n, T]}`` or more) plus ``"label":
    int32 [n]``.

  Raises:
    As ``read_pretrained``.
  """
  del info
  info = load_info(config)
  method = pretrained_method(info)
  limit = int(config.data.get("train_limit", 0) or 0)
  splits = {}
  for split, labelled in data.items():
    texts, labels = list(labelled.texts), np.asarray(labelled.labels, np.int32)
    if split == "train" and limit:
      texts, labels = texts[:limit], labels[:limit]
    splits[split] = dict(method.classifier_inputs(info.backbone_info, texts, config.finetune.max_len),
                         label=labels)
  return info, splits


def make_model(config: ml_collections.ConfigDict, info: FinetuneInfo, *, rngs: nnx.Rngs) -> nnx.Module:
  """The pretrained method's classifier (``make_classifier``) for ``info.num_classes``."""
  del config
  return pretrained_method(info).make_classifier(info.pretrained_config, info.backbone_info,
                                                 info.num_classes, rngs=rngs)


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """AdamW with warm-up and cosine decay (``train.optimizers``); with
  ``finetune.head_only`` every parameter under ``backbone`` gets a zero update (no weight
  decay either), so the pretrained weights stay exactly as loaded."""
  adamw = make_adamw(config.optim, num_steps)
  if not config.finetune.head_only:
    return adamw

  def labels(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if _path_root(path) == "backbone" else "trained", params)

  return optax.multi_transform({"trained": adamw, "frozen": optax.set_to_zero()}, labels)


def _path_root(path) -> str:
  first = path[0]
  return str(getattr(first, "key", getattr(first, "name", first)))


def warm_start(run: Any, state: Any) -> Any:
  """Copies the pretrained run's weights into ``backbone`` (unless ``from_scratch``).

  Raises:
    CheckpointMismatchError / CheckpointCorruptError: as ``train.loop.restore_trained``.
    ValueError: the pretrained params do not fit the backbone (another architecture).
  """
  config = run.config
  if config.finetune.from_scratch:
    return state
  from pretrain_jax.train import loop  # pylint: disable=g-import-not-at-top

  pretrained = loop.restore_trained(config.finetune.pretrained_workdir)
  params = nnx.to_pure_dict(state.params)
  loaded = jax.device_get(nnx.to_pure_dict(pretrained.state.params))
  expected = jax.tree.map(np.shape, params["backbone"])
  if jax.tree.structure(expected) != jax.tree.structure(jax.tree.map(np.shape, loaded)) or \
      expected != jax.tree.map(np.shape, loaded):
    raise ValueError(f"the checkpoint of {config.finetune.pretrained_workdir} does not fit the "
                     f"{run.info.pretrained_config.method} backbone; fine-tune the run it came from.")
  params["backbone"] = loaded
  new_params = jax.tree.map(lambda x: x, state.params)  # A copy: the fresh state is left as it was.
  nnx.replace_by_pure_dict(new_params, params)
  opt_state = run.optimizer.init(new_params)
  return state.replace(params=new_params, opt_state=opt_state)


def loss_fn(model: nnx.Module, batch: dict[str, jax.Array], key: jax.Array,
            config: ml_collections.ConfigDict):
  """Softmax cross-entropy of the labels.

  Returns:
    (loss in nats per example, {"accuracy": fraction of the batch right}).
  """
  del key, config
  logits = model(batch)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
  return loss, {"accuracy": (logits.argmax(-1) == batch["label"]).mean()}


def _predict(model: nnx.Module, batch: dict[str, jax.Array]) -> jax.Array:
  return jnp.argmax(model(batch), -1).astype(jnp.int32)


def accuracy(trained: Any, split: dict[str, np.ndarray], config: ml_collections.ConfigDict) -> float:
  """Fraction of ``split``'s examples classified right by a trained classifier.

  Args:
    trained: a fine-tuning run's ``TrainedModel``.
    split: a prepared split: the classifier's inputs (``{"tokens": int32 [n, T],
      "padding_mask": bool [n, T]}``) and ``"label": int32 [n]``.
    config: reads ``eval.batch_size`` (texts per forward pass, divisible by the devices).

  Returns:
    Accuracy in [0, 1]: argmax of the logits against the labels.
  """
  inputs = {k: v for k, v in split.items() if k != "label"}
  predictions = trained.map(_predict, inputs, batch_size=config.eval.batch_size)
  return float(np.mean(predictions == split["label"]))


def evaluate(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """Validation accuracy (the test split is scored once, by ``eval.finetune``).

  Returns:
    ``val_accuracy`` (fraction), ``num_train`` and ``pretrained_method``.
  """
  del workdir
  return {"val_accuracy": accuracy(trained, data["val"], config),
          "num_train": int(len(data["train"]["label"])),
          "pretrained_method": trained.run.info.pretrained_config.method}

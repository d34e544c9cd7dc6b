"""Rows of the language table (``configs/language_table.py``): what pretraining buys on
labelled reviews, from a bag of words to BERT (the tutorial's "word2vec → biLSTM → ELMo →
GPT → BERT" slide, measured).

``pretrain_jax.table`` calls ``run_row(name, ...)`` for each row of the table config. A
row pretrains what it needs once (``<workdir>/pretrain_<method>``: ``configs/<method>.py``
at the table's variant, shared by the rows that use it: ELMo's run also gives the
biLSTM-from-scratch row its architecture and tokenizer), then fine-tunes on each task with
``eval.finetune.select_and_test`` (learning rate and epochs picked on validation, test
scored once) in ``<workdir>/<row>/<task>``. Every run is resumable and a finished one is
reused; the rows:

* ``tfidf``: TF-IDF unigrams+bigrams + logistic regression (scikit-learn), no pretraining;
* ``word2vec``: skip-gram vectors (``configs/skipgram.py``), mean of a text's word vectors
  + logistic regression;
* ``bilstm_scratch``: ELMo's architecture and tokenizer, random weights, all trained;
* ``elmo``: the pretrained biLM frozen, scalar mix + linear head trained (Peters et al.);
* ``gpt``: the pretrained decoder fine-tuned whole, head on the last token;
* ``transformer_scratch``: BERT's architecture and tokenizer, random weights;
* ``bert``: the pretrained encoder fine-tuned whole, head on [CLS].
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import ml_collections

from pretrain_jax.eval import finetune as finetune_eval
from pretrain_jax.train.config import load_method_config


class Row(NamedTuple):
  """How a row is made.

  Attributes:
    objective: the pretraining objective, as the table prints it.
    pretrain: the method pretrained (``configs/<pretrain>.py``), or None.
    from_scratch: fine-tune the pretrained run's architecture from random weights.
    head_only: freeze the pretrained backbone.
    baseline: ``tfidf`` or ``mean_vectors`` for the rows fitted by scikit-learn.
  """

  objective: str
  pretrain: str | None = None
  from_scratch: bool = False
  head_only: bool = False
  baseline: str | None = None


ROWS = {
    "tfidf": Row("none (bag of words)", baseline="tfidf"),
    "word2vec": Row("skip-gram, negative sampling", pretrain="skipgram", baseline="mean_vectors"),
    "bilstm_scratch": Row("none (biLSTM, random init)", pretrain="elmo", from_scratch=True),
    "elmo": Row("next + previous token (biLM)", pretrain="elmo", head_only=True),
    "gpt": Row("next token (causal LM)", pretrain="gpt"),
    "transformer_scratch": Row("none (transformer, random init)", pretrain="bert", from_scratch=True),
    "bert": Row("masked LM + next sentence", pretrain="bert"),
}

# The pretraining run's likelihood shown in the table's "LM validation perplexity" column.
PERPLEXITY_KEYS = {"gpt": "val_perplexity", "elmo": "val_perplexity", "bert": "val_mlm_perplexity"}


def _pretrained(method: str, table_config: Any, config_dir: str, workdir: Any,
                progress: bool) -> tuple[Any, dict[str, Any]]:
  """The table's run of ``configs/<method>.py`` (trained once, then reused)."""
  from pretrain_jax import table  # pylint: disable=g-import-not-at-top
  from pretrain_jax.train import loop  # pylint: disable=g-import-not-at-top

  config = load_method_config(config_dir, method, table_config.variant, table_config.seed)
  run_dir = workdir / f"pretrain_{method}"
  results_file = run_dir / loop.RESULTS_FILE
  if results_file.exists():
    results = json.loads(results_file.read_text())
    table.check_reusable(results, config, run_dir)
    return run_dir, results
  print(f"  pretraining {method} -> {run_dir}", flush=True)
  return run_dir, loop.train_and_evaluate(config, run_dir, progress=progress)


def _finetuned(row: Row, task: str, pretrained_dir: Any, table_config: Any, config_dir: str,
               run_dir: Any, progress: bool) -> dict[str, Any]:
  """``select_and_test`` of one (row, task), reused when finished."""
  from pretrain_jax.train import loop  # pylint: disable=g-import-not-at-top

  if (run_dir / loop.RESULTS_FILE).exists():
    return json.loads((run_dir / loop.RESULTS_FILE).read_text())
  config = load_method_config(config_dir, "finetune", table_config.variant, table_config.seed)
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.name = task
  config.finetune.pretrained_workdir = str(pretrained_dir)
  config.finetune.from_scratch = row.from_scratch
  config.finetune.head_only = row.head_only
  return finetune_eval.select_and_test(config, run_dir, progress=progress,
                                       learning_rates=tuple(table_config.learning_rates))


def run_row(name: str, table_config: Any, config_dir: str, workdir: Any, *,
            progress: bool = True) -> dict[str, Any]:
  """One row of the language table.

  Args:
    name: a key of ``ROWS``.
    table_config: ``configs/language_table.py``: ``variant``, ``seed``, ``tasks``,
      ``learning_rates``, ``train_limit`` (first N task texts for the scikit-learn rows, as
      the fine-tuned rows' ``data.train_limit``).
    config_dir: the directory of the method configs.
    workdir: the table's directory (``epath.Path``).
    progress: show progress bars.

  Returns:
    ``method``, ``objective``, ``pretrain_seconds`` (0 without pretraining),
    ``lm_val_perplexity`` (None where the row has no language model), ``<task>_test_accuracy``
    and ``<task>_val_accuracy`` for every task, ``dataset``.

  Raises:
    ValueError: an unknown row name; as the runs it makes.
  """
  if name not in ROWS:
    raise ValueError(f"unknown language-table row {name!r}: use some of {', '.join(ROWS)}.")
  row = ROWS[name]
  results = {"method": name, "objective": row.objective, "pretrain_seconds": 0.0,
             "lm_val_perplexity": None, "dataset": "english -> reviews"}
  pretrained_dir = None
  if row.pretrain:
    pretrained_dir, pretrained = _pretrained(row.pretrain, table_config, config_dir, workdir,
                                             progress)
    if not row.from_scratch:
      results["pretrain_seconds"] = pretrained["pretrain_seconds"]
      results["lm_val_perplexity"] = pretrained.get(PERPLEXITY_KEYS.get(row.pretrain, ""))
  for task in table_config.tasks:
    if row.baseline == "tfidf":
      scores = finetune_eval.tfidf_baseline(task, seed=table_config.seed,
                                            train_limit=table_config.train_limit)
    elif row.baseline == "mean_vectors":
      scores = finetune_eval.mean_vectors_baseline(pretrained_dir / "vectors.txt", task,
                                                   seed=table_config.seed,
                                                   train_limit=table_config.train_limit)
    else:
      scores = _finetuned(row, task, pretrained_dir, table_config, config_dir,
                          workdir / name / task, progress)
    results[f"{task}_test_accuracy"] = scores["test_accuracy"]
    results[f"{task}_val_accuracy"] = scores["val_accuracy"]
  return results

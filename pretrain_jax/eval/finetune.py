"""Fine-tuning protocol: learning rate and epochs picked on validation, test scored once.

  python -m pretrain_jax.eval.finetune --config configs/finetune.py:demo \
      --config.finetune.pretrained_workdir=runs/gpt --workdir runs/gpt_rt

For each learning rate of ``--learning_rates`` one fine-tuning run (``methods.finetune``,
a run of the spine: checkpoints, resume, metrics) trains for ``train.num_epochs`` epochs
in ``<workdir>/lr_<rate>``, with a checkpoint at the end of every epoch. The validation
accuracy of every (rate, epoch) checkpoint is measured; the best pair (ties: the smaller
rate, then the fewer epochs) alone is scored on the test split, once. ``<workdir>/
results.json`` holds the grid, the choice and its test accuracy. Re-running the same
command resumes what was interrupted; a finished workdir is refused.

Source: the fine-tuning protocol of Devlin et al. 2019, Sec. 4 / A.3 (learning rate and
epochs chosen on the development set) and Radford et al. 2018, Sec. 4.1.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import ml_collections
import numpy as np

from pretrain_jax.data import datasets, iterators, sentiment
from pretrain_jax.methods import finetune
from pretrain_jax.train import loop

DEFAULT_LEARNING_RATES = (1e-4, 1e-3)


def select_and_test(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES,
                    progress: bool = True) -> dict[str, Any]:
  """Fine-tunes at every learning rate, picks (rate, epochs) on validation, tests once.

  Args:
    config: a ``configs/finetune.py`` config (unlocked or locked); ``optim.learning_rate``,
      ``train.checkpoint_every`` and ``train.keep_checkpoints`` are set here per run.
    workdir: the selection's directory; each rate's run lives in ``lr_<rate>/`` below it.
    learning_rates: peak learning rates tried (each > 0).
    progress: show progress bars.

  Returns:
    The dict written to ``<workdir>/results.json``: ``grid`` (rate, epochs, val accuracy
    per checkpoint), ``learning_rate`` and ``epochs`` chosen, their ``val_accuracy`` and
    ``test_accuracy`` (fractions), ``pretrained_method``, ``from_scratch``, ``head_only``,
    ``dataset``, ``finetune_seconds`` (training time of every run) and ``config``.

  Raises:
    FinishedRunError: ``<workdir>/results.json`` exists.
    ValueError: no or non-positive learning rates; as ``train.loop.train_and_evaluate``.
  """
  workdir = loop.as_path(workdir)
  loop.check_not_finished(workdir)
  if not learning_rates or min(learning_rates) <= 0:
    raise ValueError(f"learning_rates={tuple(learning_rates)} must be positive numbers, e.g. "
                     "--learning_rates=1e-4,1e-3.")
  _, raw = datasets.load_for_config(config)
  _, data = finetune.prepare_data(config, None, raw)  # Encoded once for every rate and epoch.
  per_epoch = iterators.steps_per_epoch(len(data["train"]["label"]), int(config.train.batch_size))
  num_epochs = int(config.train.num_epochs)
  grid, seconds, runs = [], 0.0, {}
  for rate in sorted(float(r) for r in learning_rates):
    run_config = ml_collections.ConfigDict(config.to_dict())
    run_config.optim.learning_rate = rate
    run_config.train.checkpoint_every = per_epoch  # One checkpoint per epoch, all kept.
    run_config.train.keep_checkpoints = num_epochs
    run_dir = workdir / f"lr_{rate:g}"
    if (run_dir / loop.RESULTS_FILE).exists():
      run_results = json.loads((run_dir / loop.RESULTS_FILE).read_text())
    else:
      run_results = loop.train_and_evaluate(run_config, run_dir, progress=progress)
    seconds += run_results["pretrain_seconds"]
    run = None  # One Pretrainer per rate: its compiled predictions serve every epoch.
    for epoch in range(1, num_epochs + 1):
      trained = loop.restore_trained(run_dir, step=epoch * per_epoch, run=run)
      run = runs[rate] = trained.run
      grid.append({"learning_rate": rate, "epochs": epoch,
                   "val_accuracy": finetune.accuracy(trained, data["val"], run_config)})
  best = max(grid, key=lambda row: (row["val_accuracy"], -row["learning_rate"], -row["epochs"]))
  trained = loop.restore_trained(workdir / f"lr_{best['learning_rate']:g}",
                                 step=best["epochs"] * per_epoch, run=runs[best["learning_rate"]])
  test_accuracy = finetune.accuracy(trained, data["test"], trained.run.config)
  results = {"grid": grid, "learning_rate": best["learning_rate"], "epochs": best["epochs"],
             "val_accuracy": best["val_accuracy"], "test_accuracy": test_accuracy,
             "pretrained_method": trained.run.info.pretrained_config.method,
             "from_scratch": bool(config.finetune.from_scratch),
             "head_only": bool(config.finetune.head_only), "dataset": config.data.name,
             "finetune_seconds": seconds, "num_test": int(len(data["test"]["label"])),
             "config": loop.normalize_config(config)}
  loop.write_json_atomically(workdir / loop.RESULTS_FILE, results)
  return results


def _logistic_regression(train_x, train_y, val_x, val_y, test_x, test_y, *, seed: int,
                         c_grid: Sequence[float]) -> dict[str, Any]:
  """scikit-learn's L2 logistic regression with C picked on validation, test scored once."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

  fits = []
  for c in c_grid:
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(train_x, train_y)
    fits.append((float(model.score(val_x, val_y)), -c, model))
  val_accuracy, negative_c, model = max(fits, key=lambda fit: fit[:2])
  return {"val_accuracy": val_accuracy, "test_accuracy": float(model.score(test_x, test_y)),
          "C": -negative_c}


def tfidf_baseline(name: str, *, seed: int = 0, train_limit: int = 0,
                   c_grid: Sequence[float] = (0.1, 1.0, 10.0, 100.0)) -> dict[str, Any]:
  """The classical row: TF-IDF bag of words (unigrams and bigrams) + logistic regression.

  Args:
    name: ``rotten_tomatoes`` or ``fine_food``.
    seed: the solver's seed.
    train_limit: fit on the first N training texts (0 = all), as the fine-tuned rows.
    c_grid: inverse L2 strengths tried on validation.

  Returns:
    ``val_accuracy`` and ``test_accuracy`` (fractions) of the C chosen on validation, ``C``.

  Source: Salton & Buckley 1988 (tf-idf weighting); scikit-learn's ``TfidfVectorizer``
  (sublinear tf, min_df 2) and ``LogisticRegression``.
  """
  from sklearn.feature_extraction.text import TfidfVectorizer  # pylint: disable=g-import-not-at-top

  data = sentiment.load_sentiment(name)
  train = data["train"]
  texts, labels = list(train.texts), train.labels
  if train_limit:
    texts, labels = texts[:train_limit], labels[:train_limit]
  vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
  return _logistic_regression(vectorizer.transform(texts), labels,
                              vectorizer.transform(data["val"].texts), data["val"].labels,
                              vectorizer.transform(data["test"].texts), data["test"].labels,
                              seed=seed, c_grid=c_grid)


def mean_vectors_baseline(vectors_file: str | os.PathLike, name: str, *, seed: int = 0,
                          train_limit: int = 0,
                          c_grid: Sequence[float] = (0.1, 1.0, 10.0, 100.0)) -> dict[str, Any]:
  """The word2vec row: a text is the mean of its words' vectors (words the vectors lack
  are skipped; a text with none is the zero vector), then logistic regression.

  Args:
    vectors_file: word vectors in the word2vec text format (a cbow/skip-gram run's
      ``vectors.txt``).
    name, seed, train_limit, c_grid: as ``tfidf_baseline``.

  Returns:
    As ``tfidf_baseline``, plus ``coverage``: the fraction of training words found.
  """
  from pretrain_jax.data import tokenizers  # pylint: disable=g-import-not-at-top
  from pretrain_jax.eval import word_vectors  # pylint: disable=g-import-not-at-top

  vectors = word_vectors.load_word2vec_format(vectors_file)
  index, table = vectors.index, vectors.vectors
  counts = {"found": 0, "total": 0}

  def features(texts, count=False):
    out = np.zeros((len(texts), table.shape[1]), np.float32)
    for i, text in enumerate(texts):
      words = tokenizers.words(text)
      rows = [index[w] for w in words if w in index]
      if count:
        counts["found"] += len(rows)
        counts["total"] += len(words)
      if rows:
        out[i] = table[rows].mean(0)
    return out

  data = sentiment.load_sentiment(name)
  texts, labels = list(data["train"].texts), data["train"].labels
  if train_limit:
    texts, labels = texts[:train_limit], labels[:train_limit]
  results = _logistic_regression(features(texts, count=True), labels,
                                 features(data["val"].texts), data["val"].labels,
                                 features(data["test"].texts), data["test"].labels,
                                 seed=seed, c_grid=c_grid)
  results["coverage"] = counts["found"] / max(counts["total"], 1)
  return results


def main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top

  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save and restore at INFO.
  rates = [float(r) for r in flags.FLAGS.learning_rates]
  try:
    results = select_and_test(flags.FLAGS.config, flags.FLAGS.workdir, learning_rates=rates)
  except (ValueError, OSError) as error:
    sys.exit(f"error: {' '.join(str(error).split())}")
  print(loop.to_json({k: v for k, v in results.items() if k != "config"}), end="")


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from pretrain_jax.train.config import parse_flags  # pylint: disable=g-import-not-at-top
  from pretrain_jax.train import platform  # pylint: disable=g-import-not-at-top

  platform.configure_cpu()
  config_flags.DEFINE_config_file("config", None, "configs/finetune.py[:smoke|demo|full].",
                                  lock_config=False)
  flags.DEFINE_string("workdir", None, "Directory of the selection (one run per learning rate).")
  flags.DEFINE_list("learning_rates", [f"{r:g}" for r in DEFAULT_LEARNING_RATES],
                    "Peak learning rates tried, comma-separated.")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=parse_flags)

"""The language family's table: what pretraining buys on labelled reviews.

  python -m pretrain_jax.data.fetch english && python -m pretrain_jax.data.fetch sentiment
  python -m pretrain_jax.table --config configs/language_table.py:demo --workdir runs/language_demo

Each row (``pretrain_jax.eval.language_table.ROWS``) pretrains what it needs once
(``configs/<method>.py`` at this variant) and fine-tunes on every task with the learning
rate and epochs picked on validation (``eval/finetune.py``), the test split scored once.
"""

import ml_collections

from pretrain_jax.train.config import check_variant


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = ml_collections.ConfigDict()
  config.variant = check_variant(arg)  # Variant of every pretraining and fine-tuning config.
  pick = lambda smoke, demo, full: {"smoke": smoke, "demo": demo, "full": full}[config.variant]  # noqa: E731
  config.seed = 0  # Overrides every run config's seed.
  config.methods = ("tfidf", "word2vec", "bilstm_scratch", "elmo", "gpt", "transformer_scratch",
                    "bert")  # Rows, in order (eval.language_table.ROWS).
  config.row_module = "pretrain_jax.eval.language_table"  # Makes each row: run_row(name, ...).
  config.tasks = ("rotten_tomatoes", "fine_food")  # Labelled sets (python -m pretrain_jax.data.fetch sentiment).
  config.learning_rates = pick((1e-3,), (3e-4, 1e-3), (1e-4, 3e-4, 1e-3))  # Fine-tuning peak rates tried on validation.
  config.train_limit = pick(256, 2000, 0)  # First N training texts for the scikit-learn rows (as configs/finetune.py).
  config.columns = ("method", "objective", "pretrain_seconds", "lm_val_perplexity",
                    "rotten_tomatoes_test_accuracy", "fine_food_test_accuracy")  # Keys of each row.
  config.plot_columns = ("rotten_tomatoes_test_accuracy", "fine_food_test_accuracy")  # Bars of table.png.
  config.title = "test accuracy after fine-tuning"  # Chart title after "<dataset>, <variant>: ".
  config.lock()
  return config

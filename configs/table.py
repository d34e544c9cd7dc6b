"""The vision family's comparison table: every method on the same encoder and data.

  python -m pretrain_jax.table --config configs/table.py:demo --workdir runs/table_demo

Each row runs ``configs/<method>.py`` at this variant in ``<workdir>/<method>``.
"""

import ml_collections

from pretrain_jax.train.config import check_variant


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = ml_collections.ConfigDict()
  config.variant = check_variant(arg)  # Variant of every method's config.
  config.seed = 0  # Overrides every method config's seed.
  config.methods = ("raw_pixels", "pca", "kmeans", "random_init", "autoencoder", "rotation",
                    "contrastive", "supervised")  # Rows, in order; each is configs/<name>.py.
  config.columns = ("method", "supervision", "pretrain_seconds", "linear_probe_test_accuracy",
                    "knn_test_accuracy")  # The vision family's columns: keys of results.json.
  config.plot_columns = ("linear_probe_test_accuracy", "knn_test_accuracy")  # Bars of table.png.
  config.title = "test accuracy on frozen features"  # Chart title after "<dataset>, <variant>: ".
  config.lock()
  return config

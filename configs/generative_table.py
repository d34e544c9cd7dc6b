"""The generative family's table: likelihood models on binarized MNIST, in nats.

  python -m pretrain_jax.data.fetch mnist
  python -m pretrain_jax.table --config configs/generative_table.py:demo --workdir runs/generative_demo

Each row runs ``configs/<row>.py`` at this variant in ``<workdir>/<row>``, which also holds
the row's ``samples.png``. The test NLL is in nats per image, with how it was obtained
(an importance-weighted bound, exact, or AIS) and the published figure on the same protocol
where there is one; the linear probe reads each model's features.
"""

import ml_collections

from pretrain_jax.train.config import check_variant


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = ml_collections.ConfigDict()
  config.variant = check_variant(arg)  # Variant of every row's config.
  config.seed = 0  # Overrides every row config's seed.
  config.methods = ("vae", "iwae", "cvae", "rbm", "rbm_pcd")  # Rows, in order; each is configs/<name>.py.
  config.columns = ("method", "likelihood", "test_nll", "test_nll_std_error", "published_nll",
                    "published_source", "linear_probe_test_accuracy",
                    "pretrain_seconds")  # Keys of results.json.
  config.plot_columns = ("linear_probe_test_accuracy", "knn_test_accuracy")  # Bars of table.png.
  config.title = "likelihood models (features of each, linear probe)"  # Chart title after "<dataset>, <variant>: ".
  config.lock()
  return config

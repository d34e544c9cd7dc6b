"""The word-vector family's table: our four methods and gensim's, on the same tokens.

  python -m pretrain_jax.data.fetch english && python -m pretrain_jax.data.fetch word_benchmarks
  python -m pretrain_jax.table --config configs/word_vectors_table.py:full --workdir runs/word_vectors_full

Each row runs ``configs/<row>.py`` at this variant in ``<workdir>/<row>``; the gensim rows
run only when gensim is installed (``pip install -e '.[bench]'``).
"""

import ml_collections

from pretrain_jax.train.config import check_variant


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = ml_collections.ConfigDict()
  config.variant = check_variant(arg)  # Variant of every row's config.
  config.seed = 0  # Overrides every row config's seed.
  config.methods = ("gensim_cbow", "cbow", "gensim_skipgram", "skipgram", "ppmi", "fasttext",
                    "gensim_fasttext")  # Rows, in order; each is configs/<name>.py.
  config.optional_methods = ("gensim_cbow", "gensim_skipgram", "gensim_fasttext")  # Skipped without gensim.
  config.optional_module = "gensim"  # The module the optional rows need.
  config.columns = ("method", "words_per_second", "ws353_spearman", "analogy_semantic",
                    "analogy_syntactic", "analogy_accuracy", "oov_handled")  # Keys of results.json.
  config.plot_columns = ("analogy_semantic", "analogy_syntactic", "analogy_accuracy")  # Bars of table.png.
  config.title = "word vectors (analogy accuracy)"  # Chart title after "<dataset>, <variant>: ".
  config.lock()
  return config

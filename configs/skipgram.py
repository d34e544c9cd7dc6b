"""Skip-gram with negative sampling on the English corpora (methods/skipgram.py).

  python -m pretrain_jax.data.fetch english && python -m pretrain_jax.data.fetch word_benchmarks
  python -m pretrain_jax.main --config configs/skipgram.py:full --workdir runs/skipgram
"""

from pretrain_jax.train.config import word_vector_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = word_vector_config("skipgram", arg)
  config.lock()
  return config

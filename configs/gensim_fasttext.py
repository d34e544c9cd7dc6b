"""gensim's FastText on the same tokens and hyper-parameters (methods/gensim_reference.py).

Needs gensim (pip install -e '.[bench]').

  python -m pretrain_jax.main --config configs/gensim_fasttext.py:full --workdir runs/gensim_fasttext
"""

from pretrain_jax.train.config import gensim_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = gensim_config("fasttext", arg)
  config.lock()
  return config

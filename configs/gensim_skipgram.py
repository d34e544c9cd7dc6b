"""gensim's Word2Vec skipgram on the same tokens and hyper-parameters (methods/gensim_reference.py).

Needs gensim (pip install -e '.[bench]').

  python -m pretrain_jax.main --config configs/gensim_skipgram.py:full --workdir runs/gensim_skipgram
"""

import ml_collections

from pretrain_jax.train.config import word_vector_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = word_vector_config("gensim_reference", arg)
  config.gensim = ml_collections.ConfigDict()
  config.gensim.model = "skipgram"  # gensim model: cbow, skipgram (Word2Vec) or fasttext (FastText).
  config.gensim.workers = 2  # gensim worker threads (one per core of the 2-core CPU).
  config.lock()
  return config

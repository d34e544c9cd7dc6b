"""gensim's FastText on the same tokens and hyper-parameters (methods/gensim_reference.py).

Needs gensim (pip install -e '.[bench]').

  python -m pretrain_jax.main --config configs/gensim_fasttext.py:full --workdir runs/gensim_fasttext
"""

import ml_collections

from pretrain_jax.train.config import word_vector_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = word_vector_config("gensim_reference", arg)
  config.gensim = ml_collections.ConfigDict()
  config.gensim.model = "fasttext"  # gensim model: cbow, skipgram (Word2Vec) or fasttext (FastText).
  config.gensim.workers = 2  # gensim worker threads (one per core of the 2-core CPU).
  # The same subword settings as configs/fasttext.py.
  config.fasttext = ml_collections.ConfigDict()
  config.fasttext.architecture = "skipgram"  # sg=1, as in configs/fasttext.py.
  config.fasttext.min_n = 3  # Shortest character n-gram.
  config.fasttext.max_n = 6  # Longest character n-gram.
  config.fasttext.bucket = {"smoke": 20_000, "demo": 200_000, "full": 200_000}[config.variant]  # Hash buckets.
  config.lock()
  return config

"""fastText subword vectors on the English corpora (methods/fasttext.py).

  python -m pretrain_jax.main --config configs/fasttext.py:full --workdir runs/fasttext
  python -m pretrain_jax.main --config configs/fasttext.py:full --config.fasttext.subwords=bpe \
      --workdir runs/fasttext_bpe
"""

from pretrain_jax.train.config import fasttext_section, word_vector_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = word_vector_config("fasttext", arg)
  config.fasttext = fasttext_section(config.variant)  # Subwords (train/config.py, shared with gensim's row).
  config.eval.oov_words = ("kingship", "seafarers", "presidentially", "unfriendliness")  # Unseen words queried.
  config.lock()
  return config

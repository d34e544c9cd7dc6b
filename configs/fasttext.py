"""fastText subword vectors on the English corpora (methods/fasttext.py).

  python -m pretrain_jax.main --config configs/fasttext.py:full --workdir runs/fasttext
  python -m pretrain_jax.main --config configs/fasttext.py:full --config.fasttext.subwords=bpe \
      --workdir runs/fasttext_bpe
"""

import ml_collections

from pretrain_jax.train.config import word_vector_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = word_vector_config("fasttext", arg)
  pick = lambda smoke, demo, full: {"smoke": smoke, "demo": demo, "full": full}[config.variant]  # noqa: E731
  config.fasttext = ml_collections.ConfigDict()
  config.fasttext.subwords = "ngrams"  # "ngrams" (hashed character n-grams + the word) or "bpe" (BPE pieces).
  config.fasttext.architecture = "skipgram"  # "skipgram" (Bojanowski et al. 2017) or "cbow".
  config.fasttext.min_n = 3  # Shortest character n-gram of <word>.
  config.fasttext.max_n = 6  # Longest character n-gram of <word>.
  config.fasttext.bucket = pick(20_000, 200_000, 200_000)  # Hash buckets of the n-grams (input rows beyond V).
  config.fasttext.max_subwords = 40  # Rows per word at most (the word, then n-grams shortest first); 0 = all.
  config.fasttext.bpe_vocab_size = 8_000  # BPE tokenizer size for subwords = "bpe".
  config.eval.oov_words = ("kingship", "seafarers", "presidentially", "unfriendliness")  # Unseen words queried.
  config.lock()
  return config

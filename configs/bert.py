"""BERT: masked-LM + next-sentence pretraining of a transformer encoder (methods/bert.py).

  python -m pretrain_jax.data.fetch english
  python -m pretrain_jax.main --config configs/bert.py:demo --workdir runs/bert

Shares data, tokenizer, model sizes and optimiser with GPT (``language_model_config``),
except the demo's 600 steps (GPT's 800 took over 3 minutes on the 2-core CPU); the
``bert`` section holds the masking and sentence-pair settings of Devlin et al. 2019.
"""

import ml_collections

from pretrain_jax.train.config import language_model_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = language_model_config("bert", arg)
  for field in ("bigram_add_k", "sample_prompt_tokens", "sample_new_tokens", "temperature",
                "top_k"):
    del config.eval[field]  # GPT's baselines and sampling: BERT does not generate.
  config.train.num_steps = {"smoke": 100, "demo": 600, "full": 20000}[config.variant]  # Optimiser steps (demo: GPT's 800 took > 3 min).
  config.bert = ml_collections.ConfigDict()
  config.bert.mask_rate = 0.15  # Fraction of each row's real, non-special tokens chosen for prediction (rounded, >= 1).
  config.bert.mask_token_fraction = 0.8  # Chosen tokens replaced by [MASK].
  config.bert.random_token_fraction = 0.1  # Chosen tokens replaced by a uniform non-special id (the rest stay unchanged).
  config.bert.random_next_fraction = 0.5  # Pairs whose B segment comes from another document (is_next = 0).
  config.bert.max_sentences = 3  # Most sentences per segment (A and B each draw 1..max_sentences).
  config.lock()
  return config

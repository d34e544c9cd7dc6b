"""ELMo: forward and backward LSTM language models with a shared tied embedding (methods/elmo.py).

  python -m pretrain_jax.data.fetch english
  python -m pretrain_jax.main --config configs/elmo.py:demo --workdir runs/elmo
  python -m pretrain_jax.score --workdir runs/elmo --text-file some.txt   # the forward LM

Data, tokenizer, optimiser and eval fields are ``language_model_config``'s (the same BPE
rows as GPT, so held-out perplexities compare). The transformer-only model fields and the
text-sampling fields (ELMo does not generate) are removed; ``model.model_dim`` is D, the
embedding and projection width.
"""

import ml_collections

from pretrain_jax.train.config import language_model_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = language_model_config("elmo", arg)
  pick = lambda smoke, demo, full: {"smoke": smoke, "demo": demo, "full": full}[config.variant]
  for field in ("num_layers", "num_heads", "mlp_dim", "positional", "attention"):
    del config.model[field]  # Transformer-only; the LSTM layers are elmo.num_layers.
  for field in ("sample_prompt_tokens", "sample_new_tokens", "temperature", "top_k"):
    del config.eval[field]  # Text sampling is GPT's.
  # Left as set by language_model_config: model.model_dim (D: smoke 32, demo 64, full 256)
  # and model.max_len (T: 32, 64, 128).
  # Overrides of language_model_config for the sequential LSTM scans: the demo trains in
  # 80 s (2 min in all, data and eval included) on a quiet 2-core CPU; GPT's demo runs
  # 800 steps of 32 rows.
  config.optim.learning_rate = pick(1e-2, 1e-2, 1e-3)  # Peak AdamW rate (higher than GPT's 3e-3 for the short CPU runs).
  config.optim.warmup_steps = pick(5, 30, 500)  # Linear warm-up steps.
  config.train.batch_size = pick(16, 16, 64)  # Rows (sequences) per step.
  config.train.num_steps = pick(100, 300, 20000)  # Optimiser steps.

  config.elmo = ml_collections.ConfigDict()
  config.elmo.hidden_dim = pick(64, 128, 1024)  # LSTM state size H of each layer and direction (paper: 4096).
  config.elmo.num_layers = 2  # LSTM layers L per direction (paper: 2).
  config.elmo.residual = True  # Add a layer's input to its projected output from the second layer on (paper: 1st -> 2nd).
  config.lock()
  return config

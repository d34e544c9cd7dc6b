"""GPT: a causal transformer pretrained by next-token prediction (methods/gpt.py).

  python -m pretrain_jax.data.fetch english
  python -m pretrain_jax.main --config configs/gpt.py:demo --workdir runs/gpt
  python -m pretrain_jax.generate --workdir runs/gpt --prompt "It is a truth" --max_new_tokens 40
"""

from pretrain_jax.train.config import language_model_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = language_model_config("gpt", arg)
  config.lock()
  return config

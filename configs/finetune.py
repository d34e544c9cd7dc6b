"""Fine-tuning a pretrained language model on labelled reviews (methods/finetune.py).

  python -m pretrain_jax.data.fetch sentiment
  python -m pretrain_jax.main --config configs/finetune.py:demo \
      --config.finetune.pretrained_workdir=runs/gpt --workdir runs/gpt_rt

``eval/finetune.py`` sweeps the learning rate and epochs on validation and scores test once.
"""

from pretrain_jax.train.config import finetune_config


def get_config(arg=None):
  """``arg``: smoke | demo | full."""
  config = finetune_config(arg)
  config.lock()
  return config

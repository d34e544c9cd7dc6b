"""The optimiser every method uses: AdamW with warm-up + cosine decay and gradient clipping."""

from __future__ import annotations

import ml_collections
import optax


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """AdamW (Loshchilov & Hutter 2019) on a warm-up + cosine schedule.

  Args:
    optim: the config's ``optim`` section (learning_rate, weight_decay, warmup_steps,
      end_learning_rate, grad_clip_norm).
    num_steps: total optimiser steps; the cosine reaches ``end_learning_rate`` there.

  Returns:
    An ``optax.GradientTransformation``.
  """
  warmup = min(optim.warmup_steps, max(num_steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=optim.learning_rate, warmup_steps=warmup,
      decay_steps=max(num_steps, warmup + 1), end_value=optim.end_learning_rate)
  return optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm),
                     optax.adamw(schedule, weight_decay=optim.weight_decay))

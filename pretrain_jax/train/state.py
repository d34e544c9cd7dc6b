"""The explicit train state: one pytree, no hidden module state."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  """Everything a train step reads and writes.

  Attributes:
    step: int32 scalar, number of optimiser steps taken.
    params: the model's ``nnx.Param`` state (``nnx.split(model, nnx.Param)[1]``).
    opt_state: the optax state of ``params``.
    rng: uint32 ``[2]`` raw PRNG key of the run; step ``s`` uses
      ``jax.random.fold_in(rng, s)``, so randomness depends on (seed, step) alone and a
      resumed run draws exactly what an uninterrupted one would.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

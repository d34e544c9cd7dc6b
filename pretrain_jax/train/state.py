"""The explicit train state: one pytree, no hidden module state."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  """Everything a train step reads and writes; checkpointed and resumed as one pytree.

  Attributes:
    step: int32 scalar, number of updates taken.
    params: the model's ``nnx.Param`` state (``nnx.split(model, nnx.Param, ...)[1]``),
      what gradients and optimisers act on.
    model_state: every other variable of the model (``nnx.split(model, nnx.Param,
      ...)[2]``): BatchNorm running statistics, EMA targets held in the module, counters.
      An empty ``nnx.State`` for models that have none.
    opt_state: the optax state of ``params``; a method that alternates updates with
      several optimisers keeps a dict of their states here (its own ``make_optimizer``).
    rng: uint32 ``[2]`` raw PRNG key of the run; step ``s`` uses
      ``jax.random.fold_in(rng, s)``, so randomness depends on (seed, step) alone and a
      resumed run draws exactly what an uninterrupted one would.
    extra: a method's own persistent arrays beyond the model (``init_extra``): Gibbs
      chains of persistent contrastive divergence, EMA copies of params, running
      counts. An empty dict for methods that need none.
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array
  extra: Any

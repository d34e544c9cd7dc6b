"""Pure step functions: ``(state, batch) -> (state, metrics)``, jitted once by the loop."""

from __future__ import annotations

from typing import Any, Callable

from flax import nnx
import jax
import ml_collections
import optax

from pretrain_jax.train.state import TrainState


def make_train_step(graphdef: nnx.GraphDef, loss_fn: Callable, optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
  """Builds the pure gradient step of a method from its loss.

  The step merges the model from (graphdef, params, model_state) inside, evaluates the
  method's loss on the batch with the key ``fold_in(state.rng, state.step)``, applies one
  optimiser update to the params and keeps whatever non-Param variables the loss updated
  (BatchNorm statistics, say). It is a plain function for the caller to ``jax.jit`` with
  shardings. Methods whose math is not a gradient step on one loss (word2vec's sparse
  SGD, CD-k, alternating updates) provide ``make_train_step`` themselves.

  Args:
    graphdef: static structure of the model (``nnx.split(model, nnx.Param, ...)[0]``).
    loss_fn: the method's ``loss_fn(model, batch, key, config) -> (loss, metrics)``.
    optimizer: the optax transformation whose state is ``state.opt_state``.
    config: the run's config, closed over (static).

  Returns:
    ``train_step(state, batch) -> (state, metrics)``; ``batch`` is whatever pytree of
    arrays the method's data provides; metrics are float32 scalars: ``loss`` (the
    method's units), ``grad_norm`` (global L2 norm of the gradient) and the method's own.
  """

  def train_step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
    key = jax.random.fold_in(state.rng, state.step)

    def objective(params):
      model = nnx.merge(graphdef, params, state.model_state, copy=True)
      loss, metrics = loss_fn(model, batch, key, config)
      _, _, model_state = nnx.split(model, nnx.Param, ...)
      return loss, (metrics, model_state)

    (loss, (metrics, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
    return state.replace(step=state.step + 1, params=params, model_state=model_state,
                         opt_state=opt_state), metrics

  return train_step

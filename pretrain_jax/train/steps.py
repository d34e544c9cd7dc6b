"""Pure step functions: ``(state, batch) -> (state, metrics)``, jitted once by the loop."""

from __future__ import annotations

from typing import Any, Callable

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import optax

from pretrain_jax.train.state import TrainState


def to_float_images(images: jax.Array) -> jax.Array:
  """uint8 pixels ``[B, H, W, C]`` -> float32 in [0, 1] (float inputs pass through)."""
  if jnp.issubdtype(images.dtype, jnp.integer):
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def make_train_step(graphdef: nnx.GraphDef, loss_fn: Callable, optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Builds the pure train step of a method.

  The step merges the model from (graphdef, params) inside, evaluates the method's loss on
  the batch with the key ``fold_in(state.rng, state.step)``, and applies one optimiser
  update. It is a plain function for the caller to ``jax.jit`` with shardings.

  Args:
    graphdef: static structure of the model (``nnx.split(model, nnx.Param)[0]``).
    loss_fn: the method's ``loss_fn(model, batch, key, config) -> (loss, metrics)``.
    optimizer: the optax transformation whose state is ``state.opt_state``.
    config: the run's config, closed over (static).

  Returns:
    ``train_step(state, batch) -> (state, metrics)``; ``batch["image"]`` uint8 or float
    ``[B, H, W, C]``; metrics are float32 scalars: ``loss`` (the method's units),
    ``grad_norm`` and the method's own.
  """

  def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, Any]]:
    key = jax.random.fold_in(state.rng, state.step)
    batch = dict(batch, image=to_float_images(batch["image"]))

    def objective(params):
      return loss_fn(nnx.merge(graphdef, params), batch, key, config)

    (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_features_fn(graphdef: nnx.GraphDef, features: Callable) -> Callable[[Any, jax.Array], jax.Array]:
  """``features_fn(params, images uint8 [B, H, W, C]) -> float32 [B, D]``, pure, for jit."""

  def features_fn(params, images):
    return features(nnx.merge(graphdef, params), to_float_images(images))

  return features_fn

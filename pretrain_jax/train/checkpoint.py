"""Checkpoints: one small wrapper around Orbax's `CheckpointManager` (current API).

A checkpoint for step s is the directory `<workdir>/<s>/` with two items:

* `state`: the train state pytree (`TrainState(step, params, opt_state, rng)`), written
  with `ocp.args.StandardSave` and read back with `ocp.args.StandardRestore` against an
  abstract state whose leaves are `jax.ShapeDtypeStruct(shape, dtype, sharding=...)`, so
  every array lands directly on the devices and layout the caller asks for.
* `config`: the run's config as JSON (`ocp.args.JsonSave`), compared on resume with the
  config of the resuming run so that a checkpoint is never silently continued with a
  different model or objective.

`nnx.State` params, optax states and PRNG keys (both raw `uint32[2]` keys from
`jax.random.PRNGKey` and typed keys from `jax.random.key`) round-trip as they are; no
conversion to pure dicts is needed.

Safety: Orbax writes every step into `<s>.orbax-checkpoint-tmp` and renames it to `<s>`
only once all of it is on disk, so a save that dies half-way never replaces a good
checkpoint; unfinished directories are ignored by `latest_step` and deleted when the
next `Checkpointer` on the same directory is opened.

Source: Orbax documentation, "Checkpointing 101" and "Managing checkpoints"
(orbax.readthedocs.io, orbax-checkpoint 0.12).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

# Dotted config paths a user may change between a run and its resumption. A path also
# covers everything below it ("eval" ignores the whole eval section).
# Note: if the learning-rate schedule is derived from train.num_steps, extending a run
# changes the schedule from the resumed step on; that is the user's call.
IGNORED_CONFIG_KEYS: tuple[str, ...] = (
    "workdir",
    "train.num_steps",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "eval",
)

_WHAT_TO_DO = "use a new --workdir or restore the original config"
_MISSING = "<absent>"


class CheckpointMismatchError(ValueError):
  """A checkpoint was written by a run with a different config or model."""


def _short_repr(value: Any, limit: int = 80) -> str:
  text = repr(value)
  return text if len(text) <= limit else text[: limit - 3] + "..."


def normalize_config(config: Any) -> dict:
  """Returns `config` as the plain JSON-compatible dict that is stored with a checkpoint.

  Args:
    config: a (nested) mapping, or an `ml_collections.ConfigDict` (anything with
      `to_dict()`). Tuples become lists; values JSON cannot hold (dtypes, classes) are
      stored as their `str`.

  Returns:
    A nested dict of JSON types, equal to what `JsonRestore` reads back.

  Raises:
    ValueError: if `config` is not a mapping.

  Source: Orbax "Checkpointing 101" (JsonSave for metadata items).
  """
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise ValueError(
        f"config must be a dict or ConfigDict, got {type(config).__name__}; "
        "pass config.to_dict() or a nested dict."
    )
  return json.loads(json.dumps(dict(config), default=str))


def _is_ignored(path: str, ignored: tuple[str, ...]) -> bool:
  return any(path == key or path.startswith(key + ".") for key in ignored)


def config_difference(
    saved: Mapping, current: Mapping, ignored: tuple[str, ...] = IGNORED_CONFIG_KEYS
) -> tuple[str, Any, Any] | None:
  """Finds the first differing entry between two nested config dicts.

  Args:
    saved: nested dict read from the checkpoint.
    current: nested dict of the resuming run (already normalized with
      `normalize_config`).
    ignored: dotted paths (and everything below them) that may differ.

  Returns:
    `(dotted_key, saved_value, current_value)` for the first difference, in the key
    order of `current` followed by keys only present in `saved`; a key present on one
    side only has the value `"<absent>"` on the other. None when the configs agree.

  Source: none (project convention for resumable runs).
  """

  def walk(a: Mapping, b: Mapping, prefix: str):
    keys = list(b) + [k for k in a if k not in b]
    for key in keys:
      path = f"{prefix}{key}"
      if _is_ignored(path, ignored):
        continue
      va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
      if isinstance(va, Mapping) and isinstance(vb, Mapping):
        found = walk(va, vb, path + ".")
        if found is not None:
          return found
      elif va != vb:
        return path, va, vb
    return None

  return walk(saved, current, "")


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """Maps dotted leaf paths (Orbax's naming) to the leaf's stored array shape."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = ".".join(_key_name(k) for k in path)
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
      # Typed keys are stored as their raw key data (e.g. uint32[..., 2]).
      out[name] = tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
    else:
      out[name] = tuple(getattr(leaf, "shape", ()))
  return out


class Checkpointer:
  """Saves and restores `(state, config)` checkpoints in one directory with Orbax.

  Example:
    with Checkpointer(workdir, save_interval_steps=1000) as ckpt:
        if ckpt.latest_step() is not None:
            state, _ = ckpt.restore(abstract_state, config)
        for ...:
            state, metrics = train_step(state, batch)
            ckpt.save(step, state, config)
        ckpt.save(step, state, config, force=True)

  Source: Orbax "Managing checkpoints" (CheckpointManager with save_decision_policy
  and preservation_policy).
  """

  def __init__(
      self,
      directory: str | os.PathLike,
      *,
      save_interval_steps: int,
      max_to_keep: int = 3,
      async_save: bool = True,
  ):
    """Opens (creating if needed) the checkpoint directory.

    Args:
      directory: where step directories live; a local path or a `gs://` URL.
      save_interval_steps: `save` writes steps that are multiples of this (in train
        steps), plus any step passed with `force=True`, plus a step at which a
        preemption notice was received.
      max_to_keep: number of most recent checkpoints kept; older ones are deleted.
      async_save: if True, `save` returns once arrays are copied off the devices and
        the write to disk happens in a background thread.

    Raises:
      ValueError: if `save_interval_steps` or `max_to_keep` is below 1.
    """
    if save_interval_steps < 1:
      raise ValueError(
          f"save_interval_steps must be >= 1, got {save_interval_steps}; "
          "set train.checkpoint_every to a positive number of steps."
      )
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}.")
    directory = str(directory)
    if "://" not in directory:
      directory = os.path.abspath(os.path.expanduser(directory))
    self.directory = epath.Path(directory)
    policies = ocp.checkpoint_managers
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=policies.AnySavePolicy(
            [
                policies.FixedIntervalPolicy(save_interval_steps),
                policies.PreemptionCheckpointingPolicy(),
            ]
        ),
        preservation_policy=policies.LatestN(max_to_keep),
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,
        create=True,
    )
    # Registering the item handlers up front lets a fresh manager read the metadata
    # of "state" before anything has been saved or restored through it.
    registry = ocp.handlers.create_default_handler_registry(
        state=ocp.StandardCheckpointHandler(), config=ocp.JsonCheckpointHandler()
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, handler_registry=registry
    )

  def latest_step(self) -> int | None:
    """Returns the newest saved step, or None if there is none.

    Returns:
      A step (int) or None. Other processes' unfinished saves are never counted;
      this object's own async save in flight is (`restore` waits for it).
    """
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Returns the saved steps (as in `latest_step`), oldest first."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, config: Any, *, force: bool = False) -> bool:
    """Saves `state` and `config` as step `step` if the save policy says so.

    With `async_save=True` this returns after the arrays are copied to host memory,
    so the caller may donate or overwrite `state` right after.

    Args:
      step: train step (int) the state belongs to; used as the directory name.
      state: pytree of jax.Array (e.g. `TrainState(step, params, opt_state, rng)`).
      config: nested dict or ConfigDict of the run, stored as JSON.
      force: save even if `step` is not a multiple of `save_interval_steps`.

    Returns:
      True if a save was started; False if the policy skipped it or `step` is
      already saved.
    """
    step = int(step)
    if step in self._manager.all_steps():
      return False
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        config=ocp.args.JsonSave(normalize_config(config)),
    )
    return bool(self._manager.save(step, args=args, force=force))

  def restore(
      self, abstract_state: Any, config: Any, *, step: int | None = None
  ) -> tuple[Any, dict]:
    """Restores a checkpoint onto the shardings given by `abstract_state`.

    Args:
      abstract_state: pytree of the same structure as the saved state whose leaves
        are `jax.ShapeDtypeStruct(shape, dtype, sharding=...)` (or arrays); each
        restored array gets that leaf's dtype and sharding.
      config: nested dict or ConfigDict of the resuming run; it must equal the
        saved config except under `IGNORED_CONFIG_KEYS`.
      step: step to restore; the latest one when None.

    Returns:
      `(state, saved_config)`: the restored pytree (same structure as
      `abstract_state`) and the config dict stored with it.

    Raises:
      FileNotFoundError: if there is no checkpoint (for `step`) in the directory.
      CheckpointMismatchError: if the saved config differs outside
        `IGNORED_CONFIG_KEYS`, or the saved arrays do not match `abstract_state`
        in tree structure or shape (a checkpoint of another model).
      ValueError: if a leaf of `abstract_state` carries no sharding.
    """
    self.wait_until_finished()
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise FileNotFoundError(
            f"No checkpoint in {self.directory}; train from scratch or point "
            "--workdir at a directory holding one."
        )
      step = steps[-1]
    elif step not in steps:
      raise FileNotFoundError(
          f"No checkpoint for step {step} in {self.directory}; available steps: " f"{steps}."
      )
    for leaf in jax.tree.leaves(abstract_state):
      if getattr(leaf, "sharding", None) is None:
        raise ValueError(
            "Every leaf of abstract_state needs a sharding; build it with "
            "jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(...))."
        )
    where = f"Checkpoint at step {step} in {self.directory}"

    saved_config = self._manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
    ).config
    diff = config_difference(saved_config, normalize_config(config))
    if diff is not None:
      key, old, new = diff
      raise CheckpointMismatchError(
          f"{where} was written with {key}={_short_repr(old)} but this run has "
          f"{key}={_short_repr(new)}; {_WHAT_TO_DO}."
      )

    metadata = self._manager.item_metadata(step).state
    on_disk = _flat_shapes(getattr(metadata, "tree", metadata))
    wanted = _flat_shapes(abstract_state)
    for name, shape in wanted.items():
      if name not in on_disk:
        raise CheckpointMismatchError(
            f"{where} holds a different model: {name} is in this run's state "
            f"but not in the checkpoint; {_WHAT_TO_DO}."
        )
      if on_disk[name] != shape:
        raise CheckpointMismatchError(
            f"{where} holds a different model: {name} has shape "
            f"{on_disk[name]} on disk but {shape} in this run; {_WHAT_TO_DO}."
        )
    extra = [name for name in on_disk if name not in wanted]
    if extra:
      raise CheckpointMismatchError(
          f"{where} holds a different model: {extra[0]} is in the checkpoint but "
          f"not in this run's state; {_WHAT_TO_DO}."
      )

    try:
      restored = self._manager.restore(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)),
      )
    except ValueError as error:  # any remaining structure mismatch found by Orbax
      first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
      raise CheckpointMismatchError(
          f"{where} does not match this run's state ({first_line}); {_WHAT_TO_DO}."
      ) from None
    return restored.state, saved_config

  def wait_until_finished(self) -> None:
    """Blocks until every started save is fully on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves, then releases Orbax's resources."""
    self.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

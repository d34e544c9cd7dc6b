"""Checkpoints: one small wrapper around Orbax's `CheckpointManager` (current API).

A checkpoint for step s is the directory `<workdir>/<s>/` with three items:

* `state`: the train state pytree (`TrainState(step, params, opt_state, rng)`), written
  with `ocp.args.StandardSave` and read back with `ocp.args.StandardRestore` against an
  abstract state whose leaves are `jax.ShapeDtypeStruct(shape, dtype, sharding=...)`, so
  every array lands directly on the devices and layout the caller asks for.
* `config`: the run's config as JSON (`ocp.args.JsonSave`), compared on resume with the
  config of the resuming run so that a checkpoint is never silently continued with a
  different model or objective.
* `fingerprint`: JSON (`ocp.args.JsonSave`) holding, for every leaf of `state`, its dtype,
  shape and the sha256 of dtype, shape and C-order host bytes (typed PRNG keys through
  `jax.random.key_data`), plus the sha256 of the stored config.

`nnx.State` params, optax states and PRNG keys (both raw `uint32[2]` keys from
`jax.random.PRNGKey` and typed keys from `jax.random.key`) round-trip as they are; no
conversion to pure dicts is needed.

Safety: Orbax writes every step into `<s>.orbax-checkpoint-tmp` and renames it to `<s>`
only once all of it is on disk, so a save that dies half-way never replaces a good
checkpoint; unfinished directories are ignored by `latest_step` and deleted when the
next `Checkpointer` on the same directory is opened.

Verification: `restore` recomputes the fingerprint of the arrays it read and compares it
with the stored one, because Orbax/TensorStore do not checksum array data (a flipped byte
in a data file under `<s>/state/` restores as a different number, silently). A step whose
data differs from its fingerprint is *corrupt*; one that Orbax cannot read (a missing
`_METADATA`, `manifest.ocdbt` or `state/`, garbage JSON, a truncated file, anything that
raises) is *unreadable*. Either way `restore()` reports one line through `log_fn` and
falls back to the newest step that verifies; `restore(step=k)` raises
`CheckpointCorruptError` instead. Nothing on disk is ever deleted or renamed by a restore.
A config or model that differs from the resuming run's is not corruption: it raises
`CheckpointMismatchError` at once, without falling back.

Checkpoints written before verification existed (no `fingerprint` item, and a readable
`<s>/_CHECKPOINT_METADATA` that lists none) are restored unverified, with one line through
`log_fn` saying so: refusing them would strand every run started before this change,
while read errors in them are still caught. A step whose `_CHECKPOINT_METADATA` lists a
`fingerprint` item (or cannot be read) but has none on disk is unreadable.

Source: Orbax documentation, "Checkpointing 101" and "Managing checkpoints"
(orbax.readthedocs.io, orbax-checkpoint 0.12).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
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
    "model.attention",  # How attention is computed, not what: a run may resume on a GPU with cudnn.
)

_WHAT_TO_DO = "use a new --workdir or restore the original config"
_MISSING = "<absent>"


class CheckpointMismatchError(ValueError):
  """A checkpoint was written by a run with a different config or model."""


class CheckpointCorruptError(ValueError):
  """A checkpoint (or every checkpoint) failed verification or could not be read."""


class _StepFailure(Exception):
  """Internal: a step is "corrupt" or "unreadable" (`kind`) because of `detail` (one line)."""

  def __init__(self, kind: str, detail: str):
    super().__init__(f"{kind}: {detail}")
    self.kind, self.detail = kind, detail


def _print_to_stderr(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


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


def _leaf_name(path: tuple) -> str:
  return ".".join(_key_name(k) for k in path)


def _is_prng_key(leaf: Any) -> bool:
  dtype = getattr(leaf, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """Maps dotted leaf paths (Orbax's naming) to the leaf's stored array shape."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = _leaf_name(path)
    if _is_prng_key(leaf):
      # Typed keys are stored as their raw key data (e.g. uint32[..., 2]).
      out[name] = tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
    else:
      out[name] = tuple(getattr(leaf, "shape", ()))
  return out


_FINGERPRINT_FORMAT = "pretrain_jax sha256 per leaf, v1"
_STEP_METADATA = "_CHECKPOINT_METADATA"  # Orbax's per-step metadata file (item handlers).
# absl status codes that TensorStore puts at the start of its error messages.
_STATUS_CODE = re.compile(
    r"\b(CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|"
    r"PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE|"
    r"UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED): "
)
_LOCAL_FILE = re.compile(r'local file "([^"]*[^/"])"')  # files, not directories
_KEY_READ = re.compile(r'(?:Error reading|Metadata at) "([^"]+)"')


def _sha256(host: Any) -> str:
  """Hex sha256 of a host array's dtype name, shape and C-order bytes."""
  host = np.asarray(host)
  digest = hashlib.sha256(f"{host.dtype.name}{list(host.shape)}".encode())
  digest.update(np.ascontiguousarray(host).reshape(-1).view(np.uint8))
  return digest.hexdigest()


def _config_sha256(config: Mapping) -> str:
  return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _index_key(index: tuple, shape: tuple[int, ...]) -> str:
  """Writes a shard's index (a tuple of slices into `shape`) as `"start:stop,..."`."""
  return ",".join(
      f"{s.start or 0}:{dim if s.stop is None else s.stop}" for s, dim in zip(index, shape)
  )


def _index_slices(key: str) -> tuple[slice, ...]:
  return tuple(slice(*map(int, part.split(":"))) for part in key.split(",") if part)


def _data_leaves(tree: Any) -> list[tuple[str, Any]]:
  """Returns `(dotted name, leaf)` pairs, typed PRNG keys replaced by their key data.

  Every device-to-host copy is started before the first one is waited on.
  """
  out = [
      (_leaf_name(path), jax.random.key_data(leaf) if _is_prng_key(leaf) else leaf)
      for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  ]
  for _, leaf in out:
    if isinstance(leaf, jax.Array) and leaf.is_fully_addressable:
      leaf.copy_to_host_async()
  return out


def _fingerprint(state: Any, config: Mapping) -> dict:
  """Computes the `fingerprint` item for `state` (on host copies, before returning).

  Args:
    state: pytree of jax.Array (or numpy arrays); typed PRNG keys are fingerprinted
      through `jax.random.key_data`.
    config: the normalized config dict stored next to `state`.

  Returns:
    `{"format", "config_sha256", "leaves": {dotted name: entry}}` where an entry is
    `{"dtype", "shape", "sha256"}` (sha256 of dtype name, shape and C-order bytes of the
    whole array). A leaf that is not fully addressable (it spans devices of other
    processes) gets `{"dtype", "shape", "shards": {"start:stop,...": sha256}}` over the
    distinct shards this process holds instead; in a multi-process run only the primary
    process writes the item, so only its shards are recorded.

  Source: none (project convention; Orbax/TensorStore do not checksum array data).
  """
  leaves = {}
  for name, leaf in _data_leaves(state):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      shards = {}
      for shard in leaf.addressable_shards:
        key = _index_key(shard.index, leaf.shape)
        if key not in shards:
          shards[key] = _sha256(np.asarray(shard.data))
      entry = {"dtype": leaf.dtype.name, "shape": list(leaf.shape), "shards": shards}
    else:
      host = np.asarray(leaf)
      entry = {"dtype": host.dtype.name, "shape": list(host.shape), "sha256": _sha256(host)}
    leaves[name] = entry
  return {"format": _FINGERPRINT_FORMAT, "config_sha256": _config_sha256(config), "leaves": leaves}


def _fingerprint_leaves(fingerprint: Any) -> dict[str, dict]:
  """Returns `fingerprint["leaves"]` after checking its layout.

  Raises:
    ValueError, TypeError, KeyError: the item is not a fingerprint written by `_fingerprint`.
  """
  if not isinstance(fingerprint, Mapping) or fingerprint.get("format") != _FINGERPRINT_FORMAT:
    raise ValueError("not a fingerprint")
  leaves = fingerprint["leaves"]
  for entry in leaves.values():
    jnp.dtype(entry["dtype"])
    if [int(d) for d in entry["shape"]] != entry["shape"]:
      raise ValueError("shape")
    if not isinstance(entry.get("sha256"), str) and not isinstance(entry.get("shards"), Mapping):
      raise ValueError("digest")
  return dict(leaves)


def _first_mismatch(state: Any, leaves: Mapping[str, Mapping]) -> str | None:
  """Returns the dotted name of the first leaf of `state` that differs from `leaves`.

  A leaf recorded whole is compared whole when this process holds all of it (always for
  replicated state); restored onto devices of other processes it cannot be seen whole
  here and is not compared. A leaf recorded shard by shard is compared on every recorded
  shard this process can see.
  """
  for name, leaf in _data_leaves(state):
    entry = leaves[name]
    whole = not isinstance(leaf, jax.Array) or leaf.is_fully_addressable
    host = np.asarray(leaf) if whole else None
    if "sha256" in entry:
      if whole and _sha256(host) != entry["sha256"]:
        return name
      continue
    if whole:
      seen = {key: host[_index_slices(key)] for key in entry["shards"]}
    else:
      seen = {_index_key(s.index, leaf.shape): s.data for s in leaf.addressable_shards}
    for key, digest in entry["shards"].items():
      if key in seen and _sha256(np.asarray(seen[key])) != digest:
        return name
  return None


def _drop_closed_loop_errors(previous: Callable[[Any], None]) -> Callable[[Any], None]:
  """Wraps `sys.unraisablehook` so that TensorStore's late callbacks print nothing.

  When Orbax's read of a damaged checkpoint fails, Orbax closes its asyncio event loop
  while TensorStore is still finishing the other reads it had started; each of those then
  raises `RuntimeError("Event loop is closed")` on a TensorStore thread, which Python
  prints as a traceback through `sys.unraisablehook`. The returned hook drops exactly
  those errors and passes everything else to `previous`.
  """

  def hook(unraisable: Any) -> None:
    error = unraisable.exc_value
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
      return
    previous(unraisable)

  return hook


def _error_text(error: BaseException | None) -> str:
  """The messages of `error` and of the exceptions it was raised from, joined."""
  parts, seen = [], set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    parts.append(str(error))
    error = error.__cause__ or error.__context__
  return "\n".join(parts)


class Checkpointer:
  """Saves and restores verified `(state, config)` checkpoints in one directory with Orbax.

  `restore` checks every checkpoint against the fingerprint written with it and falls
  back to the newest one that verifies (see the module docstring).

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
      log_fn: Callable[[str], None] = _print_to_stderr,
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
      log_fn: called with one line (str, no newline) when `restore` skips a checkpoint
        that failed verification, restores one that predates verification, or `save`
        declines to overwrite a step found corrupt; prints to stderr by default.

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
    self._log_fn = log_fn
    self._failed: dict[int, str] = {}  # step -> why it failed verification in `restore`.
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
        state=ocp.StandardCheckpointHandler(),
        config=ocp.JsonCheckpointHandler(),
        fingerprint=ocp.JsonCheckpointHandler(),
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

  def saved_config(self) -> tuple[int, dict]:
    """The config stored with the newest checkpoint whose config item reads, for reloading
    a trained run without its original config (``train.loop.restore_trained``).

    Returns:
      `(step, config dict)`. The state itself is verified later, by `restore`.

    Raises:
      FileNotFoundError: no checkpoint in the directory.
      CheckpointCorruptError: no step's config can be read.
    """
    self.wait_until_finished()
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"No checkpoint in {self.directory}; train a run there first.")
    failures = []
    for step in reversed(steps):
      try:
        restored = self._manager.restore(
            step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return step, dict(restored.config)
      except Exception as error:  # pylint: disable=broad-except
        failures.append(f"step {step}: {(_error_text(error).splitlines() or ['unreadable'])[0]}")
    raise CheckpointCorruptError(f"no checkpoint config in {self.directory} can be read "
                                 f"({'; '.join(failures)}).")

  def save(self, step: int, state: Any, config: Any, *, force: bool = False) -> bool:
    """Saves `state`, `config` and their fingerprint as step `step` if the policy says so.

    The fingerprint (module docstring) is computed here, from host copies of the arrays,
    before this returns; with `async_save=True` the write to disk then goes on in the
    background, so the caller may donate or overwrite `state` right after. Computing it
    costs one device-to-host copy and one sha256 pass over the state (about 2 GB/s per
    core), only for steps that are actually saved.

    Args:
      step: train step (int) the state belongs to; used as the directory name.
      state: pytree of jax.Array (e.g. `TrainState(step, params, opt_state, rng)`).
      config: nested dict or ConfigDict of the run, stored as JSON.
      force: save even if `step` is not a multiple of `save_interval_steps`.

    Returns:
      True if a save was started; False if the policy skipped it or `step` is
      already saved. A step already on disk is never overwritten, even one that
      `restore` found corrupt (that is reported through `log_fn`; move it aside to
      let it be written again).

    Source: Orbax "Managing checkpoints" (`CheckpointManager.should_save`, `save` with
    `ocp.args.Composite`).
    """
    step = int(step)
    if step in self._manager.all_steps():
      if step in self._failed:
        self._log_fn(
            f"step {step} not saved: {self._failed[step]}; the copy on disk is kept "
            f"(move {self._step_dir(step)} aside to let it be saved again)"
        )
      return False
    if not force and not self._manager.should_save(step):
      return False
    config = normalize_config(config)
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        config=ocp.args.JsonSave(config),
        fingerprint=ocp.args.JsonSave(_fingerprint(state, config)),
    )
    # `should_save` has just been asked (it may count a preemption notice): don't ask again.
    return bool(self._manager.save(step, args=args, force=True))

  def restore(
      self,
      abstract_state: Any,
      config: Any,
      *,
      step: int | None = None,
      ignored_config_keys: tuple[str, ...] = IGNORED_CONFIG_KEYS,
  ) -> tuple[Any, dict]:
    """Restores a verified checkpoint onto the shardings given by `abstract_state`.

    With `step=None` the steps are tried newest first: a step that is corrupt or
    unreadable is reported in one line through `log_fn` (naming the step, the file or
    item at fault, and the step tried next) and the next older one is tried. A step
    written before verification existed is restored unverified, saying so through
    `log_fn`. Nothing on disk is deleted or renamed.

    Args:
      abstract_state: pytree of the same structure as the saved state whose leaves
        are `jax.ShapeDtypeStruct(shape, dtype, sharding=...)` (or arrays); each
        restored array gets that leaf's dtype and sharding.
      config: nested dict or ConfigDict of the resuming run; it must equal the
        saved config except under `IGNORED_CONFIG_KEYS`.
      step: step to restore, with no fallback; the newest good one when None.
      ignored_config_keys: dotted config paths (and everything below them) that may
        differ from the saved config; `IGNORED_CONFIG_KEYS` by default.

    Returns:
      `(state, saved_config)`: the restored pytree (same structure as
      `abstract_state`) and the config dict stored with it.

    Raises:
      FileNotFoundError: if there is no checkpoint (for `step`) in the directory.
      CheckpointMismatchError: if the saved config differs outside
        `IGNORED_CONFIG_KEYS`, or the saved arrays do not match `abstract_state`
        in tree structure or shape (a checkpoint of another model). Raised at the
        first step read, without falling back.
      CheckpointCorruptError: if `step` is given and fails verification, with the
        message `checkpoint step S is corrupt|unreadable: DETAIL; restore another step
        (available: [...]) or pass step=None to fall back to the newest good one`; or if
        `step` is None and every step fails, with the message `every checkpoint in DIR
        failed verification (step S kind: DETAIL; ...); move DIR aside and re-run to
        start from scratch`.
      ValueError: if a leaf of `abstract_state` carries no sharding.

    Source: Orbax "Checkpointing 101" (restore against an abstract state with
    shardings) and "Managing checkpoints".
    """
    self.wait_until_finished()
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise FileNotFoundError(
            f"No checkpoint in {self.directory}; train from scratch or point "
            "--workdir at a directory holding one."
        )
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
    candidates = [step] if step is not None else steps[::-1]
    failures = []
    # A failed read leaves TensorStore callbacks that fire (and would print tracebacks) on
    # other threads around the moment Orbax raises: the filter is installed before
    # reading and, once a read has failed, kept for the rest of the process.
    previous_hook = sys.unraisablehook
    sys.unraisablehook = quiet_hook = _drop_closed_loop_errors(previous_hook)
    try:
      for i, candidate in enumerate(candidates):
        try:
          return self._restore_step(candidate, abstract_state, config, ignored_config_keys)
        except _StepFailure as failure:
          line = f"checkpoint step {candidate} is {failure.kind}: {failure.detail}"
          self._failed[candidate] = line
          failures.append(f"step {candidate} {failure.kind}: {failure.detail}")
        if step is not None:
          raise CheckpointCorruptError(
              f"{line}; restore another step (available: {steps}) or pass step=None to "
              "fall back to the newest good one"
          )
        if i + 1 < len(candidates):
          self._log_fn(f"{line}; falling back to step {candidates[i + 1]}")
      raise CheckpointCorruptError(
          f"every checkpoint in {self.directory} failed verification "
          f"({'; '.join(failures)}); move {self.directory} aside and re-run to start from "
          "scratch"
      )
    finally:
      if not failures and sys.unraisablehook is quiet_hook:
        sys.unraisablehook = previous_hook

  def _step_dir(self, step: int) -> epath.Path:
    return self.directory / str(step)  # Orbax's default step_name_format.

  def _restore_step(
      self, step: int, abstract_state: Any, config: Any, ignored: tuple[str, ...]
  ) -> tuple[Any, dict]:
    """Reads and verifies one step (see `restore`); raises `_StepFailure` if it is bad."""
    where = f"Checkpoint at step {step} in {self.directory}"
    step_dir = self._step_dir(step)

    def read(item: str, restore_args: Any) -> Any:
      return getattr(
          self._manager.restore(step, args=ocp.args.Composite(**{item: restore_args})), item
      )

    try:
      saved_config = read("config", ocp.args.JsonRestore())
    except Exception as error:  # pylint: disable=broad-except
      raise self._read_failure(step, "config", error) from None
    try:
      fingerprint = read("fingerprint", ocp.args.JsonRestore())
    except Exception as error:  # pylint: disable=broad-except
      if (step_dir / "fingerprint").exists() or not self._predates_verification(step):
        raise self._read_failure(step, "fingerprint", error) from None
      fingerprint = None
    leaves = None
    if fingerprint is not None:
      try:
        leaves = _fingerprint_leaves(fingerprint)
      except (KeyError, TypeError, ValueError, AttributeError):
        raise _StepFailure("corrupt", f"{step_dir / 'fingerprint'} is malformed") from None
      if fingerprint.get("config_sha256") != _config_sha256(saved_config):
        raise _StepFailure(
            "corrupt", f"{step_dir / 'config'} does not match its save-time fingerprint"
        )

    diff = config_difference(saved_config, normalize_config(config), ignored)
    if diff is not None:
      key, old, new = diff
      raise CheckpointMismatchError(
          f"{where} was written with {key}={_short_repr(old)} but this run has "
          f"{key}={_short_repr(new)}; {_WHAT_TO_DO}."
      )

    metadata_file = step_dir / "state" / "_METADATA"
    try:
      metadata = self._manager.item_metadata(step).state
      on_disk = None if metadata is None else _flat_shapes(getattr(metadata, "tree", metadata))
    except Exception as error:  # pylint: disable=broad-except
      raise self._read_failure(step, "state", error, hint=metadata_file) from None
    if on_disk is None:  # Orbax returns no metadata when `_METADATA` is missing.
      raise self._read_failure(step, "state", None, hint=metadata_file)
    if leaves is not None:
      recorded = {name: tuple(entry["shape"]) for name, entry in leaves.items()}
      if recorded != on_disk:
        name = next(n for n in [*recorded, *on_disk] if recorded.get(n) != on_disk.get(n))
        raise _StepFailure(
            "corrupt", f"{metadata_file} disagrees with the save-time fingerprint on {name}"
        )
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

    def as_saved(path: tuple, leaf: Any) -> jax.ShapeDtypeStruct:
      # Read in the saved dtype, so that the bytes hashed are the bytes saved; cast below.
      keep = leaves is None or _is_prng_key(leaf)
      dtype = leaf.dtype if keep else jnp.dtype(leaves[_leaf_name(path)]["dtype"])
      return jax.ShapeDtypeStruct(leaf.shape, dtype, sharding=leaf.sharding)

    read_as = jax.tree_util.tree_map_with_path(as_saved, abstract_state)
    try:
      state = read("state", ocp.args.StandardRestore(read_as))
    except Exception as error:  # pylint: disable=broad-except
      failure = self._read_failure(step, "state", error, structure_ok=True)
      if failure.kind == "structure":  # any remaining structure mismatch found by Orbax
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointMismatchError(
            f"{where} does not match this run's state ({first_line}); {_WHAT_TO_DO}."
        ) from None
      raise failure from None

    if leaves is None:
      self._log_fn(
          f"checkpoint step {step} predates verification (no fingerprint item in "
          f"{step_dir}); restored it unverified"
      )
    else:
      name = _first_mismatch(state, leaves)
      if name is not None:
        raise _StepFailure("corrupt", f"{step_dir / 'state'} fingerprint mismatch for {name}")
    state = jax.tree.map(
        lambda x, want: x if x.dtype == want.dtype else x.astype(want.dtype),
        state,
        abstract_state,
    )
    return state, saved_config

  def _predates_verification(self, step: int) -> bool:
    """Whether `step`'s intact `_CHECKPOINT_METADATA` lists no `fingerprint` item."""
    try:
      metadata = json.loads((self._step_dir(step) / _STEP_METADATA).read_text())
    except (OSError, ValueError):
      return False
    handlers = metadata.get("item_handlers") if isinstance(metadata, dict) else None
    return isinstance(handlers, dict) and "fingerprint" not in handlers

  def _read_failure(
      self,
      step: int,
      item: str,
      error: BaseException | None,
      hint: epath.Path | None = None,
      structure_ok: bool = False,
  ) -> _StepFailure:
    """Says in one line which file made reading `item` of `step` fail.

    Args:
      step: the step read.
      item: "state", "config" or "fingerprint".
      error: what Orbax/TensorStore raised (None if it returned nothing).
      hint: the file to blame if nothing more precise is found.
      structure_ok: if True, a plain `ValueError` that points at no damaged file is a
        tree-structure mismatch found by Orbax: kind "structure", not "unreadable".

    Returns:
      An "unreadable" `_StepFailure` naming the first missing expected path, an invalid
      JSON file, the file named in a TensorStore error, or `hint` / the item directory
      (with TensorStore's status code and the key it was reading, if any).
    """
    item_dir = self._step_dir(step) / item
    if item == "state":
      expected = [item_dir, item_dir / "_METADATA"]
      if any(item_dir.glob("ocdbt.process_*")):
        expected.append(item_dir / "manifest.ocdbt")
      json_files = [item_dir / "_METADATA", item_dir / "_sharding"]
      json_files += sorted((item_dir / "array_metadatas").glob("*"))
    else:
      expected = [item_dir, item_dir / "metadata"]
      json_files = [item_dir / "metadata"]
    for path in [self._step_dir(step), *expected]:
      if not path.exists():
        return _StepFailure("unreadable", f"{path} missing")
    for path in json_files:
      try:
        if path.exists():
          json.loads(path.read_text())
      except (OSError, ValueError):
        return _StepFailure("unreadable", f"{path} is not valid JSON")
    text = _error_text(error)
    status = _STATUS_CODE.search(text)
    if structure_ok and type(error) is ValueError and status is None:
      return _StepFailure("structure", text)
    if status:
      why = status.group(1)
    else:
      why = type(error).__name__ if error is not None else "no metadata returned"
    files = _LOCAL_FILE.findall(text)
    if files:
      return _StepFailure("unreadable", f"{files[-1]} could not be read ({why})")
    key = _KEY_READ.search(text)
    if key:
      why += f" reading {key.group(1)}"
    return _StepFailure("unreadable", f"{hint or item_dir} could not be read ({why})")

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

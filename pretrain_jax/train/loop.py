"""``train_and_evaluate(config, workdir)``: pretrain one method, checkpoint, evaluate.

The loop knows nothing of images or text. It asks ``pretrain_jax.methods`` for the
module named ``config.method`` and the data layer for the run's splits (pytrees of
equal-length arrays), then either fits the method in closed form (``fit``) or trains its
model for ``train.num_steps`` steps (``make_model`` with ``loss_fn`` or its own
``make_train_step``), and hands the result to the method's own ``evaluate``. A run is
resumable: the same call on the same workdir continues from the newest good checkpoint,
drawing the same batches and keys as an uninterrupted run, and ends with the same numbers.

Every check that can fail runs before step 0 and before the workdir is created: the
finished-run guard, the config's intervals and every ``*batch_size`` against the device
count, the data's presence and integrity, the model's construction, and a test write.

Workdir layout (local or ``gs://``, through ``etils.epath``)::

  checkpoints/<step>/   Orbax checkpoints (state + config + fingerprint)
  metrics.jsonl         one JSON object per logged step
  nonfinite.json        present only after a non-finite stop (lets optim.* change on resume)
  results.json          written last, atomically: its presence marks a finished run
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import Any, Callable

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from pretrain_jax import methods
from pretrain_jax.data import datasets
from pretrain_jax.data import iterators
from pretrain_jax.train import sharding
from pretrain_jax.train.checkpoint import IGNORED_CONFIG_KEYS, Checkpointer, normalize_config
from pretrain_jax.train.metrics import MetricsWriter, NonFiniteLossError, check_finite
from pretrain_jax.train.optimizers import make_optimizer
from pretrain_jax.train.state import TrainState
from pretrain_jax.train.steps import make_train_step

RESULTS_FILE = "results.json"
NONFINITE_FILE = "nonfinite.json"
# After a non-finite stop, the advice is to resume with a lower learning rate: the whole
# optim section may then differ from the checkpoint's.
IGNORED_AFTER_NONFINITE = ("optim",)


class FinishedRunError(ValueError):
  """The workdir already holds a finished run; nothing is overwritten."""


class ResumeError(ValueError):
  """The workdir's checkpoints cannot be continued by this config (e.g. fewer steps)."""


class WorkdirError(OSError):
  """The workdir cannot be used (a file, read-only, full); nothing was written."""


def as_path(path: str | os.PathLike) -> epath.Path:
  """``epath.Path`` of a workdir: URLs (``gs://…``) as they are, local paths absolute."""
  text = os.fspath(path)
  if "://" not in text:
    text = os.path.abspath(os.path.expanduser(text))
  return epath.Path(text)


def to_json(payload: Any) -> str:
  """Strict JSON text of ``payload``: NaN and ±Inf become ``null``, keys sorted.

  Raises:
    TypeError: a value JSON cannot hold.
  """
  def clean(value):
    if isinstance(value, dict):
      return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
      return [clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
      return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
      return int(value)
    return value

  return json.dumps(clean(payload), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json_atomically(path: epath.Path, payload: Any) -> None:
  """Writes strict JSON (``to_json``) to ``path`` via a temporary file and a rename.

  Only process 0 writes: a multi-host run shares one workdir.
  """
  if jax.process_index() != 0:
    return
  path = epath.Path(path)
  tmp = path.parent / (path.name + ".tmp")
  tmp.write_text(to_json(payload))
  tmp.replace(path)


class Pretrainer:
  """The pieces of an iterative method's run that the loop, notebooks and tests share.

  Builds the model structure, the optimiser, the mesh and the state shardings for a
  config, without touching the disk.

  Args:
    config: a locked experiment config (``configs/<method>.py``).
    info: the dataset's description passed to ``make_model``; default the one named
      by ``config.data.name``.
    mesh: the ``("data",)`` mesh; default the method's ``make_mesh()`` if it has one,
      else every device of every process.
    num_steps: steps of the run; default ``num_steps_for(config, None)`` (the config's
      ``train.num_steps``; runs counted in epochs pass ``num_steps_for(config, N)``).

  Attributes:
    num_steps: the run's number of steps (what the optimiser's schedule spans).

  Raises:
    ValueError: the method is fitted in closed form (no ``make_model``), or its model
      rejects the config.
  """

  def __init__(self, config: ml_collections.ConfigDict, info: Any = None,
               mesh: jax.sharding.Mesh | None = None, num_steps: int | None = None):
    self.config = config
    self.num_steps = num_steps_for(config, None) if num_steps is None else int(num_steps)
    self.method = methods.get_method(config.method)
    if not hasattr(self.method, "make_model"):
      raise ValueError(f"{config.method} is fitted in closed form: it has no network to pretrain.")
    self.info = info if info is not None else datasets.get_info(config.data.name)
    if mesh is None:  # A method may pick its own devices (word vectors: one).
      mesh = self.method.make_mesh() if hasattr(self.method, "make_mesh") else sharding.make_mesh()
    self.mesh = mesh
    if hasattr(self.method, "make_optimizer"):
      self.optimizer = self.method.make_optimizer(config, self.num_steps)
    else:
      self.optimizer = make_optimizer(config.optim, self.num_steps)
    abstract_model = nnx.eval_shape(lambda: self.make_model(jax.random.PRNGKey(0)))
    self.graphdef, _, _ = nnx.split(abstract_model, nnx.Param, ...)
    self.abstract_state = jax.eval_shape(self._init, config.seed)
    self.state_sharding = sharding.replicate_tree(self.abstract_state, self.mesh)
    self._mapped: dict[Callable, Callable] = {}

  def checkpoint_config(self) -> dict[str, Any]:
    """The config stored with (and checked against) every checkpoint: the run's config plus
    ``data_fingerprint`` when the data layer or method gives ``info.fingerprint`` (the
    vocabulary or tokenizer a run was trained with), so a resume on other words is refused."""
    stored = self.config.to_dict()
    fingerprint = getattr(self.info, "fingerprint", None)
    if fingerprint is not None:
      stored["data_fingerprint"] = fingerprint
    return stored

  def make_model(self, key: jax.Array) -> nnx.Module:
    """The method's model initialised from ``key``."""
    return self.method.make_model(self.config, self.info, rngs=nnx.Rngs(params=key))

  def _init(self, seed: int) -> TrainState:
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    model = self.make_model(init_key)
    _, params, model_state = nnx.split(model, nnx.Param, ...)
    extra = {}
    if hasattr(self.method, "init_extra"):
      extra = self.method.init_extra(self.config, model, jax.random.fold_in(init_key, 1))
    if isinstance(self.optimizer, optax.GradientTransformation):
      opt_state = self.optimizer.init(params)
    else:  # Several optimisers (alternating updates): one state each.
      opt_state = {name: opt.init(params) for name, opt in self.optimizer.items()}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=opt_state, rng=train_key, extra=extra)

  def init_state(self) -> TrainState:
    """A fresh state, created directly with its (replicated) shardings, then warm-started by
    the method's ``warm_start(run, state)`` if it has one (fine-tuning: pretrained weights)."""
    init = jax.jit(lambda: self._init(self.config.seed), out_shardings=self.state_sharding)
    state = init()
    if hasattr(self.method, "warm_start"):
      state = jax.device_put(self.method.warm_start(self, state), self.state_sharding)
    return state

  def abstract_state_with_shardings(self) -> TrainState:
    """``jax.ShapeDtypeStruct`` leaves carrying the shardings, for Orbax restore."""
    return jax.tree.map(lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s),
                        self.abstract_state, self.state_sharding)

  def train_step_fn(self) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """The method's pure step: its own ``make_train_step(run)``, else a gradient step of ``loss_fn``."""
    if hasattr(self.method, "make_train_step"):
      return self.method.make_train_step(self)
    return make_train_step(self.graphdef, self.method.loss_fn, self.optimizer, self.config)

  def jit_train_step(self) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """The method's train step, jitted with shardings and the state donated."""
    return jax.jit(self.train_step_fn(),
                   in_shardings=(self.state_sharding, sharding.batch_sharding(self.mesh)),
                   out_shardings=(self.state_sharding, sharding.replicated(self.mesh)),
                   donate_argnums=0)

  def merge(self, state: TrainState) -> nnx.Module:
    """The NNX model holding ``state``'s params and other variables."""
    return nnx.merge(self.graphdef, state.params, state.model_state)

  def map_batches(self, fn: Callable[[nnx.Module, Any], Any], state: TrainState, inputs: Any,
                  batch_size: int) -> Any:
    """Runs ``fn(model, batch)`` over the rows of ``inputs`` on every device.

    Args:
      fn: a pure function of the merged model and a batch (a pytree of arrays with
        leading axis ``batch_size``) returning a pytree of arrays with the same leading
        axis, e.g. features or per-example log-likelihoods. Jitted once per ``fn``.
      state: the trained state.
      inputs: pytree of host arrays with a common leading axis n (the same on every
        process).
      batch_size: rows per call, divisible by the device count; the last chunk is padded
        with zeros and the padding dropped from the outputs.

    Returns:
      ``fn``'s outputs for all n rows, as numpy arrays (replicated: every host gets all).

    Raises:
      ValueError: ``batch_size`` not divisible by the devices, or ragged ``inputs``.
    """
    sharding.check_batch_size(batch_size, "eval.batch_size")
    if fn not in self._mapped:
      graphdef, batch_sharding = self.graphdef, sharding.batch_sharding(self.mesh)

      def apply(params, model_state, batch):
        return fn(nnx.merge(graphdef, params, model_state), batch)

      self._mapped[fn] = jax.jit(
          apply, in_shardings=(self.state_sharding.params, self.state_sharding.model_state,
                               batch_sharding),
          # Replicated output: every host gets every row (multi-host safe).
          out_shardings=sharding.replicated(self.mesh))
    apply = self._mapped[fn]
    count = iterators.num_examples(inputs)
    chunks = []
    for start in range(0, count, batch_size):
      chunk = jax.tree.map(lambda x: np.asarray(x[start:start + batch_size]), inputs)
      size = iterators.num_examples(chunk)
      padded = jax.tree.map(
          lambda x: np.concatenate([x, np.zeros((batch_size - size,) + x.shape[1:], x.dtype)]), chunk)
      out = apply(state.params, state.model_state,
                  jax.device_put(padded, sharding.batch_sharding(self.mesh)))
      chunks.append(jax.tree.map(lambda y: np.asarray(y)[:size], jax.device_get(out)))
    return jax.tree.map(lambda *ys: np.concatenate(ys), *chunks)


class TrainedModel:
  """A trained iterative method, as its ``evaluate`` receives it.

  Attributes:
    run: the ``Pretrainer`` (config, mesh, model structure, ``info``).
    state: the final ``TrainState``.
    summary: ``pretrain``'s summary (``pretrain_seconds``, ``compile_seconds``,
      ``final_loss``), e.g. for a method's words/s.
  """

  def __init__(self, run: Pretrainer, state: TrainState, summary: dict[str, Any] | None = None):
    self.run, self.state, self.summary = run, state, dict(summary or {})

  def model(self) -> nnx.Module:
    """The merged NNX model (for notebooks and one-off use)."""
    return self.run.merge(self.state)

  def map(self, fn: Callable[[nnx.Module, Any], Any], inputs: Any, batch_size: int) -> Any:
    """``Pretrainer.map_batches(fn, state, inputs, batch_size)``."""
    return self.run.map_batches(fn, self.state, inputs, batch_size)


def num_steps_for(config: ml_collections.ConfigDict, num_train: int | None) -> int:
  """The number of steps of a run: ``train.num_steps``, or ``train.num_epochs`` passes.

  A config with a positive ``train.num_epochs`` counts its run in passes over the train
  split (word vectors, whose split size depends on the vocabulary): steps =
  ``num_epochs × (num_train // train.batch_size)``. Otherwise ``train.num_steps``.

  Args:
    config: the run's config.
    num_train: examples in the train split; needed only for ``num_epochs`` configs.

  Returns:
    The number of optimiser steps, ``>= 0``.

  Raises:
    ValueError: a ``num_epochs`` config without ``num_train``.
  """
  num_epochs = config.train.get("num_epochs", 0)
  if not num_epochs:
    return int(config.train.num_steps)
  if num_train is None:
    raise ValueError("train.num_epochs counts steps by the train split's size: pass num_train.")
  return int(num_epochs) * (int(num_train) // int(config.train.batch_size))


def check_not_finished(workdir: str | os.PathLike) -> None:
  """Raises ``FinishedRunError`` if ``workdir`` holds ``results.json`` (nothing is touched)."""
  workdir = as_path(workdir)
  if (workdir / RESULTS_FILE).exists():
    raise FinishedRunError(
        f"{workdir} already holds a finished run ({RESULTS_FILE}); choose a new --workdir "
        "(nothing was changed).")


def check_config(config: ml_collections.ConfigDict) -> None:
  """The config checks that need no data: intervals ≥ 1 and every batch size vs devices.

  Raises:
    ValueError: one line naming the field and a valid value.
  """
  train = config.train
  for field in ("num_steps", "num_epochs"):
    if train.get(field, 0) < 0:
      raise ValueError(f"train.{field}={train.get(field)} must be >= 0.")
  for field in ("log_every", "checkpoint_every", "keep_checkpoints"):
    value = train.get(field)
    if value is not None and value < 1:
      raise ValueError(f"train.{field}={value} must be >= 1 (e.g. --config.train.{field}=1).")
  for path, size in sharding.batch_size_fields(config).items():
    sharding.check_batch_size(size, path)


def prepare_workdir(workdir: epath.Path) -> None:
  """Creates ``workdir`` and checks that it takes files; on failure leaves nothing behind.

  Raises:
    WorkdirError: the path is a file, or the directory cannot be created or written
      (read-only file system, no permission, disk full); one line naming path and cause.
  """
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f"--workdir {workdir} is a file, not a directory; choose another path.")
  created = None  # The outermost directory this call creates, removed again on failure.
  for parent in [workdir, *workdir.parents]:
    if parent.exists():
      break
    created = parent
  probe = workdir / f".write_test.{jax.process_index()}.{os.getpid()}"
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe.write_text("ok")
    probe.unlink()
  except OSError as error:
    if created is not None and created.exists():
      try:
        created.rmtree()
      except OSError:
        pass
    cause = error.strerror or type(error).__name__
    raise WorkdirError(f"--workdir {workdir} cannot be written ({cause}); choose a writable "
                       "path (nothing was changed).") from None


def check_workdir_files(workdir: epath.Path, info: Any) -> None:
  """Refuses a workdir holding another version of a file in ``info.workdir_files``.

  A method's ``info.workdir_files`` (file name -> text) are the files its checkpoints need
  beside them, such as the tokenizer of a language model. Nothing is written here.

  Raises:
    tokenizers.TokenizerMismatchError: ``workdir/<name>`` exists with other contents; one
      line naming the file (the file and the checkpoints are left as they are).
  """
  from pretrain_jax.data.tokenizers import TokenizerMismatchError  # pylint: disable=g-import-not-at-top

  for name, text in (getattr(info, "workdir_files", None) or {}).items():
    path = workdir / name
    if path.exists() and path.read_text() != text:
      raise TokenizerMismatchError(
          f"{path} differs from the one this run builds (another tokenizer or vocabulary: "
          "different data or config); use a new --workdir, or the original config (nothing "
          "was changed).")


def write_workdir_files(workdir: epath.Path, info: Any) -> None:
  """Writes ``info.workdir_files`` into the workdir (atomically, process 0 only)."""
  if jax.process_index() != 0:
    return
  for name, text in (getattr(info, "workdir_files", None) or {}).items():
    path = workdir / name
    if not path.exists():
      tmp = workdir / (name + ".tmp")
      tmp.write_text(text)
      tmp.replace(path)


def saved_config(workdir: str | os.PathLike) -> tuple[int, ml_collections.ConfigDict]:
  """The newest checkpoint step of a run and the config stored with it (without
  ``data_fingerprint``), read without the data or the state.

  Raises:
    FileNotFoundError: no checkpoint in ``workdir`` (one line).
    CheckpointCorruptError: no step's config can be read.
  """
  workdir = as_path(workdir)
  if not (workdir / "checkpoints").exists():
    raise FileNotFoundError(f"{workdir} holds no checkpoints/; pass the --workdir of a trained run.")
  with Checkpointer(workdir / "checkpoints", save_interval_steps=1) as checkpointer:
    step, stored = checkpointer.saved_config()
  stored.pop("data_fingerprint", None)
  return step, ml_collections.ConfigDict(stored)


def restore_trained(workdir: str | os.PathLike, step: int | None = None, *,
                    run: Pretrainer | None = None) -> TrainedModel:
  """Reloads the newest good checkpoint of a run, without its data, for inference.

  The config is the one stored with the checkpoint; the method's ``load_info(config,
  workdir)`` rebuilds what ``make_model`` needs (a language model's tokenizer from
  ``tokenizer.json``), and the checkpoint is verified as on resume (its stored fingerprint
  must match that info: another tokenizer is refused).

  Args:
    workdir: a run's directory (finished or not).
    step: the checkpoint to restore (no fallback); the newest good one when None.
    run: the ``Pretrainer`` of an earlier ``restore_trained`` of the same workdir, reused
      (with its compiled ``map`` functions) to restore another step; None builds one.

  Returns:
    A ``TrainedModel`` whose ``summary`` holds ``step`` (the step restored).

  Raises:
    FileNotFoundError: no checkpoint in ``workdir``, or a file ``load_info`` needs.
    ValueError: the method cannot be reloaded without its data (no ``load_info``).
    CheckpointMismatchError / CheckpointCorruptError: as ``Checkpointer.restore``.
  """
  workdir = as_path(workdir)
  if run is None:
    _, config = saved_config(workdir)
    method = methods.get_method(config.method)
    if not hasattr(method, "load_info"):
      raise ValueError(f"method {config.method} cannot be reloaded without its data (it has no "
                       "load_info); evaluate it with python -m pretrain_jax.main instead.")
    # The step count only shapes the learning-rate schedule, not the state: an epoch-counted
    # run (whose steps depend on its data) is rebuilt without its data.
    run = Pretrainer(config, method.load_info(config, workdir),
                     num_steps=0 if config.train.get("num_epochs", 0) else None)
  with Checkpointer(workdir / "checkpoints", save_interval_steps=1) as checkpointer:
    state, _ = checkpointer.restore(run.abstract_state_with_shardings(), run.checkpoint_config(),
                                    step=step,
                                    ignored_config_keys=IGNORED_CONFIG_KEYS + IGNORED_AFTER_NONFINITE)
  return TrainedModel(run, state, {"step": int(state.step)})


@contextlib.contextmanager
def _checkpoint_write_errors(directory: epath.Path, what: str):
  """Turns file-system failures while writing checkpoints (read-only, full, permissions)
  into one-line ``WorkdirError``s naming ``what`` and ``directory``. The checkpoints
  already on disk stay intact: Orbax renames a step into place only once it is complete."""
  try:
    yield
  except (OSError, RuntimeError, ValueError) as error:
    lines = str(error).strip().splitlines()
    cause = getattr(error, "strerror", None) or (lines[0] if lines else type(error).__name__)
    raise WorkdirError(f"could not write {what} to {directory} ({cause}); the checkpoints "
                       "already there are intact: free space or fix the permissions, then "
                       "re-run the same command.") from None


def pretrain(run: Pretrainer, train_split: Any, workdir: str | os.PathLike, *,
             progress: bool = True) -> tuple[TrainState, dict[str, Any]]:
  """Runs (or resumes) the training of an iterative method in ``workdir``.

  Args:
    run: the ``Pretrainer`` of the config.
    train_split: the train split, a pytree of arrays with a common leading axis.
    workdir: where checkpoints and metrics.jsonl live (must exist).
    progress: show a tqdm bar.

  Returns:
    (the final state, {"pretrain_seconds": training time of every attempt, compilation
    excluded, "compile_seconds": this attempt's compilation time, "final_loss"}).

  Raises:
    NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint is kept).
    ResumeError: the newest checkpoint is beyond ``train.num_steps``.
    CheckpointMismatchError: the workdir's checkpoints come from another config or model.
    CheckpointCorruptError: no checkpoint of the workdir passes verification.
  """
  config, workdir = run.config, as_path(workdir)
  num_steps, batch_size = run.num_steps, config.train.batch_size
  stored_config = run.checkpoint_config()
  nonfinite_marker = workdir / NONFINITE_FILE
  with Checkpointer(workdir / "checkpoints", save_interval_steps=config.train.checkpoint_every,
                    max_to_keep=config.train.keep_checkpoints) as checkpointer:
    latest = checkpointer.latest_step()
    if latest is not None and latest > num_steps:
      raise ResumeError(
          f"{workdir} holds a checkpoint of step {latest} but train.num_steps={num_steps}: pass "
          f"--config.train.num_steps={latest} or more to continue it, or use a new --workdir.")
    if latest is None:
      state, last_saved = run.init_state(), None
    else:
      ignored = IGNORED_CONFIG_KEYS
      if nonfinite_marker.exists():
        ignored = ignored + IGNORED_AFTER_NONFINITE
      state, _ = checkpointer.restore(run.abstract_state_with_shardings(), stored_config,
                                      ignored_config_keys=ignored)
      last_saved = int(state.step)
    start = int(state.step)
    last_attempt = None if latest is None else start  # The newest step a save was tried for.
    writer = MetricsWriter(workdir / "metrics.jsonl", resume_step=start)
    final_loss = writer.last_record.get("loss")
    compile_seconds, started = 0.0, time.perf_counter()
    if start < num_steps:
      started = time.perf_counter()
      first = sharding.global_batch(iterators.host_batch(train_split, config.seed, start, batch_size),
                                    run.mesh)
      train_step = run.jit_train_step().lower(state, first).compile()
      compile_seconds = time.perf_counter() - started
      started = time.perf_counter()
    bar = tqdm(total=num_steps, initial=start, desc=config.method, dynamic_ncols=True,
               disable=not progress or num_steps == start)

    def record(done: int, metrics: dict[str, jax.Array]) -> None:
      """Fetches one step's metrics, stops on a non-finite value, logs them."""
      nonlocal final_loss
      metrics = jax.device_get(metrics)
      try:
        check_finite(metrics, done, last_saved)
      except NonFiniteLossError:
        if jax.process_index() == 0:
          nonfinite_marker.write_text(to_json({"step": done, "last_checkpoint": last_saved}))
        raise
      final_loss = float(metrics["loss"])
      seconds = writer.previous_seconds + time.perf_counter() - started
      writer.write(done, dict(metrics, train_seconds=seconds))
      bar.set_postfix(loss=f"{final_loss:.4f}")

    pending = None  # A logged step's metrics, fetched one step late so the device never waits.
    for step in range(start, num_steps):
      host = iterators.host_batch(train_split, config.seed, step, batch_size)
      state, metrics = train_step(state, sharding.global_batch(host, run.mesh))
      if pending is not None:
        record(*pending)
        pending = None
      done = step + 1
      is_save = done % config.train.checkpoint_every == 0 or done == num_steps
      if is_save:
        record(done, metrics)  # Checked before saving: a non-finite state is never saved.
        with _checkpoint_write_errors(checkpointer.directory, f"the checkpoint of step {done}"):
          saved = checkpointer.save(done, state, stored_config, force=done == num_steps)
        if saved:
          last_saved = done
        last_attempt = done
      elif done % config.train.log_every == 0:
        pending = (done, metrics)
      bar.update(1)
    bar.close()
    with _checkpoint_write_errors(checkpointer.directory, f"the checkpoint of step {int(state.step)}"):
      if last_attempt != int(state.step):
        checkpointer.save(int(state.step), state, stored_config, force=True)
      checkpointer.wait_until_finished()
  seconds = writer.previous_seconds + (time.perf_counter() - started if start < num_steps else 0.0)
  if nonfinite_marker.exists() and jax.process_index() == 0:
    nonfinite_marker.unlink()  # Past the stop: the checkpoints now carry the new optim.
  return state, {"pretrain_seconds": seconds, "compile_seconds": compile_seconds,
                 "final_loss": final_loss}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       *, progress: bool = True) -> dict[str, Any]:
  """Pretrains ``config.method`` (resuming if possible), evaluates it, writes results.json.

  Args:
    config: a locked config from ``configs/<method>.py``.
    workdir: the run's directory, local or ``gs://…``; created if missing.
    progress: show progress bars.

  Returns:
    The results dict also written to ``workdir/results.json``: the method's own numbers
    (its ``evaluate``), ``pretrain_seconds`` (training time, compilation excluded),
    ``compile_seconds``, ``eval_seconds``, ``final_loss``, and the run's ``method``,
    ``supervision``, ``variant``, ``dataset``, ``num_steps`` and ``config``.

  Raises:
    FinishedRunError: ``workdir`` already holds ``results.json``.
    WorkdirError: the workdir cannot be written.
    ValueError: unknown method, bad intervals, a batch size not divisible by the
      devices, a malformed or changed dataset cache.
    FileNotFoundError: dataset not fetched.
  """
  workdir = as_path(workdir)
  check_not_finished(workdir)
  method = methods.get_method(config.method)
  check_config(config)
  info, data = datasets.load_for_config(config)
  if hasattr(method, "prepare_data"):
    info, data = method.prepare_data(config, info, data)
  fitted_in_closed_form = hasattr(method, "fit")
  run = None
  if not fitted_in_closed_form:
    num_train = iterators.num_examples(data["train"])
    if (config.train.get("num_steps", 0) or config.train.get("num_epochs", 0)) and \
        config.train.batch_size > num_train:
      raise ValueError(f"train.batch_size={config.train.batch_size} exceeds the "
                       f"{num_train} training examples.")
    run = Pretrainer(config, info, num_steps=num_steps_for(config, num_train))
  check_workdir_files(workdir, info)
  prepare_workdir(workdir)
  write_workdir_files(workdir, info)

  if fitted_in_closed_form:
    started = time.perf_counter()
    trained = method.fit(data["train"], config)
    summary = {"pretrain_seconds": time.perf_counter() - started, "compile_seconds": 0.0,
               "final_loss": None}
  else:
    state, summary = pretrain(run, data["train"], workdir, progress=progress)
    trained = TrainedModel(run, state, summary)

  started = time.perf_counter()
  results = method.evaluate(trained, data, config, workdir)
  results.update(summary, eval_seconds=time.perf_counter() - started, method=config.method,
                 supervision=getattr(method, "SUPERVISION", ""), variant=config.variant,
                 dataset=config.data.name,
                 num_steps=0 if fitted_in_closed_form else run.num_steps,
                 config=normalize_config(config))
  write_json_atomically(workdir / RESULTS_FILE, results)
  return json.loads(to_json(results))

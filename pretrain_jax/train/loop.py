"""``train_and_evaluate(config, workdir)``: pretrain one method, checkpoint, evaluate.

The loop knows nothing about any particular method: it asks ``pretrain_jax.methods`` for
the module named ``config.method`` and uses its interface (``make_model``, ``loss_fn``,
``features`` or, for classical baselines, ``fit``). A run is resumable: the same call on
the same workdir continues from the latest checkpoint, drawing the same batches and keys
as an uninterrupted run, and ends with the same numbers.

Workdir layout::

  checkpoints/<step>/   Orbax checkpoints (state + config.json)
  metrics.jsonl         one JSON object per logged step
  results.json          written last, atomically: its presence marks a finished run
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from pretrain_jax import methods
from pretrain_jax.data import datasets
from pretrain_jax.data import iterators
from pretrain_jax.eval.knn import knn_accuracy
from pretrain_jax.eval.linear_probe import linear_probe
from pretrain_jax.train import sharding
from pretrain_jax.train.checkpoint import Checkpointer
from pretrain_jax.train.metrics import MetricsWriter, check_finite
from pretrain_jax.train.optimizers import make_optimizer
from pretrain_jax.train.state import TrainState
from pretrain_jax.train.steps import make_features_fn, make_train_step

RESULTS_FILE = "results.json"


class FinishedRunError(ValueError):
  """The workdir already holds a finished run; nothing is overwritten."""


class Pretrainer:
  """The pieces of a neural method's run that the loop, the notebook and tests share.

  Builds the model structure, the optimiser, the mesh and the state shardings for a
  config, without touching the disk.

  Args:
    config: a locked experiment config (``configs/<method>.py``).
    mesh: the ``("data",)`` mesh; default every device of every process.
  """

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None):
    self.config = config
    self.method = methods.get_method(config.method)
    if self.method.KIND != "neural":
      raise ValueError(f"{config.method} is a classical baseline: it has no network to pretrain.")
    self.info = datasets.DATASETS[config.data.name]
    self.mesh = mesh if mesh is not None else sharding.make_mesh()
    self.optimizer = make_optimizer(config.optim, config.train.num_steps)
    abstract_model = nnx.eval_shape(lambda: self.make_model(jax.random.PRNGKey(0)))
    self.graphdef, _ = nnx.split(abstract_model, nnx.Param)
    self.abstract_state = jax.eval_shape(self._init, config.seed)
    self.state_sharding = sharding.replicate_tree(self.abstract_state, self.mesh)

  def make_model(self, key: jax.Array) -> nnx.Module:
    """The method's model initialised from ``key``."""
    return self.method.make_model(self.config, self.info, rngs=nnx.Rngs(params=key))

  def _init(self, seed: int) -> TrainState:
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    _, params = nnx.split(self.make_model(init_key), nnx.Param)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.optimizer.init(params), rng=train_key)

  def init_state(self) -> TrainState:
    """A fresh state, created directly with its (replicated) shardings."""
    init = jax.jit(functools.partial(self._init, self.config.seed), out_shardings=self.state_sharding)
    return init()

  def abstract_state_with_shardings(self) -> TrainState:
    """``jax.ShapeDtypeStruct`` leaves carrying the shardings, for Orbax restore."""
    return jax.tree.map(lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s),
                        self.abstract_state, self.state_sharding)

  def jit_train_step(self) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The method's train step, jitted with shardings and the state donated."""
    step = make_train_step(self.graphdef, self.method.loss_fn, self.optimizer, self.config)
    return jax.jit(step, in_shardings=(self.state_sharding, sharding.batch_sharding(self.mesh)),
                   out_shardings=(self.state_sharding, sharding.replicated(self.mesh)),
                   donate_argnums=0)

  def features_fn(self, params: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Host function images uint8 ``[n, H, W, C]`` -> float32 ``[n, D]`` features."""
    apply = jax.jit(make_features_fn(self.graphdef, self.method.features),
                    in_shardings=(self.state_sharding.params, sharding.batch_sharding(self.mesh)),
                    # Replicated output: every host gets every feature (multi-host safe).
                    out_shardings=sharding.replicated(self.mesh))
    batch_size = self.config.eval.batch_size
    sharding.check_batch_size(batch_size, "eval.batch_size")

    def extract(images: np.ndarray) -> np.ndarray:
      chunks = []
      for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)])
        out = apply(params, jax.device_put(padded, sharding.batch_sharding(self.mesh)))
        chunks.append(np.asarray(jax.device_get(out))[:len(chunk)])
      return np.concatenate(chunks)

    return extract


def _check_workdir(workdir: Path) -> None:
  if (workdir / RESULTS_FILE).exists():
    raise FinishedRunError(
        f"{workdir} already holds a finished run ({RESULTS_FILE}); choose a new --workdir "
        "(nothing was changed).")


def _write_json_atomically(path: Path, payload: dict) -> None:
  if jax.process_index() != 0:  # One writer on a shared multi-host workdir.
    return
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
  os.replace(tmp, path)


def pretrain(config: ml_collections.ConfigDict, workdir: Path, train_images: np.ndarray,
             train_labels: np.ndarray, *, progress: bool = True) -> tuple[Pretrainer, TrainState, dict]:
  """Runs (or resumes) the pretraining of a neural method in ``workdir``.

  Args:
    config: the experiment config.
    workdir: where checkpoints and metrics.jsonl live.
    train_images: uint8 ``[N, H, W, C]`` pretraining images (the validation images
      already removed).
    train_labels: int32 ``[N]`` (read only by supervised methods).
    progress: show a tqdm bar.

  Returns:
    (the ``Pretrainer``, the final state, {"pretrain_seconds", "final_loss"}).

  Raises:
    NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint is kept).
    CheckpointMismatchError: the workdir's checkpoints come from another config or model.
  """
  run = Pretrainer(config)
  num_steps, batch_size = config.train.num_steps, config.train.batch_size
  sharding.check_batch_size(batch_size)
  if num_steps and batch_size > len(train_images):
    raise ValueError(f"train.batch_size={batch_size} exceeds the {len(train_images)} training images.")
  with Checkpointer(workdir / "checkpoints", save_interval_steps=config.train.checkpoint_every,
                    max_to_keep=config.train.keep_checkpoints) as checkpointer:
    last_saved = checkpointer.latest_step()
    if last_saved is None:
      state = run.init_state()
    else:
      state, _ = checkpointer.restore(run.abstract_state_with_shardings(), config.to_dict())
    start = int(state.step)
    writer = MetricsWriter(workdir / "metrics.jsonl", resume_step=start)
    train_step = run.jit_train_step()
    final_loss = float(writer.last_record.get("loss", float("nan")))
    started = time.perf_counter()
    bar = tqdm(range(start, num_steps), initial=start, total=num_steps, desc=config.method,
               disable=not progress or num_steps == start, dynamic_ncols=True)
    for step in bar:
      host = iterators.host_batch(train_images, train_labels, config.seed, step, batch_size)
      state, metrics = train_step(state, sharding.global_batch(host, run.mesh))
      done = step + 1
      is_log = done % config.train.log_every == 0 or done == num_steps
      is_save = done % config.train.checkpoint_every == 0 or done == num_steps
      if is_log or is_save:
        metrics = jax.device_get(metrics)
        check_finite(metrics, done, last_saved)
        final_loss = float(metrics["loss"])
        seconds = writer.previous_seconds + time.perf_counter() - started
        writer.write(done, dict(metrics, train_seconds=seconds))
        bar.set_postfix(loss=f"{final_loss:.4f}")
      if is_save and checkpointer.save(done, state, config.to_dict(), force=done == num_steps):
        last_saved = done
    if last_saved is None or last_saved < int(state.step):
      checkpointer.save(int(state.step), state, config.to_dict(), force=True)
    checkpointer.wait_until_finished()
  seconds = writer.previous_seconds + time.perf_counter() - started
  return run, state, {"pretrain_seconds": seconds, "final_loss": final_loss}


def evaluate(features_fn: Callable[[np.ndarray], np.ndarray], config: ml_collections.ConfigDict,
             splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
  """Linear probe and cosine kNN on frozen features.

  Args:
    features_fn: uint8 images ``[n, H, W, C]`` -> float32 features ``[n, D]``.
    config: the experiment config (``eval`` section, ``seed``).
    splits: ``{"train", "val", "test"}`` -> (uint8 images, int32 labels). The probe fits
      on train, picks its weight decay on val and is scored once on test; kNN searches
      the train features for each test image.

  Returns:
    Accuracies as fractions in [0, 1] and the probe's chosen weight decay.
  """
  info = datasets.DATASETS[config.data.name]
  features = {name: (np.asarray(features_fn(images), np.float32), labels)
              for name, (images, labels) in splits.items()}
  probe = linear_probe(*features["train"], *features["val"], *features["test"],
                       num_classes=info.num_classes, l2_grid=tuple(config.eval.l2_grid),
                       num_steps=config.eval.probe_steps, progress=False)
  knn = knn_accuracy(*features["train"], *features["test"], k=config.eval.knn_k,
                     num_classes=info.num_classes)
  return {"linear_probe_test_accuracy": float(probe.test_accuracy),
          "linear_probe_val_accuracy": float(probe.val_accuracy),
          "linear_probe_l2": float(probe.best_l2),
          "knn_test_accuracy": float(knn),
          "feature_dim": int(features["test"][0].shape[1]),
          "num_test_images": int(len(features["test"][0]))}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       *, progress: bool = True) -> dict[str, Any]:
  """Pretrains ``config.method`` (resuming if possible), evaluates it, writes results.json.

  Args:
    config: a locked config from ``configs/<method>.py``.
    workdir: the run's directory; created if missing.
    progress: show progress bars.

  Returns:
    The results dict also written to ``workdir/results.json``: linear-probe and kNN test
    accuracies (fractions), pretraining seconds, the config's method and variant.

  Raises:
    FinishedRunError: ``workdir`` already holds ``results.json``.
    ValueError: unknown method, dataset not fetched, batch not divisible by devices.
  """
  workdir = Path(workdir)
  _check_workdir(workdir)
  method = methods.get_method(config.method)
  if config.data.name not in datasets.DATASETS:
    raise ValueError(f"Unknown dataset {config.data.name!r}: use one of {', '.join(datasets.DATASETS)}.")
  images, labels = datasets.load(config.data.name, "train")
  if config.data.train_limit:
    images, labels = images[:config.data.train_limit], labels[:config.data.train_limit]
  train_idx, val_idx = datasets.train_val_split(len(images), config.data.val_size, config.seed)
  train_images, train_labels = images[train_idx], labels[train_idx]
  workdir.mkdir(parents=True, exist_ok=True)

  if method.KIND == "classical":
    started = time.perf_counter()
    features_fn = method.fit(train_images, config, config.seed)
    summary = {"pretrain_seconds": time.perf_counter() - started, "final_loss": None}
  else:
    run, state, summary = pretrain(config, workdir, train_images, train_labels, progress=progress)
    features_fn = run.features_fn(state.params)

  test_images, test_labels = datasets.load(config.data.name, "test")
  probe_limit = config.eval.probe_train_limit or len(train_images)
  test_limit = config.eval.test_limit or len(test_images)
  started = time.perf_counter()
  results = evaluate(features_fn, config, {
      "train": (train_images[:probe_limit], train_labels[:probe_limit]),
      "val": (images[val_idx], labels[val_idx]),
      "test": (test_images[:test_limit], test_labels[:test_limit])})
  results.update(summary, eval_seconds=time.perf_counter() - started, method=config.method,
                 supervision=method.SUPERVISION, variant=config.variant, dataset=config.data.name,
                 num_steps=int(config.train.num_steps) if method.KIND == "neural" else 0)
  _write_json_atomically(workdir / RESULTS_FILE, results)
  return results

"""The generalised, hardened spine: any batch pytree, method-owned updates and evaluation,
state beyond params, checkpoints that cannot be silently corrupt, every check before
step 0, epath workdirs, strict JSON and per-family tables.

Oracles: an uninterrupted run's numbers (a corrupted or interrupted run must end on them
exactly), the files on disk before and after, independently formatted table rows, and a
fake ``jax`` package that fails on import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

from etils import epath
from etils.epath import testing as epath_testing
from flax import nnx
import jax
import jax.numpy as jnp
import matplotlib.image
import ml_collections
import numpy as np
import optax
import pytest
from test_train import smoke_config

from pretrain_jax import methods
from pretrain_jax import table
from pretrain_jax.data import datasets
from pretrain_jax.train import loop
from pretrain_jax.train.checkpoint import Checkpointer
from pretrain_jax.train.config import VARIANTS, base_config
from pretrain_jax.train.platform import MAX_CPU_DEVICES
from pretrain_jax.train import steps

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _strict_json(text: str):
  def refuse(constant):
    raise ValueError(f"non-standard JSON constant {constant}")
  return json.loads(text, parse_constant=refuse)


def _listing(root: Path) -> dict[str, int]:
  return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_supervised(tmp_path_factory):
  """One uninterrupted supervised smoke run (30 steps, checkpoints at 10, 20, 30)."""
  workdir = tmp_path_factory.mktemp("finished") / "run"
  results = loop.train_and_evaluate(smoke_config("supervised"), workdir, progress=False)
  return workdir, results


def _copy_unfinished(finished: Path, tmp_path: Path) -> Path:
  """A copy of a finished run as if its evaluation had been interrupted."""
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  (workdir / "results.json").unlink()
  return workdir


# --- Checkpoint integrity, end to end ---------------------------------------------------


def test_flipped_byte_in_latest_checkpoint_falls_back_and_ends_identically(
    finished_supervised, tmp_path, capsys):
  finished, expected = finished_supervised
  workdir = _copy_unfinished(finished, tmp_path)
  data_files = sorted((workdir / "checkpoints" / "30" / "state").rglob("d/*"),
                      key=lambda p: p.stat().st_size)
  assert data_files, "no Orbax data file found under checkpoints/30/state/d/"
  target = data_files[-1]
  raw = bytearray(target.read_bytes())
  raw[len(raw) // 2] ^= 0xFF
  target.write_bytes(bytes(raw))
  before = _listing(workdir / "checkpoints")
  results = loop.train_and_evaluate(smoke_config("supervised"), workdir, progress=False)
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if "falling back" in line]
  assert len(lines) == 1 and lines[0].startswith("checkpoint step 30 is corrupt"), err
  assert "falling back to step 20" in lines[0] and "opt_state" in lines[0] or "params" in lines[0]
  assert "Traceback" not in err
  # Retrained from step 20 with the same batches and keys: the uninterrupted run's numbers.
  for key in ("linear_probe_test_accuracy", "knn_test_accuracy", "linear_probe_val_accuracy",
              "final_loss"):
    assert results[key] == expected[key], key
  after = _listing(workdir / "checkpoints")
  assert set(before) <= set(after) and after[str(target.relative_to(workdir / "checkpoints"))] == \
      before[str(target.relative_to(workdir / "checkpoints"))], "a checkpoint file was removed"


def test_every_checkpoint_unreadable_is_one_line_with_what_to_do(finished_supervised, tmp_path):
  finished, _ = finished_supervised
  workdir = _copy_unfinished(finished, tmp_path)
  for step_dir in (workdir / "checkpoints").iterdir():
    if step_dir.is_dir() and step_dir.name.isdigit():
      (step_dir / "state" / "_METADATA").write_text("{ garbage")
  with pytest.raises(ValueError) as error:
    loop.train_and_evaluate(smoke_config("supervised"), workdir, progress=False)
  message = str(error.value)
  assert "\n" not in message and "move" in message and "start from scratch" in message
  assert all((workdir / "checkpoints" / str(s)).is_dir() for s in (10, 20, 30))


def test_num_steps_below_the_checkpoint_is_refused(finished_supervised, tmp_path):
  finished, _ = finished_supervised
  workdir = _copy_unfinished(finished, tmp_path)
  with pytest.raises(loop.ResumeError, match="step 30 but train.num_steps=20.*num_steps=30"):
    loop.train_and_evaluate(smoke_config("supervised", train__num_steps=20), workdir, progress=False)
  assert not (workdir / "results.json").exists()


# --- Every check before step 0 ------------------------------------------------------------


@pytest.mark.parametrize("override, match", [
    ({"eval__batch_size": 1002}, "eval.batch_size=1002 is not divisible by the 4 devices"),
    ({"train__batch_size": 30}, "train.batch_size=30 is not divisible by the 4 devices"),
    ({"train__log_every": 0}, "train.log_every=0 must be >= 1"),
    ({"train__checkpoint_every": 0}, "train.checkpoint_every=0 must be >= 1"),
])
def test_bad_config_is_refused_before_step_0_leaving_no_workdir(tmp_path, monkeypatch, override,
                                                                 match):
  monkeypatch.setattr(loop.Pretrainer, "init_state",
                      lambda self: pytest.fail("a refused run must not reach step 0"))
  with pytest.raises(ValueError, match=match):
    loop.train_and_evaluate(smoke_config("supervised", **override), tmp_path / "a" / "run",
                            progress=False)
  assert not (tmp_path / "a").exists()


def test_missing_dataset_is_refused_before_the_workdir_exists(tmp_path, monkeypatch):
  monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "empty_cache"))
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # No online fallback.
  config = smoke_config("raw_pixels")
  with config.unlocked():
    config.data.name = "mnist"
  with pytest.raises(FileNotFoundError, match="python -m pretrain_jax.data.fetch mnist"):
    loop.train_and_evaluate(config, tmp_path / "run", progress=False)
  assert not (tmp_path / "run").exists()


def test_workdir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / "run"
  path.write_text("not a directory")
  with pytest.raises(loop.WorkdirError) as error:
    loop.train_and_evaluate(smoke_config("raw_pixels"), path, progress=False)
  assert "\n" not in str(error.value) and str(path) in str(error.value) and "is a file" in str(error.value)
  assert path.read_text() == "not a directory"


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
  real_write_text = epath.Path.write_text

  def full(self, *args, **kwargs):
    if ".write_test" in self.name:
      raise OSError(28, "No space left on device", str(self))
    return real_write_text(self, *args, **kwargs)

  monkeypatch.setattr(epath.Path, "write_text", full)
  with pytest.raises(loop.WorkdirError, match="No space left on device") as error:
    loop.train_and_evaluate(smoke_config("raw_pixels"), tmp_path / "new" / "run", progress=False)
  assert "\n" not in str(error.value) and str(tmp_path / "new" / "run") in str(error.value)
  assert not (tmp_path / "new").exists()


def test_finished_run_is_refused_without_importing_jax(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "results.json").write_text("{}\n")
  fake = tmp_path / "fake_site" / "jax"
  fake.mkdir(parents=True)
  (fake / "__init__.py").write_text("raise ImportError('jax was imported')\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]))
  proc = subprocess.run(
      [sys.executable, "-m", "pretrain_jax.main", f"--config={CONFIGS / 'raw_pixels.py'}:smoke",
       f"--workdir={workdir}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [
      f"error: {workdir} already holds a finished run (results.json); choose a new --workdir "
      "(nothing was changed)."], proc.stderr
  assert (workdir / "results.json").read_text() == "{}\n"


def test_table_and_main_import_together_without_flags():
  code = ("import pretrain_jax.table, pretrain_jax.main; from absl import flags; "
          "assert 'config' not in flags.FLAGS and 'workdir' not in flags.FLAGS")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr


# --- Results, JSON, NaN advice ------------------------------------------------------------


def test_results_are_strict_json_and_record_the_split_wiring(tmp_path, monkeypatch):
  seen = {}
  real_evaluate = methods.METHODS["raw_pixels"].evaluate

  def spy(fitted, data, config, workdir):
    seen.update(data)
    return real_evaluate(fitted, data, config, workdir)

  monkeypatch.setattr(methods.METHODS["raw_pixels"], "evaluate", spy)
  results = loop.train_and_evaluate(smoke_config("raw_pixels"), tmp_path / "raw", progress=False)
  saved = _strict_json((tmp_path / "raw" / "results.json").read_text())
  assert saved == results and saved["final_loss"] is None and saved["config"]["method"] == "raw_pixels"
  # The loop's splits: val carved from digits' train split by the seed, test untouched.
  images, labels = datasets.load("digits", "train")
  test_images, _ = datasets.load("digits", "test")
  assert {k: len(v["image"]) for k, v in seen.items()} == {"train": 1197, "val": 300, "test": 300}
  rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}  # noqa: E731
  assert rows(seen["train"]["image"]) | rows(seen["val"]["image"]) == rows(images)
  assert not rows(seen["train"]["image"]) & rows(seen["val"]["image"])
  np.testing.assert_array_equal(seen["test"]["image"], test_images)


def test_nonfinite_stop_then_the_advised_rerun_is_accepted(tmp_path, monkeypatch):
  real_host_batch = loop.iterators.host_batch

  def poisoned(split, seed, step, batch_size):
    batch = real_host_batch(split, seed, step, batch_size)
    batch["image"] = batch["image"].astype(np.float32) / 255.0  # Same dtype at every step.
    if step >= 12:
      batch["image"][:] = np.nan
    return batch

  monkeypatch.setattr(loop.iterators, "host_batch", poisoned)
  workdir = tmp_path / "run"
  with pytest.raises(loop.NonFiniteLossError, match="lower --config.optim.learning_rate") as error:
    loop.train_and_evaluate(smoke_config("supervised"), workdir, progress=False)
  assert "step 20" in str(error.value) and "checkpoint of step 10 is intact" in str(error.value)
  assert Checkpointer(workdir / "checkpoints", save_interval_steps=10).latest_step() == 10
  assert not (workdir / "results.json").exists()
  monkeypatch.setattr(loop.iterators, "host_batch", real_host_batch)
  # What the message says to do: the same command with a lower learning rate.
  results = loop.train_and_evaluate(smoke_config("supervised", optim__learning_rate=1e-3), workdir,
                                    progress=False)
  assert results["num_steps"] == 30 and not (workdir / loop.NONFINITE_FILE).exists()
  # Without a non-finite stop, the optim section may not change on resume.
  (workdir / "results.json").unlink()
  with pytest.raises(ValueError, match="optim.learning_rate"):
    loop.train_and_evaluate(smoke_config("supervised", optim__learning_rate=5e-4), workdir,
                            progress=False)


# --- Tables per family --------------------------------------------------------------------


def _table_config(methods_, variant="smoke"):
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.seed = 0
  config.methods = tuple(methods_)
  config.columns = ("method", "supervision", "pretrain_seconds", "linear_probe_test_accuracy",
                    "knn_test_accuracy")
  config.plot_columns = ("linear_probe_test_accuracy", "knn_test_accuracy")
  config.title = "frozen features"
  return config


def test_run_table_writes_markdown_json_and_chart(tmp_path):
  rows = table.run_table(_table_config(["raw_pixels", "pca"]), CONFIGS, tmp_path / "t",
                         progress=False)
  expected = ["| Method | Supervision | Pretraining time | Linear probe % | kNN % |",
              "|---|---|---:|---:|---:|"]
  for row in rows:  # Formatted here independently of table.format_cell.
    expected.append(f"| {row['method']} | none | {row['pretrain_seconds']:.1f}s | "
                    f"{round(100 * row['linear_probe_test_accuracy'], 1):.1f} | "
                    f"{round(100 * row['knn_test_accuracy'], 1):.1f} |")
  assert (tmp_path / "t" / "table.md").read_text().splitlines() == expected
  assert _strict_json((tmp_path / "t" / "table.json").read_text()) == rows
  image = matplotlib.image.imread(tmp_path / "t" / "table.png")
  assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


def test_table_refuses_a_finished_run_of_another_config(tmp_path, monkeypatch):
  loop.train_and_evaluate(smoke_config("raw_pixels", eval__knn_k=5), tmp_path / "t" / "raw_pixels",
                          progress=False)
  before = (tmp_path / "t" / "raw_pixels" / "results.json").read_bytes()
  with pytest.raises(table.ReusedRunMismatchError, match="eval.knn_k=5 but this table runs eval.knn_k=20"):
    table.run_table(_table_config(["pca", "raw_pixels"]), CONFIGS, tmp_path / "t", progress=False)
  assert not (tmp_path / "t" / "pca").exists(), "checks must come before any run"
  assert (tmp_path / "t" / "raw_pixels" / "results.json").read_bytes() == before
  # A finished run of exactly the table's config is reused, not re-run.
  shutil.rmtree(tmp_path / "t" / "raw_pixels")
  loop.train_and_evaluate(smoke_config("raw_pixels"), tmp_path / "t" / "raw_pixels", progress=False)
  monkeypatch.setattr(loop, "train_and_evaluate", lambda *a, **k: pytest.fail("re-ran a finished run"))
  rows = table.run_table(_table_config(["raw_pixels"]), CONFIGS, tmp_path / "t", progress=False)
  assert rows[0]["config"]["eval"]["knn_k"] == 20


# --- gs:// workdirs go through epath --------------------------------------------------------


def test_gs_workdir_goes_through_epath_everywhere(tmp_path, monkeypatch):
  bucket = tmp_path / "bucket"

  def local(path):
    text = os.fspath(path)
    return str(bucket / text[len("gs://"):]) if text.startswith("gs://") else text

  def redirect(original, path, *args, **kwargs):
    return original(local(path), *args, **kwargs)

  def redirect2(original, path, dst, *args, **kwargs):
    return original(local(path), local(dst), *args, **kwargs)

  mocks = {name: redirect for name in ("open", "exists", "isdir", "listdir", "glob", "makedirs",
                                       "mkdir", "remove", "rmtree", "stat", "walk")}
  mocks.update(rename=redirect2, replace=redirect2, copy=redirect2)
  seen = []

  def fake_checkpointer(directory, **kwargs):  # TensorStore's own GCS driver is not mockable.
    seen.append(os.fspath(directory))
    return Checkpointer(local(directory), **kwargs)

  monkeypatch.setattr(loop, "Checkpointer", fake_checkpointer)
  monkeypatch.chdir(tmp_path)
  with epath_testing.mock_epath(**mocks):
    loop.train_and_evaluate(smoke_config("random_init"), "gs://b/runs/rand", progress=False)
    table.run_table(_table_config(["raw_pixels"]), CONFIGS, "gs://b/table", progress=False)
  assert seen == ["gs://b/runs/rand/checkpoints"]
  assert _strict_json((bucket / "b" / "runs" / "rand" / "results.json").read_text())["method"] == "random_init"
  assert (bucket / "b" / "runs" / "rand" / "metrics.jsonl").exists()
  assert {p.name for p in (bucket / "b" / "table").iterdir()} >= set(table.TABLE_FILES)
  assert not (tmp_path / "gs:").exists(), "a gs:// path was used as a local path"


# --- State beyond params: non-Param variables, a method's own step, extra state --------------


class _BatchNormModel(nnx.Module):
  """Pixels -> Linear -> BatchNorm (running statistics: non-Param variables) -> classifier."""

  def __init__(self, config, info, *, rngs):
    pixels = int(np.prod(info.image_shape))
    self.hidden = nnx.Linear(pixels, 16, rngs=rngs)
    self.norm = nnx.BatchNorm(16, momentum=0.5, rngs=rngs)
    self.classifier = nnx.Linear(16, info.num_classes, rngs=rngs)

  def __call__(self, images, *, use_running_average):
    x = images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0
    return self.classifier(nnx.relu(self.norm(self.hidden(x), use_running_average=use_running_average)))


def _toy_method():
  """A method using every extension point: model_state, make_train_step, init_extra, evaluate."""
  module = types.ModuleType("toy_batchnorm")
  module.NAME, module.SUPERVISION = "toy_batchnorm", "class labels"
  module.make_model = _BatchNormModel

  def loss_fn(model, batch, key, config):
    del key, config
    logits = model(batch["image"], use_running_average=False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean(), {}

  def init_extra(config, model, key):
    del config, key
    return {"ema": nnx.state(model, nnx.Param)}

  def make_train_step(run):
    gradient_step = steps.make_train_step(run.graphdef, loss_fn, run.optimizer, run.config)

    def step(state, batch):
      state, metrics = gradient_step(state, batch)
      ema = jax.tree.map(lambda e, p: 0.8 * e + 0.2 * p, state.extra["ema"], state.params)
      return state.replace(extra={"ema": ema}), metrics

    return step

  def evaluate(trained, data, config, workdir):
    del data, config, workdir
    state = trained.state
    flat = lambda tree: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(tree)))  # noqa: E731
    return {"params": flat(state.params), "running_mean": flat(state.model_state["norm"]["mean"]),
            "ema": flat(state.extra["ema"]), "opt_state": flat(state.opt_state)}

  module.loss_fn, module.init_extra, module.make_train_step = loss_fn, init_extra, make_train_step
  module.evaluate = evaluate
  return module


def test_model_state_and_extra_state_are_checkpointed_and_resumed(tmp_path, monkeypatch):
  monkeypatch.setitem(methods.METHODS, "toy_batchnorm", _toy_method())
  config = base_config("toy_batchnorm", "smoke")
  config.train.num_steps = 20
  config.lock()
  straight = loop.train_and_evaluate(config, tmp_path / "straight", progress=False)
  # BatchNorm's running mean starts at 0: the loop must carry the loss's updates of it.
  assert straight["running_mean"] > 0 and straight["ema"] != straight["params"]
  real_host_batch = loop.iterators.host_batch

  def dies_at_15(split, seed, step, batch_size):
    if step == 15:
      raise RuntimeError("killed at step 15")
    return real_host_batch(split, seed, step, batch_size)

  monkeypatch.setattr(loop.iterators, "host_batch", dies_at_15)
  with pytest.raises(RuntimeError, match="killed"):
    loop.train_and_evaluate(config, tmp_path / "killed", progress=False)
  monkeypatch.setattr(loop.iterators, "host_batch", real_host_batch)
  resumed = loop.train_and_evaluate(config, tmp_path / "killed", progress=False)
  for key in ("params", "running_mean", "ema", "opt_state", "final_loss"):
    assert resumed[key] == straight[key], key


def test_file_system_turning_read_only_mid_run_is_one_line_and_keeps_checkpoints(tmp_path,
                                                                                 monkeypatch):
  real_save = Checkpointer.save

  def read_only_from_step_20(self, step, state, config, *, force=False):
    if step >= 20:
      raise OSError(30, "Read-only file system", str(self.directory / str(step)))
    return real_save(self, step, state, config, force=force)

  monkeypatch.setattr(Checkpointer, "save", read_only_from_step_20)
  workdir = tmp_path / "run"
  with pytest.raises(loop.WorkdirError) as error:
    loop.train_and_evaluate(smoke_config("supervised"), workdir, progress=False)
  message = str(error.value)
  assert "\n" not in message and "Read-only file system" in message and "step 20" in message
  assert str(workdir / "checkpoints") in message
  assert Checkpointer(workdir / "checkpoints", save_interval_steps=10).all_steps() == [10]


CONFIG_FILES = sorted(p for p in CONFIGS.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.stem for p in CONFIG_FILES])
def test_every_config_loads_at_every_variant_and_splits_over_8_devices(path):
  spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for variant in VARIANTS:
    config = module.get_config(variant)
    if "methods" in config:  # A table: every row is a config file beside it, or a row_module's.
      if "row_module" not in config:
        assert all((path.parent / f"{row}.py").is_file() for row in config.methods), path.name
      continue
    assert config.method in methods.METHODS and config.variant == variant
    for section in ("train", "eval"):
      size = config.get(section, {}).get("batch_size")
      if size is not None:  # platform.MAX_CPU_DEVICES = 8 devices must split every batch.
        assert size % MAX_CPU_DEVICES == 0, (path.name, variant, section, size)

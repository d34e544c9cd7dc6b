"""Tests for pretrain_jax.train.checkpoint (Orbax CheckpointManager wrapper).

Oracles: the arrays that were saved (kept as host copies), the requested shardings,
the save/preservation policies restated as plain integer arithmetic, a real process
killed in the middle of a save, and checkpoints damaged on disk (a flipped data byte,
missing or garbage Orbax files) next to intact older ones.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pretrain_jax.train import checkpoint as ckpt_lib
from pretrain_jax.train.checkpoint import CheckpointMismatchError, Checkpointer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = {
    "workdir": "/tmp/run_a",
    "model": {"hidden": 8, "dtype": "float32"},
    "optim": {"learning_rate": 1e-3, "weight_decay": 1e-4},
    "train": {"num_steps": 20, "log_every": 5, "checkpoint_every": 5},
    "eval": {"every": 10, "num_examples": 128},
}


@struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  rng: jax.Array


def _replicated():
  return NamedSharding(Mesh(jax.devices(), ("data",)), P())


def _make_state(hidden=8, extra_layer=False, typed_key=True):
  """A real NNX MLP's params + adamw state after one update, replicated on 4 devices."""
  rngs = nnx.Rngs(0)
  layers = [nnx.Linear(3, hidden, rngs=rngs), nnx.Linear(hidden, 2, rngs=rngs)]
  if extra_layer:
    layers.append(nnx.Linear(2, 2, rngs=rngs))
  model = nnx.Sequential(*layers)
  _, params = nnx.split(model, nnx.Param)
  tx = optax.adamw(1e-2)
  opt_state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  _, opt_state = tx.update(grads, opt_state, params)  # non-trivial mu, nu, count
  rng = jax.random.key(7) if typed_key else jax.random.PRNGKey(7)
  state = TrainState(jnp.asarray(5, jnp.int32), params, opt_state, rng)
  return jax.device_put(state, _replicated())


def _abstract(state, sharding_fn=lambda leaf: _replicated()):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_fn(x)), state
  )


def _to_host(tree):
  """Host numpy copies; typed keys as their raw key data."""

  def one(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    return np.asarray(x)

  return jax.tree.map(one, tree)


def _small(value=0.0):
  return {"w": jax.device_put(jnp.arange(4.0) + value, _replicated())}


@pytest.mark.parametrize("typed_key", [True, False], ids=["typed_key", "raw_key"])
def test_round_trip_restores_values_and_requested_shardings(tmp_path, typed_key):
  state = _make_state(typed_key=typed_key)
  expected = _to_host(state)
  with Checkpointer(tmp_path, save_interval_steps=5) as ckpt:
    assert ckpt.save(10, state, CONFIG)

  # One leaf is asked for sharded over "data" (not how it was saved), the rest replicated.
  mesh = Mesh(jax.devices(), ("data",))

  def sharding_fn(leaf):
    if leaf.ndim == 2 and leaf.shape[1] % len(jax.devices()) == 0:
      return NamedSharding(mesh, P(None, "data"))
    return NamedSharding(mesh, P())

  abstract = _abstract(state, sharding_fn)
  with Checkpointer(tmp_path, save_interval_steps=5) as fresh:
    assert fresh.latest_step() == 10
    restored, saved_config = fresh.restore(abstract, CONFIG)

  assert isinstance(restored, TrainState)
  assert isinstance(restored.params, nnx.State)
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  assert jnp.issubdtype(restored.rng.dtype, jax.dtypes.prng_key) == typed_key
  chex.assert_trees_all_equal(_to_host(restored), expected)
  sharded = 0
  for leaf, want in zip(jax.tree.leaves(restored), jax.tree.leaves(abstract)):
    assert leaf.sharding.is_equivalent_to(want.sharding, leaf.ndim), (leaf.sharding, want)
    assert leaf.dtype == want.dtype
    sharded += want.sharding.spec != P()
  assert sharded > 0  # the layout really came from the request, not from the file
  assert saved_config == ckpt_lib.normalize_config(CONFIG)


def test_preservation_keeps_only_latest_n(tmp_path):
  max_to_keep, last = 2, 6
  with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=max_to_keep) as ckpt:
    for step in range(1, last + 1):
      assert ckpt.save(step, _small(step), CONFIG)
  expected = list(range(last - max_to_keep + 1, last + 1))
  with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=max_to_keep) as fresh:
    assert fresh.all_steps() == expected
  assert sorted(int(name) for name in os.listdir(tmp_path)) == expected


def test_save_interval_respected_unless_forced(tmp_path):
  interval, last = 3, 7
  with Checkpointer(tmp_path, save_interval_steps=interval) as ckpt:
    saved = [s for s in range(1, last + 1) if ckpt.save(s, _small(s), CONFIG)]
    assert saved == [s for s in range(1, last + 1) if s % interval == 0]
    assert ckpt.save(last, _small(), CONFIG, force=True)
    # A forced save of a step that is already on disk is a no-op, not an error.
    assert not ckpt.save(last, _small(), CONFIG, force=True)
    assert not ckpt.save(2 * interval, _small(), CONFIG, force=True)
  with Checkpointer(tmp_path, save_interval_steps=interval) as fresh:
    assert fresh.all_steps() == saved + [last]
    restored, _ = fresh.restore(_abstract(_small()), CONFIG, step=interval)
    np.testing.assert_array_equal(restored["w"], np.arange(4.0) + interval)


def test_config_mismatch_names_first_differing_key(tmp_path):
  with Checkpointer(tmp_path, save_interval_steps=1) as ckpt:
    ckpt.save(1, _small(), CONFIG)
    abstract = _abstract(_small())

    changed = {**CONFIG, "optim": {**CONFIG["optim"], "learning_rate": 3e-4}}
    with pytest.raises(CheckpointMismatchError) as info:
      ckpt.restore(abstract, changed)
    message = str(info.value)
    assert "\n" not in message
    assert "optim.learning_rate=0.001" in message and "optim.learning_rate=0.0003" in message
    assert "--workdir" in message
    assert isinstance(info.value, ValueError)

    added = {**CONFIG, "model": {**CONFIG["model"], "num_heads": 4}}
    with pytest.raises(CheckpointMismatchError, match=r"model\.num_heads='<absent>'"):
      ckpt.restore(abstract, added)


def test_ignored_config_keys_do_not_trigger_mismatch(tmp_path):
  resumed = {
      **CONFIG,
      "workdir": "/tmp/run_b",
      "train": {"num_steps": 40, "log_every": 1, "checkpoint_every": 10},
      "eval": {"every": 1, "new_probe": True},  # whole section ignored, keys added
  }
  with Checkpointer(tmp_path, save_interval_steps=1) as ckpt:
    ckpt.save(1, _small(3.0), CONFIG)
    restored, saved_config = ckpt.restore(_abstract(_small()), resumed)
  np.testing.assert_array_equal(restored["w"], np.arange(4.0) + 3.0)
  assert saved_config["train"]["num_steps"] == 20  # the saved config is returned as-is


def test_config_difference_respects_dotted_boundaries():
  ignored = ("eval", "train.num_steps")
  base = {
      "eval": {"a": 1},
      "evaluation": {"a": 1},
      "train": {"num_steps": 1, "num_steps_warmup": 1},
  }
  same = ckpt_lib.config_difference(base, {**base, "eval": {"a": 2}}, ignored)
  assert same is None
  # "eval" must not swallow "evaluation", nor "train.num_steps" swallow "..._warmup".
  diff = ckpt_lib.config_difference(base, {**base, "evaluation": {"a": 2}}, ignored)
  assert diff == ("evaluation.a", 1, 2)
  train = {"num_steps": 9, "num_steps_warmup": 2}
  diff = ckpt_lib.config_difference(base, {**base, "train": train}, ignored)
  assert diff == ("train.num_steps_warmup", 1, 2)


def test_different_model_raises_one_line_mismatch(tmp_path):
  with Checkpointer(tmp_path, save_interval_steps=1) as ckpt:
    ckpt.save(1, _make_state(hidden=8), CONFIG)
    wider = _abstract(jax.eval_shape(lambda: _make_state(hidden=16)))
    with pytest.raises(CheckpointMismatchError) as info:
      ckpt.restore(wider, CONFIG)
    message = str(info.value)
    assert "\n" not in message and "--workdir" in message
    assert re.search(r"layers\.0\.(bias|kernel)\S* has shape \((3, )?8,?\) on disk", message)

    deeper = _abstract(jax.eval_shape(lambda: _make_state(extra_layer=True)))
    with pytest.raises(CheckpointMismatchError, match=r"layers\.2\.\S+ is in this run") as info:
      ckpt.restore(deeper, CONFIG)
    assert "\n" not in str(info.value)

  with Checkpointer(tmp_path / "deeper", save_interval_steps=1) as ckpt:
    ckpt.save(1, _make_state(extra_layer=True), CONFIG)
    shallower = _abstract(jax.eval_shape(_make_state))
    with pytest.raises(CheckpointMismatchError, match=r"layers\.2\.\S+ is in the checkpoint"):
      ckpt.restore(shallower, CONFIG)


def test_async_save_snapshot_visible_to_fresh_checkpointer(tmp_path):
  state = _make_state()
  expected = _to_host(state)
  ckpt = Checkpointer(tmp_path, save_interval_steps=5, async_save=True)
  assert ckpt.save(5, state, CONFIG)
  abstract = _abstract(state)
  # The train loop donates the state right after saving: the save must not need it.
  for leaf in jax.tree.leaves(state):
    leaf.delete()
  ckpt.wait_until_finished()
  fresh = Checkpointer(tmp_path, save_interval_steps=5)
  assert fresh.latest_step() == 5
  restored, _ = fresh.restore(abstract, CONFIG)
  chex.assert_trees_all_equal(_to_host(restored), expected)
  fresh.close()
  ckpt.close()


def test_restore_without_checkpoint_raises_file_not_found(tmp_path):
  with Checkpointer(tmp_path, save_interval_steps=1) as ckpt:
    assert ckpt.latest_step() is None
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
      ckpt.restore(_abstract(_small()), CONFIG)
    ckpt.save(1, _small(), CONFIG)
    with pytest.raises(FileNotFoundError, match=r"step 2 .*available steps: \[1\]"):
      ckpt.restore(_abstract(_small()), CONFIG, step=2)


def test_invalid_arguments_raise_value_error(tmp_path):
  with pytest.raises(ValueError, match="save_interval_steps"):
    Checkpointer(tmp_path, save_interval_steps=0)
  with Checkpointer(tmp_path, save_interval_steps=1) as ckpt:
    ckpt.save(1, _small(), CONFIG)
    no_sharding = {"w": jax.ShapeDtypeStruct((4,), jnp.float32)}
    with pytest.raises(ValueError, match="needs a sharding"):
      ckpt.restore(no_sharding, CONFIG)


_CRASHING_SAVE = textwrap.dedent("""
    import os, re, sys, time
    import jax.numpy as jnp
    from pretrain_jax.train.checkpoint import Checkpointer

    directory, marker = sys.argv[1], sys.argv[2]
    ckpt = Checkpointer(directory, save_interval_steps=1)
    ckpt.save(1, {"w": jnp.arange(4.0) + 1}, {"a": 1})
    ckpt.wait_until_finished()

    real_rename = os.rename
    def rename_then_hang(src, dst, *args, **kwargs):
        # Step 2 is fully written into its temporary directory; die before the commit.
        if re.match(r"2\\.orbax-checkpoint-tmp", os.path.basename(os.fspath(src))):
            open(marker, "w").close()
            time.sleep(600)
        return real_rename(src, dst, *args, **kwargs)
    os.rename = rename_then_hang

    ckpt.save(2, {"w": jnp.arange(4.0) + 2}, {"a": 1})
    ckpt.wait_until_finished()
    print("the commit rename was not intercepted")
    """)


def test_killed_save_never_replaces_last_good_checkpoint(tmp_path):
  directory, marker = tmp_path / "ckpt", tmp_path / "about_to_commit"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO_ROOT}
  proc = subprocess.Popen(
      [sys.executable, "-c", _CRASHING_SAVE, str(directory), str(marker)],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  deadline = time.monotonic() + 60
  while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  if proc.poll() is None:
    os.kill(proc.pid, signal.SIGKILL)  # the crash: no cleanup, no finally blocks
  output = proc.communicate()[0]
  assert marker.exists(), f"subprocess did not reach the commit point:\n{output[-3000:]}"

  leftovers = [n for n in os.listdir(directory) if n.startswith("2.orbax-checkpoint-tmp")]
  assert leftovers, os.listdir(directory)  # the half-committed step really is on disk
  assert not (directory / "2").exists()

  with Checkpointer(directory, save_interval_steps=1) as ckpt:
    assert ckpt.latest_step() == 1
    restored, _ = ckpt.restore(_abstract(_small()), {"a": 1})
    np.testing.assert_array_equal(restored["w"], np.arange(4.0) + 1)
    # Resuming re-runs step 2 and saves it over the debris of the crashed attempt.
    assert ckpt.save(2, _small(2.0), {"a": 1})
  with Checkpointer(directory, save_interval_steps=1) as ckpt:
    assert ckpt.latest_step() == 2
    restored, _ = ckpt.restore(_abstract(_small()), {"a": 1})
    np.testing.assert_array_equal(restored["w"], np.arange(4.0) + 2)
  assert sorted(os.listdir(directory)) == ["1", "2"]


# --- Verification: corrupt checkpoints are detected, reported in one line, and skipped. ---


def _step_state(step):
  """A replicated state whose every array depends on `step`.

  Its kernels (3 x 1024 float32) are too big for OCDBT to inline into b-tree nodes, so
  they live in the data files under `<step>/state/`.
  """
  state = _make_state(hidden=1024)
  return jax.tree.map(
      lambda x: x if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x + step, state
  )


def _save_steps(directory, steps):
  """Saves `_step_state(s)` for each s; returns host copies of what was saved, by step."""
  saved = {}
  with Checkpointer(directory, save_interval_steps=10, max_to_keep=len(steps)) as ckpt:
    for step in steps:
      state = _step_state(step)
      saved[step] = _to_host(state)
      assert ckpt.save(step, state, CONFIG)
  return saved


def _listing(directory):
  """Every path under `directory` with its size (None for directories)."""
  out = {}
  for root, dirs, files in os.walk(directory):
    for name in dirs:
      out[os.path.relpath(os.path.join(root, name), directory)] = None
    for name in files:
      path = os.path.join(root, name)
      out[os.path.relpath(path, directory)] = os.path.getsize(path)
  return out


def _largest_data_file(step_dir):
  """The biggest OCDBT data file (`.../d/<hash>`) of a step's `state` item."""
  files = [
      os.path.join(root, name)
      for root, _, names in os.walk(os.path.join(step_dir, "state"))
      if os.path.basename(root) == "d"
      for name in names
  ]
  assert files, _listing(step_dir)
  return max(files, key=os.path.getsize)


def _flip_middle_byte(path):
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x01]))


def _flip_data_byte(step_dir):
  _flip_middle_byte(_largest_data_file(step_dir))


def _truncate_data_file(step_dir):
  path = _largest_data_file(step_dir)
  os.truncate(path, os.path.getsize(path) // 2)


def _flip_btree_byte(step_dir):
  """Flips a byte of the root OCDBT b-tree node (a `state/d/` file; TensorStore CRCs these)."""
  (name,) = os.listdir(os.path.join(step_dir, "state", "d"))
  _flip_middle_byte(os.path.join(step_dir, "state", "d", name))


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)


def _tamper_fingerprint(step_dir):
  path = os.path.join(step_dir, "fingerprint", "metadata")
  with open(path) as f:
    text = f.read()
  digest = re.search(r'"sha256": "([0-9a-f]{64})"', text).group(1)
  _write(path, text.replace(digest, "0" * 64, 1))


# name -> (how to damage a step directory, what the one reported line must say about it)
CORRUPTIONS = {
    "flipped_data_byte": (
        _flip_data_byte,
        r"is corrupt: \S+/30/state fingerprint mismatch for \S+",
    ),
    "truncated_data_file": (
        _truncate_data_file,
        r"is unreadable: \S+/30/state\S* could not be read \([A-Z_]+ reading \S+\)",
    ),
    "flipped_btree_byte": (
        _flip_btree_byte,
        r"is unreadable: \S+/30/state/d/[0-9a-f]+ could not be read \((?:DATA_LOSS|ValueError)\)",
    ),
    "missing_METADATA": (
        lambda d: os.remove(os.path.join(d, "state", "_METADATA")),
        r"is unreadable: \S+/30/state/_METADATA missing",
    ),
    "missing_manifest": (
        lambda d: os.remove(os.path.join(d, "state", "manifest.ocdbt")),
        r"is unreadable: \S+/30/state/manifest\.ocdbt missing",
    ),
    "missing_state_dir": (
        lambda d: shutil.rmtree(os.path.join(d, "state")),
        r"is unreadable: \S+/30/state missing",
    ),
    "garbage_METADATA": (
        lambda d: _write(os.path.join(d, "state", "_METADATA"), "{not json"),
        r"is unreadable: \S+/30/state/_METADATA is not valid JSON",
    ),
    "garbage_config": (
        lambda d: _write(os.path.join(d, "config", "metadata"), "\x00garbage"),
        r"is unreadable: \S+/30/config/metadata is not valid JSON",
    ),
    "missing_fingerprint": (
        lambda d: shutil.rmtree(os.path.join(d, "fingerprint")),
        r"is unreadable: \S+/30/fingerprint missing",
    ),
    "tampered_fingerprint": (
        _tamper_fingerprint,
        r"is corrupt: \S+/30/state fingerprint mismatch for \S+",
    ),
}


# A TensorStore traceback printed from one of its threads fails the test.
no_stray_tracebacks = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


@no_stray_tracebacks
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_latest_step_falls_back_to_previous(tmp_path, capfd, corruption):
  damage, reason = CORRUPTIONS[corruption]
  saved = _save_steps(tmp_path, [10, 20, 30])
  damage(str(tmp_path / "30"))
  before = _listing(tmp_path)
  capfd.readouterr()

  lines = []
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    restored, _ = ckpt.restore(_abstract(_step_state(0)), CONFIG)
    chex.assert_trees_all_equal(_to_host(restored), saved[20])
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"checkpoint step 30 {reason}; falling back to step 20", lines[0]), lines
    assert ckpt.latest_step() == 30  # reported, not removed
    # Re-reaching step 30 does not overwrite the corrupt copy; it says so instead.
    assert not ckpt.save(30, restored, CONFIG, force=True)
    assert len(lines) == 2 and lines[1].startswith("step 30 not saved: checkpoint step 30 is")
    assert "\n" not in lines[1] and "aside" in lines[1]

  assert _listing(tmp_path) == before  # nothing deleted, renamed or rewritten
  assert "Traceback" not in capfd.readouterr().err


@no_stray_tracebacks
def test_default_log_fn_prints_one_line_to_stderr(tmp_path, capfd):
  saved = _save_steps(tmp_path, [10, 20])
  os.remove(tmp_path / "20" / "state" / "_METADATA")
  capfd.readouterr()
  with Checkpointer(tmp_path, save_interval_steps=10) as ckpt:
    restored, _ = ckpt.restore(_abstract(_step_state(0)), CONFIG)
  chex.assert_trees_all_equal(_to_host(restored), saved[10])
  err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("checkpoint")]
  assert len(err) == 1 and re.fullmatch(
      r"checkpoint step 20 is unreadable: \S+/20/state/_METADATA missing; falling back to step 10",
      err[0],
  )


def test_flipped_byte_is_silent_for_orbax_itself(tmp_path):
  """The failure the fingerprint exists for: Orbax reads the flipped file without error."""
  saved = _save_steps(tmp_path, [10])
  _flip_data_byte(str(tmp_path / "10"))
  manager = ocp.CheckpointManager(tmp_path)
  abstract = _abstract(_step_state(0))
  restored = manager.restore(10, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  manager.close()
  differs = jax.tree.map(lambda a, b: not np.array_equal(a, b), _to_host(restored.state), saved[10])
  assert sum(jax.tree.leaves(differs)) == 1


@no_stray_tracebacks
def test_every_checkpoint_corrupt_raises_one_line_error(tmp_path, capfd):
  _save_steps(tmp_path, [10, 20, 30])
  _flip_data_byte(str(tmp_path / "30"))
  shutil.rmtree(tmp_path / "20" / "state")
  os.remove(tmp_path / "10" / "state" / "manifest.ocdbt")
  before = _listing(tmp_path)
  capfd.readouterr()

  lines = []
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    with pytest.raises(ckpt_lib.CheckpointCorruptError) as info:
      ckpt.restore(_abstract(_step_state(0)), CONFIG)
  message = str(info.value)
  assert isinstance(info.value, ValueError)
  assert "\n" not in message
  assert info.value.__cause__ is None and info.value.__context__ is None
  assert message.startswith(f"every checkpoint in {tmp_path} failed verification (step 30 corrupt")
  assert re.search(r"step 20 unreadable: \S+/20/state missing", message)
  assert re.search(r"step 10 unreadable: \S+/10/state/manifest\.ocdbt missing", message)
  assert message.endswith(f"move {tmp_path} aside and re-run to start from scratch")
  assert [line.split(";")[-1] for line in lines] == [
      " falling back to step 20",
      " falling back to step 10",
  ]
  assert _listing(tmp_path) == before
  assert "Traceback" not in capfd.readouterr().err


@no_stray_tracebacks
def test_explicit_step_of_corrupt_checkpoint_raises(tmp_path):
  saved = _save_steps(tmp_path, [10, 20])
  _flip_data_byte(str(tmp_path / "20"))
  lines = []
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    with pytest.raises(ckpt_lib.CheckpointCorruptError) as info:
      ckpt.restore(_abstract(_step_state(0)), CONFIG, step=20)
    message = str(info.value)
    assert "\n" not in message
    assert re.fullmatch(
        r"checkpoint step 20 is corrupt: \S+/20/state fingerprint mismatch for \S+; restore "
        r"another step \(available: \[10, 20\]\) or pass step=None to fall back to the "
        r"newest good one",
        message,
    )
    assert lines == []  # an explicit step never falls back
    restored, _ = ckpt.restore(_abstract(_step_state(0)), CONFIG, step=10)
  chex.assert_trees_all_equal(_to_host(restored), saved[10])


def test_config_mismatch_is_not_corruption(tmp_path):
  _save_steps(tmp_path, [10, 20])
  _flip_data_byte(str(tmp_path / "20"))
  changed = {**CONFIG, "model": {**CONFIG["model"], "hidden": 16}}
  lines = []
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    with pytest.raises(CheckpointMismatchError, match=r"step 20 .*model\.hidden=8"):
      ckpt.restore(_abstract(_step_state(0)), changed)
  assert lines == []


def test_clean_round_trip_verifies_and_records_every_leaf(tmp_path):
  saved = _save_steps(tmp_path, [10])
  lines, hook = [], sys.unraisablehook
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    restored, _ = ckpt.restore(_abstract(_step_state(0)), CONFIG)
  chex.assert_trees_all_equal(_to_host(restored), saved[10])
  assert lines == []
  assert sys.unraisablehook is hook  # the traceback filter is only kept after a failure
  with open(tmp_path / "10" / "fingerprint" / "metadata") as f:
    recorded = json.load(f)["leaves"]
  shapes = {name: list(shape) for name, shape in ckpt_lib._flat_shapes(_step_state(0)).items()}
  assert {name: entry["shape"] for name, entry in recorded.items()} == shapes
  assert recorded["rng"]["dtype"] == "uint32"  # a typed key is fingerprinted as key data


def test_restore_in_another_dtype_verifies_the_saved_bytes(tmp_path):
  with Checkpointer(tmp_path, save_interval_steps=1, log_fn=pytest.fail) as ckpt:
    ckpt.save(1, _small(0.5), CONFIG)
    abstract = {"w": jax.ShapeDtypeStruct((4,), jnp.bfloat16, sharding=_replicated())}
    restored, _ = ckpt.restore(abstract, CONFIG)
  assert restored["w"].dtype == jnp.bfloat16
  assert restored["w"].sharding.is_equivalent_to(_replicated(), 1)
  np.testing.assert_array_equal(np.asarray(restored["w"], np.float32), np.arange(4.0) + 0.5)


def _save_without_fingerprint(directory, step, state):
  """Writes a checkpoint the way this module did before verification existed."""
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=True))
  args = ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      config=ocp.args.JsonSave(ckpt_lib.normalize_config(CONFIG)),
  )
  manager.save(step, args=args)
  manager.close()


def test_checkpoint_from_before_verification_restores_unverified(tmp_path):
  state = _step_state(10)
  _save_without_fingerprint(tmp_path, 10, state)
  lines = []
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    restored, _ = ckpt.restore(_abstract(_step_state(0)), CONFIG)
    chex.assert_trees_all_equal(_to_host(restored), _to_host(state))
    assert len(lines) == 1
    assert re.fullmatch(
        r"checkpoint step 10 predates verification \(no fingerprint item in \S+/10\); "
        r"restored it unverified",
        lines[0],
    )
    # New saves into the same directory are verified; a corrupt one falls back to the old.
    assert ckpt.save(20, _step_state(20), CONFIG)
  _flip_data_byte(str(tmp_path / "20"))
  lines.clear()
  with Checkpointer(tmp_path, save_interval_steps=10, log_fn=lines.append) as ckpt:
    restored, _ = ckpt.restore(_abstract(_step_state(0)), CONFIG)
  chex.assert_trees_all_equal(_to_host(restored), _to_host(state))
  assert [re.match(r"checkpoint step (\d+) ", line).group(1) for line in lines] == ["20", "10"]
  assert "falling back to step 10" in lines[0] and "predates verification" in lines[1]


def test_shard_fingerprints_are_checked_against_the_whole_restored_array():
  """Per-shard fingerprints (of leaves not fully addressable at save) check every slice.

  Here the restored array is fully addressable, so each recorded shard is compared with
  the same slice of the whole array, whatever sharding the restore asked for.
  """
  mesh = Mesh(jax.devices(), ("data",))
  x = jax.device_put(jnp.arange(32.0).reshape(8, 4), NamedSharding(mesh, P("data")))
  shards = {
      ckpt_lib._index_key(s.index, x.shape): ckpt_lib._sha256(np.asarray(s.data))
      for s in x.addressable_shards
  }
  assert sorted(shards) == ["0:2,0:4", "2:4,0:4", "4:6,0:4", "6:8,0:4"]
  entry = {"dtype": "float32", "shape": [8, 4], "shards": shards}
  assert ckpt_lib._first_mismatch({"x": x}, {"x": entry}) is None
  replicated = jax.device_put(x, _replicated())
  assert ckpt_lib._first_mismatch({"x": replicated}, {"x": entry}) is None
  assert ckpt_lib._first_mismatch({"x": replicated.at[5, 1].add(1.0)}, {"x": entry}) == "x"

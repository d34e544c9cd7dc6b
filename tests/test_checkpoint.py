"""Tests for pretrain_jax.train.checkpoint (Orbax CheckpointManager wrapper).

Oracles: the arrays that were saved (kept as host copies), the requested shardings,
the save/preservation policies restated as plain integer arithmetic, and a real process
killed in the middle of a save.
"""

import os
import re
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

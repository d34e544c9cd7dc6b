"""Data parallelism with ``jax.jit`` and shardings: a 1-D mesh named ``data``.

The batch is split along ``data``; the train state is replicated. The same code runs on
one CPU, every device of a host, or many hosts after ``jax.distributed.initialize()``.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis ``("data",)``, ``AxisType.Auto``."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def small_step_mesh() -> Mesh:
  """One device on a single-process CPU host, else ``make_mesh()``: for methods whose step
  is too small or too sequential to gain from splitting it over simulated CPU devices.

  With one simulated CPU device per core (``platform.configure_cpu``), every step ends in
  an all-reduce of the gradients through XLA's in-process rendezvous. For steps of a few
  milliseconds (the MLPs and RBMs of the generative family) or long sequential scans
  (ELMo's LSTMs) the split saves nothing, and the rendezvous has stalled: XLA aborted
  ELMo's demo on a busy 2-core host after its 40 s timeout, and a VAE demo on a quiet one
  (2026-11-23: both devices waiting at step 198, load average 0.8). A method opts in by
  ``make_mesh = sharding.small_step_mesh``; on GPU/TPU hosts and in multi-process runs
  it is the ordinary data-parallel mesh.

  Returns:
    A 1-D ``("data",)`` mesh with ``AxisType.Auto``.
  """
  if jax.default_backend() == "cpu" and jax.process_count() == 1:
    return Mesh(np.asarray(jax.local_devices()[:1]), ("data",), axis_types=(AxisType.Auto,))
  return make_mesh()


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``."""
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, what: str = "train.batch_size") -> None:
  """Raises ValueError unless the global batch splits evenly over devices and hosts.

  Args:
    global_batch_size: B, the batch across all devices of all processes.
    what: the config field it comes from, named in the message.

  Raises:
    ValueError: ``B < 1`` or B not divisible by ``jax.device_count()``; the one-line
      message names the field and a valid value.
  """
  devices = jax.device_count()
  if global_batch_size < 1 or global_batch_size % devices:
    suggestion = devices * max(1, global_batch_size // devices)
    raise ValueError(
        f"{what}={global_batch_size} is not divisible by the {devices} devices: "
        f"use a multiple of {devices} (e.g. --config.{what}={suggestion}).")


def batch_size_fields(config: Any, prefix: str = "") -> dict[str, int]:
  """Every ``*batch_size`` field of a (nested) config, by dotted path.

  Args:
    config: an ``ml_collections.ConfigDict`` or nested mapping.
    prefix: the dotted path of ``config`` itself (for recursion).

  Returns:
    ``{"train.batch_size": 128, "eval.batch_size": 1000, ...}``: the batch sizes a run
    will use, each of which must divide over the devices.
  """
  found = {}
  items = config.items() if hasattr(config, "items") else ()
  for key, value in items:
    path = f"{prefix}{key}"
    if hasattr(value, "items"):
      found.update(batch_size_fields(value, path + "."))
    elif key.endswith("batch_size") and isinstance(value, int):
      found[path] = value
  return found


def global_batch(host_batch: Any, mesh: Mesh) -> Any:
  """Assembles each host's share of the batch into global arrays sharded along ``data``.

  Args:
    host_batch: this process's rows of the global batch: any pytree of numpy arrays
      with a leading axis B/P (P the number of processes), e.g. ``{"image": uint8
      [B/P, H, W, C], "label": int32 [B/P]}``.
    mesh: the ``data`` mesh.

  Returns:
    The same pytree of global ``jax.Array`` of leading size B, sharded ``P("data")``.
  """
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda value: jax.make_array_from_process_local_data(sharding, value),
                      host_batch)


def replicate_tree(tree: Any, mesh: Mesh) -> Any:
  """The replicated sharding for every leaf of ``tree`` (arrays or ShapeDtypeStructs)."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda _: sharding, tree)

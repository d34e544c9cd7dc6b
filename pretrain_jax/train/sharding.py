"""Data parallelism with ``jax.jit`` and shardings: a 1-D mesh named ``data``.

The batch is split along ``data``; the train state is replicated. The same code runs on
one CPU, every device of a host, or many hosts after ``jax.distributed.initialize()``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis ``("data",)``, ``AxisType.Auto``."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``."""
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, what: str = "train.batch_size") -> None:
  """Raises ValueError unless the global batch splits evenly over devices and hosts."""
  devices = jax.device_count()
  if global_batch_size % devices:
    raise ValueError(
        f"{what}={global_batch_size} is not divisible by the {devices} devices: "
        f"use a multiple of {devices} (e.g. --config.{what}={devices * max(1, global_batch_size // devices)}).")


def global_batch(host_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each host's share of the batch into global arrays sharded along ``data``.

  Args:
    host_batch: this process's rows of the global batch, e.g. ``{"image": uint8 [B/P, H,
      W, C], "label": int32 [B/P]}`` with P the number of processes.
    mesh: the ``data`` mesh.

  Returns:
    The same keys as global ``jax.Array`` of leading size B, sharded ``P("data")``.
  """
  sharding = batch_sharding(mesh)
  return {name: jax.make_array_from_process_local_data(sharding, value)
          for name, value in host_batch.items()}


def replicate_tree(tree: Any, mesh: Mesh) -> Any:
  """The replicated sharding for every leaf of ``tree`` (arrays or ShapeDtypeStructs)."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda _: sharding, tree)

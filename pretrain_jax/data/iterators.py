"""Deterministic, resumable batch selection: batches are a pure function of (seed, step).

A run that restarts from a checkpoint at step s calls ``host_batch(..., step=s)`` and sees
exactly the batches an uninterrupted run would have seen: no iterator state to save.
Every process computes the same global batch indices and reads only its own contiguous
share; the train loop assembles the global array with
``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Returns ``num_examples // batch_size``: full batches per epoch (the remainder is dropped).

  Args:
    num_examples: size N of the dataset being iterated.
    batch_size: global batch size B, ``1 <= B <= N``.

  Returns:
    Number of steps per epoch.

  Raises:
    ValueError: ``batch_size < 1`` or ``batch_size > num_examples``.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be >= 1.")
  if batch_size > num_examples:
    raise ValueError(f"batch_size={batch_size} exceeds num_examples={num_examples}; use a "
                     "smaller batch or a larger dataset.")
  return num_examples // batch_size


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  permutation = np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int64)
  permutation.setflags(write=False)  # Shared by the cache: never mutated.
  return permutation


def batch_indices(seed: int, step: int, num_examples: int, batch_size: int) -> np.ndarray:
  """Example indices of the global batch at ``step``: a pure function of its arguments.

  Epoch ``e = step // steps_per_epoch`` shuffles ``range(num_examples)`` with the
  permutation of ``np.random.default_rng([seed, e])``; step ``step`` takes the slice
  ``[j * B, (j + 1) * B)`` of it with ``j = step % steps_per_epoch``. The last
  ``num_examples % B`` examples of each epoch's permutation are dropped (different ones
  every epoch). Sampling without replacement within an epoch, as in SGD by epochs
  (the reshuffling advised in Bottou 2012, "Stochastic Gradient Descent Tricks").

  Args:
    seed: non-negative int selecting the data order.
    step: non-negative global step counter (0-based).
    num_examples: dataset size N.
    batch_size: global batch size B, ``1 <= B <= N``.

  Returns:
    int64 ``[B]`` distinct indices into ``range(N)``.

  Raises:
    ValueError: negative seed or step, or a batch size outside ``[1, N]``.
  """
  if seed < 0 or step < 0:
    raise ValueError(f"seed={seed} and step={step} must be non-negative ints.")
  per_epoch = steps_per_epoch(num_examples, batch_size)
  epoch, within = divmod(int(step), per_epoch)
  permutation = _epoch_permutation(int(seed), epoch, int(num_examples))
  return permutation[within * batch_size:(within + 1) * batch_size].copy()


def host_slice(global_batch_size: int) -> slice:
  """This process's contiguous share of a global batch.

  Process ``p`` of ``P`` (``jax.process_index()``, ``jax.process_count()``) gets
  ``[p * B / P, (p + 1) * B / P)``; the shares of all processes partition ``range(B)``
  in process order, matching ``jax.make_array_from_process_local_data`` for a batch
  sharded along its leading axis.

  Args:
    global_batch_size: B, divisible by the number of processes.

  Returns:
    A ``slice`` into a length-B batch.

  Raises:
    ValueError: B not divisible by the process count.
  """
  count, index = jax.process_count(), jax.process_index()
  if global_batch_size % count:
    raise ValueError(f"global_batch_size={global_batch_size} is not divisible by the "
                     f"{count} processes; pick a multiple of {count}.")
  per_host = global_batch_size // count
  return slice(index * per_host, (index + 1) * per_host)


def num_examples(split: Any) -> int:
  """The common leading size N of every array of a split (a pytree of arrays).

  Raises:
    ValueError: an empty split, a scalar leaf, or arrays of different lengths.
  """
  leaves = jax.tree.leaves(split)
  if not leaves:
    raise ValueError("a split needs at least one array.")
  lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
  if None in lengths or len(lengths) != 1:
    shapes = jax.tree.map(np.shape, split)
    raise ValueError(f"every array of a split needs the same leading (example) axis; got {shapes}.")
  return lengths.pop()


def host_batch(split: Any, seed: int, step: int, global_batch_size: int) -> Any:
  """Reads this process's share of the global batch at ``step`` (numpy, on host).

  Args:
    split: any pytree of arrays with a common leading example axis N, e.g.
      ``{"image": uint8 [N, H, W, C], "label": int32 [N]}`` or
      ``{"tokens": int32 [N, T]}`` (anything indexable by an int64 index array).
    seed: non-negative int selecting the data order (see ``batch_indices``).
    step: non-negative global step.
    global_batch_size: B across all processes; divisible by ``jax.process_count()``.

  Returns:
    The same pytree with leading axis ``B / P`` on every leaf, as numpy arrays.

  Raises:
    ValueError: arrays of different lengths, or any error of ``batch_indices`` /
      ``host_slice``.
  """
  indices = batch_indices(seed, step, num_examples(split), global_batch_size)
  indices = indices[host_slice(global_batch_size)]
  return jax.tree.map(lambda leaf: np.asarray(leaf[indices]), split)

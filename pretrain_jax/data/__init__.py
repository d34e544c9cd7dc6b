"""Data: datasets by name, offline fetch, deterministic batch iterators, augmentations.

Modules: ``datasets`` (``DATASETS``, ``load``, ``train_val_split``), ``fetch``
(``python -m pretrain_jax.data.fetch NAME``), ``iterators`` (``batch_indices``,
``host_batch``) and ``augment`` (pure JAX augmentations). Only the numpy-only
``datasets`` API is re-exported here, so the fetch command does not import JAX.
"""

from pretrain_jax.data.datasets import DATASETS, DatasetInfo, load, train_val_split

__all__ = ["DATASETS", "DatasetInfo", "load", "train_val_split"]

"""Data: datasets by name, offline fetch, deterministic batch iterators, augmentations.

Modules: ``datasets`` (``DATASETS``, ``load``, ``train_val_split``), ``fetch``
(``python -m pretrain_jax.data.fetch NAME``), ``iterators`` (``batch_indices``,
``host_batch``), ``augment`` (pure JAX augmentations), ``text`` (the English corpora as
documents, split by document), ``tokenizers`` (the word tokenizer and BPE) and ``vocab``
(vocabulary, subsampling, noise distribution and window chunks of the word vectors).
Only the numpy-only ``datasets`` API is re-exported here, so the fetch command does not
import JAX.
"""

from pretrain_jax.data.datasets import DATASETS, DatasetInfo, load, train_val_split

__all__ = ["DATASETS", "DatasetInfo", "load", "train_val_split"]

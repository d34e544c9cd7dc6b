"""k-nearest-neighbour accuracy of frozen features under cosine similarity.

The non-parametric companion of the linear probe (Wu, Xiong, Yu & Lin 2018, "Unsupervised
Feature Learning via Non-Parametric Instance Discrimination", Section 3.4; Caron et al.
2021, DINO, Section 4.1, use k = 20): every query takes the majority label of its k most
cosine-similar training features.

Conventions (chosen to match scikit-learn's
`KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")`):
  * Votes are unweighted (one vote per neighbour).
  * A tie between classes goes to the smallest label (argmax of the vote counts).
  * Among training points equally similar to the query, the one with the lower index is
    taken first (`jax.lax.top_k`); only exact similarity ties at the k-th place are
    affected.
  * Zero vectors are left at zero after normalisation, so their similarity to anything
    is 0 (scikit-learn's cosine distance 1).

Queries are processed in chunks of `batch_size` (the last one padded), so memory is
O(batch_size · N_train) rather than O(N_query · N_train); one compilation serves all
chunks. Shape legend: N training points, B queries in a chunk, D feature dim, K classes.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Norms are clipped below at this value before dividing, so zero vectors stay zero.
_NORM_EPS = 1e-12


def _l2_normalize(x):
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
  return x / jnp.maximum(norm, _NORM_EPS)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _predict_chunk(train_unit_NxD, train_labels_N, query_BxD, *, k, num_classes):
  similarity_BxN = _l2_normalize(query_BxD) @ train_unit_NxD.T
  _, neighbours_Bxk = jax.lax.top_k(similarity_BxN, k)
  votes_BxK = jnp.sum(jax.nn.one_hot(train_labels_N[neighbours_Bxk], num_classes,
                                     dtype=jnp.int32), axis=1)
  return jnp.argmax(votes_BxK, axis=-1).astype(jnp.int32)


def knn_predict(train_features, train_labels, query_features, *, k=20, num_classes,
                batch_size=512):
  """Majority vote of the k most cosine-similar training points, for every query.

  Args:
    train_features: float array [N, D] (numpy or jax).
    train_labels: int array [N], in [0, num_classes).
    query_features: float array [M, D].
    k: int, number of neighbours, 1 ≤ k ≤ N.
    num_classes: int K ≥ 1.
    batch_size: int ≥ 1, queries per chunk; memory is about 4 · batch_size · N bytes.

  Returns:
    int32 numpy array [M], predicted labels (ties to the smallest label, see module
    docstring).

  Raises:
    ValueError: on malformed shapes, labels out of range, or k outside [1, N].
  """
  train_features = jnp.asarray(train_features, jnp.float32)
  query_features = np.asarray(query_features, np.float32)
  train_labels = np.asarray(train_labels)
  if train_features.ndim != 2 or query_features.ndim != 2:
    raise ValueError(
        "knn: features must be [N, D]; got train "
        f"{train_features.shape} and query {query_features.shape}.")
  num_train, dim = train_features.shape
  if query_features.shape[1] != dim:
    raise ValueError(
        f"knn: train and query feature dims differ: {dim} vs {query_features.shape[1]}.")
  if train_labels.shape != (num_train,) or not np.issubdtype(train_labels.dtype, np.integer):
    raise ValueError(f"knn: train_labels must be integer [{num_train}]; got "
                     f"{train_labels.dtype} {train_labels.shape}.")
  if num_train and (train_labels.min() < 0 or train_labels.max() >= num_classes):
    raise ValueError(f"knn: train_labels must lie in [0, num_classes={num_classes}).")
  if not 1 <= k <= num_train:
    raise ValueError(f"knn: k must be in [1, N={num_train}]; got {k}.")
  if batch_size < 1:
    raise ValueError(f"knn: batch_size must be ≥ 1; got {batch_size}.")

  train_unit = _l2_normalize(train_features)
  labels = jnp.asarray(train_labels, jnp.int32)
  num_query = query_features.shape[0]
  batch_size = min(batch_size, max(num_query, 1))
  predictions = []
  for start in range(0, num_query, batch_size):
    chunk = query_features[start:start + batch_size]
    padded = np.zeros((batch_size, dim), np.float32)
    padded[:chunk.shape[0]] = chunk
    predicted = _predict_chunk(train_unit, labels, padded, k=k, num_classes=num_classes)
    predictions.append(np.asarray(predicted)[:chunk.shape[0]])
  if not predictions:
    return np.zeros((0,), np.int32)
  return np.concatenate(predictions)


def knn_accuracy(train_features, train_labels, query_features, query_labels, *, k=20,
                 num_classes, batch_size=512):
  """Cosine-similarity kNN classification accuracy (fraction in [0, 1]).

  Args:
    train_features: float array [N, D] (numpy or jax), the labelled reference set.
    train_labels: int array [N], in [0, num_classes).
    query_features: float array [M, D], M ≥ 1.
    query_labels: int array [M].
    k: int, number of neighbours (20 as in Wu et al. 2018 and DINO).
    num_classes: int K.
    batch_size: int, queries per chunk; 512 × 55,000 float32 similarities is 113 MB.

  Returns:
    float, the fraction of queries whose majority-vote label equals their label.

  Raises:
    ValueError: as `knn_predict`, or if query_labels is not integer [M] or M = 0.
  """
  query_labels = np.asarray(query_labels)
  num_query = np.shape(query_features)[0] if np.ndim(query_features) == 2 else -1
  if num_query < 1 or query_labels.shape != (num_query,) or not np.issubdtype(
      query_labels.dtype, np.integer):
    raise ValueError(
        f"knn_accuracy: need query_features [M ≥ 1, D] and integer query_labels [M]; got "
        f"{np.shape(query_features)} and {query_labels.dtype} {query_labels.shape}.")
  predicted = knn_predict(train_features, train_labels, query_features, k=k,
                          num_classes=num_classes, batch_size=batch_size)
  return int(np.sum(predicted == query_labels)) / num_query

"""gensim's Word2Vec (cbow, skip-gram) and FastText on our tokens: the reference rows.

Řehůřek & Sojka (2010), "Software framework for topic modelling with large corpora"
(gensim 4): the implementation researchers use for word vectors today. It trains on the
same train-split sentences as our methods (``word_vectors.train_sentences``) with the same
hyper-parameters (``word2vec`` section: vector size, window, negatives, ns_exponent,
min_count, sample, epochs, alpha, min_alpha; ``fasttext`` section for FastText) and
``gensim.workers`` threads, and is scored by the same ``word_vectors.score_vectors``.
An optional dependency: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import ml_collections
import numpy as np

from pretrain_jax.eval import word_vectors as wv_eval
from pretrain_jax.methods import word_vectors

NAME = "gensim_reference"
SUPERVISION = "none (next words)"
MODELS = ("cbow", "skipgram", "fasttext")


class Fitted(NamedTuple):
  """gensim's trained KeyedVectors and what words/s needs."""

  keyed_vectors: Any
  seconds: float
  train_words: int
  oov_handled: bool


def prepare_data(config: ml_collections.ConfigDict, info: Any, data: dict[str, Any]):
  """The train split as the sentences gensim reads (lists of word tokens)."""
  del config
  return info, {"train": word_vectors.train_sentences(data["train"]), "val": data["val"],
                "test": data["test"]}


def build_model(config: ml_collections.ConfigDict):
  """gensim's model for ``gensim.model`` with the run's hyper-parameters, before training.

  Args:
    config: the run's config (``gensim.model``, ``gensim.workers``, the ``word2vec``
      section, and for FastText the ``fasttext`` section).

  Returns:
    An untrained ``gensim.models.Word2Vec`` (sg=1 for skip-gram, 0 for cbow; negative
    sampling, no hierarchical softmax) or ``gensim.models.FastText``.

  Raises:
    ImportError: gensim is not installed (one line: how to install it).
    ValueError: an unknown ``gensim.model``.
  """
  try:
    from gensim import models  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("the gensim reference rows need gensim: pip install -e '.[bench]'.") from error
  section, model_name = config.word2vec, config.gensim.model
  if model_name not in MODELS:
    raise ValueError(f"gensim.model={model_name!r}: use one of {MODELS}.")
  common = dict(vector_size=section.vector_size, window=section.window, negative=section.negative,
                ns_exponent=section.ns_exponent, min_count=section.min_count,
                sample=section.sample, alpha=section.alpha, min_alpha=section.min_alpha,
                workers=config.gensim.workers, seed=config.seed + 1, hs=0)
  if model_name == "fasttext":
    fasttext = config.fasttext
    return models.FastText(sg=int(fasttext.architecture == "skipgram"), min_n=fasttext.min_n,
                           max_n=fasttext.max_n, bucket=fasttext.bucket, **common)
  return models.Word2Vec(sg=int(model_name == "skipgram"), **common)


def fit(train: list[list[str]], config: ml_collections.ConfigDict) -> Fitted:
  """Builds gensim's vocabulary and trains ``build_model(config)`` on ``train``.

  Args:
    train: sentences of word tokens.
    config: the run's config (as ``build_model``).

  Returns:
    gensim's vectors; ``seconds`` is the wall time of ``train`` (its subsampling, windows
    and updates), the counterpart of our methods' training steps: both exclude building
    the vocabulary (gensim's ``build_vocab``, our ``prepare_data``).
    ``benchmarks/word2vec.py`` times both sides from tokens to vectors.

  Raises:
    As ``build_model``.
  """
  model = build_model(config)
  model.build_vocab(train)
  started = time.perf_counter()
  model.train(train, total_examples=model.corpus_count, epochs=config.word2vec.epochs)
  seconds = time.perf_counter() - started
  train_words = sum(len(s) for s in train) * config.word2vec.epochs
  return Fitted(model.wv, seconds, train_words, config.gensim.model == "fasttext")


def evaluate(fitted: Fitted, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """``word_vectors.score_vectors`` of gensim's vectors (FastText: also unseen words)."""
  del data
  keyed = fitted.keyed_vectors
  vectors = wv_eval.WordVectors(words=tuple(keyed.index_to_key),
                                vectors=np.asarray(keyed.vectors, np.float32))
  return word_vectors.score_vectors(vectors, config, workdir, train_words=fitted.train_words,
                                    seconds=fitted.seconds, oov_handled=fitted.oov_handled)

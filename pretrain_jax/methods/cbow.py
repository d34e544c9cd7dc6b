"""Continuous bag of words (cbow) with negative sampling: the context predicts the centre.

Mikolov et al. (2013a), "Efficient estimation of word representations in vector space",
Sec. 3.1; the slides' score s(w | c) = (1/|c|) Σ_{w′∈c} e′(w)ᵀe(w′) (the mean of the
context's input vectors against the centre's output vector) in the negative-sampling
loss ln(1 + e^{−s(w,c)}) + Σ_{n∈N_c} ln(1 + e^{s(n,c)}). Data, step and evaluation are the
word-vector family's (``methods.word_vectors``).
"""

from __future__ import annotations

from pretrain_jax.methods import word_vectors

NAME = "cbow"
SUPERVISION = "none (next words)"
ARCHITECTURE = "cbow"

prepare_data = word_vectors.prepare_data
make_mesh = word_vectors.make_mesh
make_model = word_vectors.make_model
make_optimizer = word_vectors.make_optimizer
evaluate = word_vectors.evaluate


def make_train_step(run):
  """The sparse SGD step of cbow (``word_vectors.make_train_step``)."""
  return word_vectors.make_train_step(run, ARCHITECTURE)

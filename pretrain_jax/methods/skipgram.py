"""Skip-gram with negative sampling: each context word predicts the centre word.

Mikolov et al. (2013b), "Distributed representations of words and phrases and their
compositionality", eq. 4; the slides' ln(1 + e^{−s(w,c)}) + Σ_{n∈N_c} ln(1 + e^{s(n,c)}) with
s(w, c) = e′(w)ᵀe(c) for every context word c within the centre's reduced window. Data,
step and evaluation are the word-vector family's (``methods.word_vectors``).
"""

from __future__ import annotations

from pretrain_jax.methods import word_vectors

NAME = "skipgram"
SUPERVISION = "none (next words)"
ARCHITECTURE = "skipgram"

prepare_data = word_vectors.prepare_data
make_mesh = word_vectors.make_mesh
make_model = word_vectors.make_model
make_optimizer = word_vectors.make_optimizer
evaluate = word_vectors.evaluate


def make_train_step(run):
  """The sparse SGD step of skip-gram (``word_vectors.make_train_step``)."""
  return word_vectors.make_train_step(run, ARCHITECTURE)

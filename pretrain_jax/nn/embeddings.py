"""The two embedding tables of word2vec and fastText (input e and output e′).

Mikolov et al. (2013a, 2013b) learn an input vector e(w) and an output vector e′(w) for
every word; the score of a word w in a context c is an inner product of the two (the
slides' s(w, c)). fastText (Bojanowski et al. 2017) gives the input table extra rows, one
per hashed character n-gram bucket, and averages a word's rows. Initialisation follows
word2vec.c and gensim: input rows uniform in [−0.5/D, 0.5/D), output rows zero.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp


class WordEmbeddings(nnx.Module):
  """Input and output embedding tables.

  Args:
    num_inputs: rows of the input table (the vocabulary size V, plus the n-gram buckets
      for fastText).
    num_outputs: rows of the output table (the vocabulary size V).
    features: the vector size D.
    rngs: ``params`` stream for the input table's uniform initialisation.

  Attributes:
    input_embedding: ``nnx.Param`` float32 ``[num_inputs, D]``, e (word2vec's syn0).
    output_embedding: ``nnx.Param`` float32 ``[num_outputs, D]``, e′ (syn1neg).

  Raises:
    ValueError: a size below 1.
  """

  def __init__(self, num_inputs: int, num_outputs: int, features: int, *, rngs: nnx.Rngs):
    if min(num_inputs, num_outputs, features) < 1:
      raise ValueError(f"num_inputs={num_inputs}, num_outputs={num_outputs} and "
                       f"features={features} must be >= 1.")
    bound = 0.5 / features
    self.input_embedding = nnx.Param(jax.random.uniform(
        rngs.params(), (num_inputs, features), jnp.float32, -bound, bound))
    self.output_embedding = nnx.Param(jnp.zeros((num_outputs, features), jnp.float32))

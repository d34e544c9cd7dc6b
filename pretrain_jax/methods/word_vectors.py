"""What the word-vector methods share: data preparation, the sparse SGD step, evaluation.

cbow and skip-gram with negative sampling (Mikolov et al. 2013a, "Efficient estimation of
word representations in vector space"; 2013b, "Distributed representations of words and
phrases and their compositionality") and fastText's subword variant (Bojanowski et al.
2017, "Enriching word vectors with subword information") differ only in how a position's
input vector is formed (a word's own row, or the mean of its subword rows) and in which
scores are taken (each context word against the centre word: skip-gram; the mean of the
context against the centre: cbow). The slides' objective for a word w and context c,

  ℓ(w, c) = ln(1 + e^{−s(w, c)}) + Σ_{n ∈ N_c} ln(1 + e^{s(n, c)}),

(``objectives.infonce.negative_sampling_loss``) is summed over the pairs of a batch; the
step takes its gradient with respect to the rows it touched (``jax.grad`` on the gathered
rows) and applies plain SGD to those rows only, at the learning rate α decayed linearly to
``min_alpha`` over the run, as word2vec.c and gensim do.

Data. ``prepare_data`` tokenises the train documents (``data.tokenizers.sentences``),
builds the vocabulary (``min_count``), and turns ``epochs`` fresh subsamples of the id
stream into chunks of ``chunk_size`` consecutive centres with ``window`` tokens of context
on each side (``data.vocab.window_chunks``): one pass of the loop over the train split is
``epochs`` passes over the corpus. The step draws, per centre, the reduced window
b ~ U{1..window}, and per chunk its noise words from P_n ∝ count^0.75 (a noise word equal
to a term's centre is skipped, as in the reference implementations); a window never
crosses a sentence boundary.

As in word2vec.c and gensim, cbow's context rows receive the whole gradient with respect
to the context mean h (not 1/|c| of it). Differences, chosen for batched updates: the
updates of one step (``train.batch_size`` chunks × ``chunk_size`` centres) are summed
(Hogwild-style, as when many threads write the same rows) instead of applied one term at
a time; each chunk draws ``shared_negatives`` noise words shared by all its terms, each
weighted K/N (word2vec.c draws K per term: the same expectation, fewer distinct rows to
update); the chunks of all epochs are shuffled together.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Sequence

from etils import epath
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from pretrain_jax.data import text
from pretrain_jax.data import tokenizers
from pretrain_jax.data import vocab as vocab_lib
from pretrain_jax.eval import word_vectors as wv_eval
from pretrain_jax.nn.embeddings import WordEmbeddings
from pretrain_jax.objectives.infonce import negative_sampling_loss

ARCHITECTURES = ("cbow", "skipgram")

# The word-vector table's columns (keys of results.json), in order.
TABLE_COLUMNS = ("method", "words_per_second", "ws353_spearman", "analogy_semantic",
                 "analogy_syntactic", "analogy_accuracy", "oov_handled")


@dataclasses.dataclass(frozen=True)
class WordVectorData:
  """What ``prepare_data`` learned from the train split, handed to the model and the step.

  Attributes:
    name: the corpus name (``config.data.name``).
    vocab: the ``data.vocab.Vocabulary`` of the train split.
    subwords: int32 ``[V, M]``: the input-table rows whose mean is word ``i``'s input
      vector (``-1`` pads), or None when every word has just its own row ``i``.
    num_inputs: rows of the input table (V, plus the subword rows).
    fingerprint: hex sha256 of the vocabulary and the subword table: a checkpoint
      trained with other words or subwords is refused on resume.
    subword_fn: maps any word (also one out of the vocabulary) to its input rows, or
      None (no vectors for unseen words).
    tokenizer: the BPE tokenizer whose pieces are the subwords, or None; its sha256 is
      part of ``fingerprint``.
  """

  name: str
  vocab: vocab_lib.Vocabulary
  subwords: np.ndarray | None
  num_inputs: int
  fingerprint: str
  subword_fn: Callable[[str], Sequence[int]] | None = None
  tokenizer: Any = None


def train_sentences(documents: Sequence[Any]) -> list[list[str]]:
  """The word tokens of the train documents, sentence by sentence (``tokenizers.sentences``).

  Args:
    documents: the loop's train split of a text corpus (objects with a ``text`` field).

  Returns:
    The sentences in document order, each a list of lower-cased word tokens.
  """
  return list(tokenizers.corpus_sentences(doc.text for doc in documents))


def prepare_data(config: ml_collections.ConfigDict, info: Any, data: dict[str, Any], *,
                 subwords_fn: Callable | None = None) -> tuple[WordVectorData, dict[str, Any]]:
  """Vocabulary and window chunks of the train documents (the loop's ``prepare_data``).

  Args:
    config: the run's config (``word2vec`` section: ``min_count``, ``sample``, ``epochs``,
      ``window``, ``chunk_size``; ``seed``).
    info: the corpus description from the data layer (its ``name`` is kept).
    data: the loop's splits of documents (``data.text.load_for_config``).
    subwords_fn: as ``prepare_sentences``.

  Returns:
    ``(WordVectorData, splits)``: ``splits["train"]`` is ``prepare_sentences``'s chunks of
    the train documents' sentences (``train_sentences``); ``val``/``test`` are the
    documents as given.

  Raises:
    EmptyVocabularyError: no word reaches ``min_count`` (one line: what to change).
  """
  name = getattr(info, "name", config.data.name)
  prepared, chunks = prepare_sentences(config, name, train_sentences(data["train"]),
                                       subwords_fn=subwords_fn)
  return prepared, {"train": chunks, "val": data["val"], "test": data["test"]}


def prepare_sentences(config: ml_collections.ConfigDict, name: str,
                      sentences: Sequence[Sequence[str]], *,
                      subwords_fn: Callable | None = None) -> tuple[WordVectorData, dict[str, np.ndarray]]:
  """Vocabulary, subwords and window chunks of tokenised sentences.

  Args:
    config: as ``prepare_data``.
    name: the corpus name, kept in the ``WordVectorData``.
    sentences: lists of word tokens (what gensim's ``Word2Vec`` reads).
    subwords_fn: ``subwords_fn(vocab, sentences, config) -> (subwords int32 [V, M],
      num_inputs, word_fn, tokenizer or None)`` for subword methods (fastText,
      ``fasttext.Subwords``); None for plain words.

  Returns:
    ``(WordVectorData, chunks)`` with chunks
    ``{"tokens": int32 [M, L + 2W], "sentence": int32 [M, L + 2W]}``
    (``vocab.window_chunks``: ``epochs`` subsamples of the id stream).

  Raises:
    EmptyVocabularyError: no word reaches ``min_count``.
  """
  section = config.word2vec
  vocabulary = vocab_lib.Vocabulary.build(sentences, section.min_count)
  ids, sentence = vocabulary.encode(sentences)
  chunks = vocab_lib.window_chunks(
      ids, sentence, vocab_lib.keep_probabilities(vocabulary.counts, section.sample),
      epochs=section.epochs, window=section.window, chunk_size=section.chunk_size,
      seed=config.seed)
  subwords, num_inputs, word_fn, tokenizer = None, len(vocabulary), None, None
  if subwords_fn is not None:
    subwords, num_inputs, word_fn, tokenizer = subwords_fn(vocabulary, sentences, config)
  digest = hashlib.sha256(vocabulary.sha256().encode())
  if subwords is not None:
    digest.update(np.ascontiguousarray(subwords).tobytes())
  if tokenizer is not None:
    digest.update(tokenizer.sha256.encode())
  prepared = WordVectorData(name=name, vocab=vocabulary, subwords=subwords,
                            num_inputs=num_inputs, fingerprint=digest.hexdigest(),
                            subword_fn=word_fn, tokenizer=tokenizer)
  return prepared, chunks


def make_model(config: ml_collections.ConfigDict, info: WordVectorData, *,
               rngs: nnx.Rngs) -> WordEmbeddings:
  """The input table (``info.num_inputs`` rows) and output table (V rows), D = vector_size."""
  return WordEmbeddings(info.num_inputs, len(info.vocab), config.word2vec.vector_size, rngs=rngs)


def make_mesh() -> jax.sharding.Mesh:
  """One device: the word-vector step runs on the first device of this process.

  Every step adds sparse row updates to tables that would be replicated on each device:
  sharding the batch would save only the gradient arithmetic, while every device would
  still apply every row update, after an all-gather of them. On the 2-core CPU one device
  ran as fast as two, and the all-gather stalled when its participants waited on the same
  few cores (XLA's in-process rendezvous aborts after 40 s).
  """
  return jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), ("data",),
                           axis_types=(jax.sharding.AxisType.Auto,))


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """No optax state: the word-vector step applies its own sparse SGD."""
  del config, num_steps
  return optax.identity()


def chunk_loss(inputs_BxPxD, center_rows_BxLxD, noise_rows_BxNxD, batch: dict[str, jax.Array],
               reduced_BxL, noise_BxN, *, architecture: str, window: int, negative: int,
               cbow_full_context_gradient: bool = True):
  """The slides' objective summed over every (centre, context) term of a batch of chunks.

  Chunk b holds P = L + 2W positions; centre l sits at position W + l. Position p is a
  context of centre l when 1 ≤ |p − W − l| ≤ b_l (the centre's reduced window), both
  tokens are words and they share a sentence. The chunk's N noise words are shared by
  all its terms, each term weighting them by K/N, so the noise part is an N-sample
  estimate of the same expectation as K samples per term (K = ``negative``); a noise
  word equal to the term's centre is left out, as in word2vec.c. With w the centre, c
  the context and n ∈ N the chunk's noise words,

  * skip-gram, one term per pair: ℓ = ln(1 + e^{−e′(w)ᵀe(c)}) + (K/N) Σ_{n≠w} ln(1 + e^{e′(n)ᵀe(c)});
  * cbow, one term per centre with h = mean of its contexts' e(c):
    ℓ = ln(1 + e^{−e′(w)ᵀh}) + (K/N) Σ_{n≠w} ln(1 + e^{e′(n)ᵀh}),

  i.e. ``objectives.infonce.negative_sampling_loss`` with weighted negatives. Scores are
  taken as one matrix product per chunk (every position against every output row) and
  the mask keeps the terms above: on CPU and accelerators that is faster than per-term
  dot products.

  Args:
    inputs_BxPxD: float32 input vectors e(·) of the chunk positions.
    center_rows_BxLxD: float32 output vectors e′(w) of the centres.
    noise_rows_BxNxD: float32 output vectors e′(n) of the chunk's noise words.
    batch: ``{"tokens": int32 [B, P], "sentence": int32 [B, P]}`` (``PAD_ID`` = −1).
    reduced_BxL: int32 ``[B, L]``, each centre's window b in ``[1, W]``.
    noise_BxN: int32 ``[B, N]`` noise word ids.
    architecture: ``"cbow"`` or ``"skipgram"``.
    window: W.
    negative: K, noise words per term.
    cbow_full_context_gradient: cbow only: the value is unchanged, but the gradient
      reaching each context's input vector is ∂ℓ/∂h instead of ∂ℓ/∂h / |c|, the update
      rule of word2vec.c and gensim (their input vectors learn |c| times faster; with the
      exact gradient our cbow trailed gensim's by 4 analogy points on the full corpus).
      False gives the exact gradient of ℓ.

  Returns:
    ``(loss, num_terms)``: the summed loss in nats and the number of terms (skip-gram
    pairs or cbow centres with a context).
  """
  tokens_BxP, sentence_BxP = batch["tokens"], batch["sentence"]
  length, num_noise = center_rows_BxLxD.shape[1], noise_rows_BxNxD.shape[1]
  centers_BxL = tokens_BxP[:, window:window + length]
  offset_PxL = jnp.arange(length + 2 * window)[:, None] - window - jnp.arange(length)[None, :]
  context_BxPxL = ((offset_PxL != 0)[None] & (jnp.abs(offset_PxL)[None] <= reduced_BxL[:, None, :])
                   & (tokens_BxP >= 0)[:, :, None] & (centers_BxL >= 0)[:, None, :]
                   & (sentence_BxP[:, :, None] == sentence_BxP[:, None, window:window + length]))
  # Weight of noise word n in a term whose centre is l: K/N, or 0 if n is that centre.
  noise_weight_BxLxN = (noise_BxN[:, None, :] != centers_BxL[:, :, None]) * (negative / num_noise)
  context_f32 = context_BxPxL.astype(jnp.float32)
  if architecture == "skipgram":
    positive_BxPxL = jnp.einsum("bpd,bld->bpl", inputs_BxPxD, center_rows_BxLxD)
    noise_BxPxN = jnp.einsum("bpd,bnd->bpn", inputs_BxPxD, noise_rows_BxNxD)
    # Σ over the pairs (p, l) of p's noise terms = Σ_n softplus(s_pn) Σ_l [p ctx of l] w_ln.
    pair_noise_weight_BxPxN = jnp.einsum("bpl,bln->bpn", context_f32, noise_weight_BxLxN)
    loss = (jnp.sum(jnp.where(context_BxPxL, jax.nn.softplus(-positive_BxPxL), 0.0))
            + jnp.sum(pair_noise_weight_BxPxN * jax.nn.softplus(noise_BxPxN)))
    return loss, jnp.sum(context_BxPxL)
  count_BxL = context_f32.sum(1)
  sum_BxLxD = jnp.einsum("bpl,bpd->bld", context_f32, inputs_BxPxD)
  hidden_BxLxD = sum_BxLxD / jnp.maximum(count_BxL, 1.0)[..., None]
  if cbow_full_context_gradient:
    # word2vec.c / gensim (cbow_mean=1): h is the mean, but every context row receives the
    # whole ∂ℓ/∂h, i.e. |c| times the gradient of the mean (forward: mean, backward: sum).
    hidden_BxLxD = sum_BxLxD + jax.lax.stop_gradient(hidden_BxLxD - sum_BxLxD)
  positive_BxL = jnp.einsum("bld,bld->bl", hidden_BxLxD, center_rows_BxLxD)
  noise_BxLxN = jnp.einsum("bld,bnd->bln", hidden_BxLxD, noise_rows_BxNxD)
  losses_BxL = negative_sampling_loss(positive_BxL, noise_BxLxN, noise_weight_BxLxN)
  has_context = count_BxL > 0
  return jnp.sum(jnp.where(has_context, losses_BxL, 0.0)), jnp.sum(has_context)


def batch_loss(input_rows, center_rows, noise_rows, batch: dict[str, jax.Array], reduced_BxL,
               noise_BxN, *, architecture: str, window: int, negative: int, subwords_mask=None,
               cbow_full_context_gradient: bool = True):
  """``chunk_loss`` as a function of the table rows a batch touches (what ``jax.grad`` sees).

  Args:
    input_rows: float32 ``[B, P, D]`` input rows of the chunk positions, or
      ``[B, P, M, D]`` subword rows whose masked mean is the input vector (fastText).
    center_rows: float32 ``[B, L, D]`` output rows of the centres.
    noise_rows: float32 ``[B, N, D]`` output rows of the noise words.
    batch, reduced_BxL, noise_BxN, architecture, window, negative,
    cbow_full_context_gradient: as ``chunk_loss``.
    subwords_mask: bool ``[B, P, M]`` for subword rows, else None.

  Returns:
    As ``chunk_loss``.
  """
  if subwords_mask is not None:
    weights = subwords_mask.astype(input_rows.dtype)
    inputs = (jnp.einsum("bpm,bpmd->bpd", weights, input_rows)
              / jnp.maximum(weights.sum(-1), 1.0)[..., None])
  else:
    inputs = input_rows
  return chunk_loss(inputs, center_rows, noise_rows, batch, reduced_BxL, noise_BxN,
                    architecture=architecture, window=window, negative=negative,
                    cbow_full_context_gradient=cbow_full_context_gradient)


def draw_windows_and_noise(key: jax.Array, num_chunks: int, length: int, window: int,
                           num_noise: int, noise_cdf: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Each centre's reduced window b ~ U{1..W} and each chunk's noise words n ~ P_n.

  Args:
    key: PRNG key.
    num_chunks: B.
    length: L, centres per chunk.
    window: W.
    num_noise: N, noise words per chunk.
    noise_cdf: float32 ``[V]``, the cumulative noise distribution (last entry 1).

  Returns:
    ``(reduced int32 [B, L], noise int32 [B, N])``.
  """
  window_key, noise_key = jax.random.split(key)
  reduced = jax.random.randint(window_key, (num_chunks, length), 1, window + 1)
  uniform = jax.random.uniform(noise_key, (num_chunks, num_noise))
  noise = jnp.minimum(jnp.searchsorted(noise_cdf, uniform, side="right"), noise_cdf.shape[0] - 1)
  return reduced, noise.astype(jnp.int32)


def sparse_sgd_update(input_table, output_table, batch: dict[str, jax.Array], reduced_BxL,
                      noise_BxN, learning_rate, *, architecture: str, window: int, negative: int,
                      subwords=None, cbow_full_context_gradient: bool = True):
  """One SGD step of ``chunk_loss`` on the rows the batch touches: row −= α ∂loss/∂row.

  Gathers the rows, takes ``jax.grad`` of ``batch_loss`` with respect to them and adds
  −α × each gradient to its row (repeated rows add up, as Hogwild threads would). The
  other rows are untouched, so this equals a full gradient step of the summed loss.

  Args:
    input_table: float32 ``[num_inputs, D]``, e.
    output_table: float32 ``[V, D]``, e′.
    batch, reduced_BxL, noise_BxN: as ``chunk_loss``.
    learning_rate: α, float32 scalar.
    architecture, window, negative, cbow_full_context_gradient: as ``chunk_loss`` (with
      the default, cbow's context rows move by α ∂ℓ/∂h, word2vec.c's rule).
    subwords: int32 ``[V, M]`` input rows of each word (−1 pads), or None.

  Returns:
    ``(input_table, output_table, loss, num_terms)`` after the step; loss and terms as
    ``chunk_loss`` (before the step).
  """
  tokens = batch["tokens"]
  num_inputs, num_outputs = input_table.shape[0], output_table.shape[0]
  length = tokens.shape[1] - 2 * window
  centers = tokens[:, window:window + length]
  if subwords is None:
    input_ids, subwords_mask = jnp.where(tokens >= 0, tokens, num_inputs), None
  else:
    input_ids = jnp.where((tokens >= 0)[..., None], subwords[jnp.maximum(tokens, 0)], -1)
    subwords_mask = input_ids >= 0
    input_ids = jnp.where(subwords_mask, input_ids, num_inputs)
  center_ids = jnp.where(centers >= 0, centers, num_outputs)  # Padding: read 0, dropped.
  input_rows = input_table.at[input_ids].get(mode="fill", fill_value=0)
  center_rows = output_table.at[center_ids].get(mode="fill", fill_value=0)
  noise_rows = output_table[noise_BxN]

  def objective(input_rows, center_rows, noise_rows):
    return batch_loss(input_rows, center_rows, noise_rows, batch, reduced_BxL, noise_BxN,
                      architecture=architecture, window=window, negative=negative,
                      subwords_mask=subwords_mask,
                      cbow_full_context_gradient=cbow_full_context_gradient)

  (loss, terms), grads = jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True)(
      input_rows, center_rows, noise_rows)
  dim = input_table.shape[-1]
  input_ids, input_grads = input_ids.reshape(-1), grads[0].reshape(-1, dim)
  output_ids = jnp.concatenate([center_ids.reshape(-1), noise_BxN.reshape(-1)])
  output_grads = jnp.concatenate([grads[1].reshape(-1, dim), grads[2].reshape(-1, dim)])
  input_table = input_table.at[input_ids].add(-learning_rate * input_grads, mode="drop")
  output_table = output_table.at[output_ids].add(-learning_rate * output_grads, mode="drop")
  return input_table, output_table, loss, terms


def make_train_step(run: Any, architecture: str):
  """The sparse SGD step of cbow or skip-gram (with subwords when ``run.info.subwords``).

  Draws each centre's window and each chunk's noise words from the step's key, then
  applies ``sparse_sgd_update`` at the learning rate α of the step (linear from
  ``word2vec.alpha`` to ``min_alpha`` over the run, as word2vec.c and gensim).

  Args:
    run: the loop's ``Pretrainer`` (``config``, ``info``: a ``WordVectorData``, ``mesh``:
      one device, see ``make_mesh``; ``graphdef``, ``num_steps``).
    architecture: ``"cbow"`` or ``"skipgram"``.

  Returns:
    ``train_step(state, batch) -> (state, metrics)`` with metrics ``loss`` (nats per term),
    ``learning_rate`` and ``terms`` (loss terms in the step).

  Raises:
    ValueError: an unknown architecture, or a mesh of more than one device.
  """
  if architecture not in ARCHITECTURES:
    raise ValueError(f"architecture={architecture!r}: use one of {ARCHITECTURES}.")
  if run.mesh.size != 1:
    raise ValueError(f"the word-vector step runs on one device (word_vectors.make_mesh); got a "
                     f"mesh of {run.mesh.size}: build the Pretrainer without a mesh.")
  config, info = run.config, run.info
  section = config.word2vec
  window, negative, length = section.window, section.negative, section.chunk_size
  noise_cdf = jnp.asarray(np.cumsum(vocab_lib.noise_distribution(info.vocab.counts,
                                                                section.ns_exponent)), jnp.float32)
  subwords = None if info.subwords is None else jnp.asarray(info.subwords)
  learning_rate_fn = optax.linear_schedule(section.alpha, section.min_alpha, max(run.num_steps, 1))

  def train_step(state, batch):
    model = nnx.merge(run.graphdef, state.params, state.model_state, copy=True)
    learning_rate = learning_rate_fn(state.step)
    key = jax.random.fold_in(state.rng, state.step)
    reduced, noise = draw_windows_and_noise(key, batch["tokens"].shape[0], length, window,
                                            section.shared_negatives, noise_cdf)
    input_table, output_table, loss, terms = sparse_sgd_update(
        model.input_embedding.get_value(), model.output_embedding.get_value(), batch, reduced,
        noise, learning_rate, architecture=architecture, window=window, negative=negative,
        subwords=subwords)
    model.input_embedding.set_value(input_table)
    model.output_embedding.set_value(output_table)
    _, params, _ = nnx.split(model, nnx.Param, ...)
    metrics = {"loss": loss / jnp.maximum(terms, 1), "learning_rate": learning_rate,
               "terms": terms.astype(jnp.float32)}
    return state.replace(step=state.step + 1, params=params), metrics

  return train_step


def input_vectors(table: np.ndarray, info: WordVectorData) -> np.ndarray:
  """Each vocabulary word's input vector: its own row, or the mean of its subword rows.

  Args:
    table: float32 ``[num_inputs, D]``, the trained input embedding.
    info: the run's ``WordVectorData``.

  Returns:
    float32 ``[V, D]`` in vocabulary order.
  """
  table = np.asarray(table, np.float32)
  if info.subwords is None:
    return table[:len(info.vocab)]
  total = np.zeros((info.subwords.shape[0], table.shape[1]), np.float32)
  for column in info.subwords.T:  # One [V, D] gather per subword slot, not [V, M, D] at once.
    total += np.where((column >= 0)[:, None], table[np.maximum(column, 0)], 0.0)
  return total / np.maximum((info.subwords >= 0).sum(1), 1)[:, None]


def trained_vectors(trained: Any) -> tuple[np.ndarray, wv_eval.WordVectors]:
  """The trained input table and the vocabulary's vectors (``input_vectors``).

  Args:
    trained: the loop's ``TrainedModel`` of cbow, skip-gram or fastText.

  Returns:
    ``(table float32 [num_inputs, D], WordVectors of the V vocabulary words)``.
  """
  info = trained.run.info
  table = np.asarray(jax.device_get(trained.model().input_embedding.get_value()))
  return table, wv_eval.WordVectors(words=info.vocab.words, vectors=input_vectors(table, info),
                                    min_count=info.vocab.min_count)


def score_vectors(vectors: wv_eval.WordVectors, config: ml_collections.ConfigDict,
                  workdir: Any, *, train_words: int, seconds: float,
                  oov_handled: bool) -> dict[str, Any]:
  """The word-vector family's evaluation, shared by our methods and the gensim references.

  Writes ``vectors.txt`` (word2vec text format, what gensim's ``load_word2vec_format``
  reads) and ``country_capital_pca.png`` (Mikolov et al. 2013b, Fig. 2) into ``workdir``,
  and scores the analogy questions by 3CosAdd over the ``eval.restrict_vocab`` most
  frequent words (Mikolov et al. 2013a; gensim's ``evaluate_word_analogies``) and WS353
  by Spearman correlation (Finkelstein et al. 2002; gensim's ``evaluate_word_pairs``).

  Args:
    vectors: the vocabulary's vectors, most frequent word first.
    config: the run's config (``eval.restrict_vocab``, ``eval.query_words``,
      ``eval.analogy_queries``).
    workdir: the run's directory (``epath.Path`` or str).
    train_words: corpus words processed in training (train tokens × epochs).
    seconds: training wall time in seconds (compilation excluded).
    oov_handled: whether the method gives vectors to words never seen in training.

  Returns:
    ``words_per_second``, ``train_words``, ``analogy_accuracy`` / ``analogy_semantic`` /
    ``analogy_syntactic`` (fractions in [0, 1]), ``analogy_questions`` (answered),
    ``ws353_spearman``, ``ws353_pearson``, ``ws353_oov_percent``, ``vocab_size``,
    ``nearest_neighbors`` (query word -> the 5 nearest words), ``analogies``
    ("a:b::c:?" -> the top 3 answers), ``oov_handled``, ``country_capital_plot`` (the
    file name, or why it was not drawn: fewer than two pairs in the vocabulary).

  Raises:
    FileNotFoundError: the word benchmarks are not fetched (the message gives the command).
  """
  workdir = epath.Path(workdir)
  wv_eval.save_word2vec_format(vectors, workdir / "vectors.txt")
  analogies = wv_eval.evaluate_word_analogies(
      vectors, text.benchmark_path("questions-words.txt"),
      restrict_vocab=config.eval.restrict_vocab)
  pairs = wv_eval.evaluate_word_pairs(vectors, text.benchmark_path("wordsim353.tsv"))
  neighbours = {word: [w for w, _ in wv_eval.nearest_neighbors(vectors, word, topn=5)]
                for word in config.eval.query_words if word in vectors}
  answers = {}
  for a, b, c in config.eval.analogy_queries:
    if all(word in vectors for word in (a, b, c)):
      answers[f"{a}:{b}::{c}:?"] = [w for w, _ in wv_eval.most_similar(
          vectors, positive=[b, c], negative=[a], topn=3)]
  try:
    wv_eval.plot_country_capital_pca(vectors, path=workdir / "country_capital_pca.png")
    plot = "country_capital_pca.png"
  except ValueError as error:  # Too few country/capital pairs in a small vocabulary.
    plot = f"not drawn: {error}"
  return {"words_per_second": train_words / max(seconds, 1e-9), "train_words": int(train_words),
          "analogy_accuracy": analogies["accuracy"], "analogy_semantic": analogies["semantic"],
          "analogy_syntactic": analogies["syntactic"],
          "analogy_questions": analogies["num_questions"],
          "ws353_spearman": pairs["spearman"], "ws353_pearson": pairs["pearson"],
          "ws353_oov_percent": pairs["oov_ratio"], "vocab_size": len(vectors),
          "nearest_neighbors": neighbours, "analogies": answers, "oov_handled": oov_handled,
          "country_capital_plot": plot}


def evaluate(trained: Any, data: dict[str, Any], config: ml_collections.ConfigDict,
             workdir: Any) -> dict[str, Any]:
  """The loop's ``evaluate`` for cbow and skip-gram: ``score_vectors`` of the trained input
  vectors (``trained_vectors``), words/s over the run's training time (compilation excluded)."""
  del data
  _, vectors = trained_vectors(trained)
  return score_trained_vectors(trained, vectors, config, workdir)


def score_trained_vectors(trained: Any, vectors: wv_eval.WordVectors,
                          config: ml_collections.ConfigDict, workdir: Any) -> dict[str, Any]:
  """``score_vectors`` of a trained run's vectors, with its words/s: the train split's
  tokens × ``word2vec.epochs`` over ``trained.summary["pretrain_seconds"]``."""
  info = trained.run.info
  return score_vectors(vectors, config, workdir,
                       train_words=info.vocab.num_tokens * config.word2vec.epochs,
                       seconds=trained.summary["pretrain_seconds"],
                       oov_handled=info.subword_fn is not None)

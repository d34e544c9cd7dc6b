"""Tests of the word-vector family: vocabulary, subsampling, windows, losses, sparse SGD,
fastText n-grams, PPMI, and end-to-end runs on a planted corpus.

Oracles: gensim 4.4.0 (its subsampling probabilities, noise table, fastText hashes,
``KeyedVectors`` reader and ``most_similar``, and its own Word2Vec trained on the same
corpus), the formulas written out in numpy, independent Python loops over the definitions
(window pairs, co-occurrences), a dense ``jax.grad`` of the whole tables, published FNV-1a
test vectors, and a corpus whose answer is planted: in it each pair of words (a_i, b_i)
appears in exactly the same contexts, so by the distributional hypothesis each one's
nearest neighbour is its partner.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import string
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import smoke_config

from pretrain_jax.data import datasets
from pretrain_jax.data import text
from pretrain_jax.data import vocab as vocab_lib
from pretrain_jax.eval import word_vectors as wv_eval
from pretrain_jax.methods import fasttext
from pretrain_jax.methods import ppmi
from pretrain_jax.methods import word_vectors
from pretrain_jax.objectives.infonce import negative_sampling_loss
from pretrain_jax.train import loop
from pretrain_jax.train.checkpoint import CheckpointMismatchError

gensim_models = pytest.importorskip("gensim.models")


# --- 1. Subsampling and the noise distribution, against gensim -------------------------------


def _zipf_sentences(seed=0, num_sentences=120):
  """Sentences over 30 words with Zipf-like frequencies (some far above the threshold)."""
  rng = np.random.default_rng(seed)
  words = [f"w{string.ascii_lowercase[i // 26]}{string.ascii_lowercase[i % 26]}" for i in range(30)]
  weights = 1.0 / np.arange(1, 31)
  weights /= weights.sum()
  return [list(rng.choice(words, size=rng.integers(3, 15), p=weights))
          for _ in range(num_sentences)]


def test_keep_probabilities_are_gensims_formula_and_gensims_numbers():
  sentences = _zipf_sentences()
  sample = 5e-3
  vocabulary = vocab_lib.Vocabulary.build(sentences, min_count=1)
  ours = vocab_lib.keep_probabilities(vocabulary.counts, sample)
  # The formula written out (word2vec.c / gensim prepare_vocab), one word at a time.
  total = float(sum(len(s) for s in sentences))
  threshold_count = sample * total
  for word, p in zip(vocabulary.words, ours):
    count = sum(s.count(word) for s in sentences)
    expected = min(1.0, (np.sqrt(count / threshold_count) + 1.0) * threshold_count / count)
    assert p == pytest.approx(expected, rel=1e-12), word
  assert (ours < 1).sum() >= 3 and (ours == 1).sum() >= 3, "both regimes must be exercised"
  # gensim itself: sample_int = P(keep) * (2**32 - 1), truncated to uint32.
  model = gensim_models.Word2Vec(sample=sample, min_count=1, vector_size=4, workers=1)
  model.build_vocab(sentences)
  for word, p in zip(vocabulary.words, ours):
    assert abs(model.wv.get_vecattr(word, "sample_int") / 2**32 - p) < 1e-6, word
  np.testing.assert_array_equal(vocab_lib.keep_probabilities(vocabulary.counts, 0.0), 1.0)
  with pytest.raises(ValueError):
    vocab_lib.keep_probabilities(vocabulary.counts, -1e-3)


def test_noise_distribution_is_count_power_and_gensims_cum_table():
  sentences = _zipf_sentences(seed=1)
  vocabulary = vocab_lib.Vocabulary.build(sentences, min_count=1)
  ours = vocab_lib.noise_distribution(vocabulary.counts)
  counts = np.array([sum(s.count(w) for s in sentences) for w in vocabulary.words], np.float64)
  np.testing.assert_allclose(ours, counts**0.75 / (counts**0.75).sum(), rtol=1e-12)
  model = gensim_models.Word2Vec(min_count=1, vector_size=4, workers=1, negative=5)
  model.build_vocab(sentences)
  cum = model.cum_table.astype(np.float64)
  gensim_p = np.diff(cum, prepend=0.0) / cum[-1]
  for word, p in zip(vocabulary.words, ours):
    assert abs(gensim_p[model.wv.get_index(word)] - p) < 1e-6, word


# --- 2. Vocabulary ---------------------------------------------------------------------------


def test_vocabulary_build_filters_orders_and_encodes():
  sentences = [["b", "a", "c", "a"], ["d", "b", "a"], [], ["e", "c", "b", "z"], ["z"]]
  vocabulary = vocab_lib.Vocabulary.build(sentences, min_count=2)
  # Counts by hand: a 3, b 3, c 2, z 2, d 1, e 1. Ties in first-seen order: b before a, c before z.
  assert vocabulary.words == ("b", "a", "c", "z")
  np.testing.assert_array_equal(vocabulary.counts, [3, 3, 2, 2])
  assert vocabulary.num_tokens == 12 and len(vocabulary) == 4
  ids, sentence = vocabulary.encode(sentences)
  expected_ids, expected_sentence = [], []
  for s, tokens in enumerate(sentences):
    for token in tokens:
      if token in ("b", "a", "c", "z"):
        expected_ids.append(("b", "a", "c", "z").index(token))
        expected_sentence.append(s)
  assert ids.dtype == np.int32 and sentence.dtype == np.int32
  assert ids.tolist() == expected_ids and sentence.tolist() == expected_sentence
  # A different count gives a different sha256 (what the checkpoint fingerprint relies on).
  other = vocab_lib.Vocabulary.build(sentences + [["c"]], min_count=2)
  assert other.words == vocabulary.words and other.sha256() != vocabulary.sha256()


def test_empty_vocabulary_is_one_line():
  with pytest.raises(vocab_lib.EmptyVocabularyError) as error:
    vocab_lib.Vocabulary.build([["a", "b"], ["c"]], min_count=2)
  message = str(error.value)
  assert "\n" not in message and "min_count=2" in message and "3 training tokens" in message
  with pytest.raises(ValueError, match="min_count=0"):
    vocab_lib.Vocabulary.build([["a"]], min_count=0)


# --- 3. Window chunks ----------------------------------------------------------------------


def test_window_chunks_reproduce_the_stream_with_margins_and_padding():
  rng = np.random.default_rng(0)
  num_tokens, window, length = 23, 3, 5
  ids = rng.integers(0, 6, num_tokens).astype(np.int32)
  sentence = np.repeat(np.arange(4), [6, 5, 7, 5]).astype(np.int32)
  chunks = vocab_lib.window_chunks(ids, sentence, np.ones(6), epochs=2, window=window,
                                   chunk_size=length, seed=3)
  num_chunks = -(-num_tokens // length)  # 5 per epoch
  assert chunks["tokens"].shape == (2 * num_chunks, length + 2 * window)
  for epoch in range(2):
    for c in range(num_chunks):
      for p in range(length + 2 * window):
        stream = c * length + p - window  # Position in the unpadded stream.
        inside = 0 <= stream < num_tokens
        row = epoch * num_chunks + c
        assert chunks["tokens"][row, p] == (ids[stream] if inside else -1), (epoch, c, p)
        assert chunks["sentence"][row, p] == (sentence[stream] if inside else -1), (epoch, c, p)
  centres = chunks["tokens"][:num_chunks, window:window + length].reshape(-1)
  assert centres[:num_tokens].tolist() == ids.tolist() and (centres[num_tokens:] == -1).all()


def test_window_chunks_drop_a_word_kept_with_probability_zero():
  rng = np.random.default_rng(1)
  ids = rng.integers(0, 5, 400).astype(np.int32)
  sentence = (np.arange(400) // 9).astype(np.int32)
  keep = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
  chunks = vocab_lib.window_chunks(ids, sentence, keep, epochs=3, window=2, chunk_size=7, seed=0)
  assert not (chunks["tokens"] == 1).any()
  kept = ids != 1
  per_epoch = -(-int(kept.sum()) // 7)
  for epoch in range(3):
    block = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
    centres = chunks["tokens"][block, 2:9].reshape(-1)
    centre_sentences = chunks["sentence"][block, 2:9].reshape(-1)
    assert centres[centres >= 0].tolist() == ids[kept].tolist()
    assert centre_sentences[centres >= 0].tolist() == sentence[kept].tolist()


def test_window_chunks_subsample_at_the_keep_probability_with_fresh_draws_per_epoch():
  ids = np.zeros(20_000, np.int32)
  chunks = vocab_lib.window_chunks(ids, np.zeros_like(ids), np.array([0.3]), epochs=2,
                                   window=1, chunk_size=100, seed=5)
  kept = int((chunks["tokens"][:, 1:101] >= 0).sum())
  mean, sd = 2 * 20_000 * 0.3, np.sqrt(2 * 20_000 * 0.3 * 0.7)
  assert abs(kept - mean) < 5 * sd, (kept, mean)
  first = vocab_lib.window_chunks(ids, np.zeros_like(ids), np.array([0.3]), epochs=1, window=1,
                                  chunk_size=100, seed=5)["tokens"]
  again = vocab_lib.window_chunks(ids, np.zeros_like(ids), np.array([0.3]), epochs=1, window=1,
                                  chunk_size=100, seed=6)["tokens"]
  assert first.shape != again.shape or (first != again).any(), "the seed must change the subsample"


# --- 4. chunk_loss against a loop over the definition --------------------------------------

_W, _L, _N, _K, _D, _V = 3, 5, 4, 5, 4, 7


def _chunk_inputs(seed=0):
  """Two chunks (P = L + 2W = 11): padding at the edges, two sentences inside each chunk,
  a noise word equal to some centres, reduced windows from 1 to W."""
  rng = np.random.default_rng(seed)
  tokens = np.array([[-1, -1, -1, 0, 1, 2, 3, 4, 5, 6, 1],
                     [2, 3, 3, 6, 0, 1, 1, 5, 4, -1, -1]], np.int32)
  sentence = np.array([[-1, -1, -1, 0, 0, 0, 1, 1, 1, 1, 1],
                       [4, 4, 5, 5, 5, 5, 6, 6, 6, -1, -1]], np.int32)
  reduced = np.array([[3, 1, 2, 3, 2], [1, 3, 3, 2, 1]], np.int32)
  noise = np.array([[2, 6, 6, 0], [1, 4, 3, 3]], np.int32)
  inputs = rng.normal(size=(2, _L + 2 * _W, _D)).astype(np.float32)
  centres = rng.normal(size=(2, _L, _D)).astype(np.float32)
  noise_rows = rng.normal(size=(2, _N, _D)).astype(np.float32)
  return {"tokens": tokens, "sentence": sentence}, reduced, noise, inputs, centres, noise_rows


_term_loss = jax.jit(negative_sampling_loss)  # One term at a time: compiled once, not per op.


def _loop_loss(batch, reduced, noise, inputs, centres, noise_rows, architecture):
  """Σ over terms of the slides' loss, terms built from the definition one by one."""
  total, terms = 0.0, 0
  tokens, sentence = batch["tokens"], batch["sentence"]
  for b in range(tokens.shape[0]):
    for l in range(_L):
      centre = _W + l
      if tokens[b, centre] < 0:
        continue
      contexts = [p for p in range(_L + 2 * _W)
                  if 1 <= abs(p - centre) <= reduced[b, l] and tokens[b, p] >= 0
                  and sentence[b, p] == sentence[b, centre]]
      weights = np.array([0.0 if n == tokens[b, centre] else _K / _N for n in noise[b]], np.float32)
      if architecture == "skipgram":
        for p in contexts:
          positive = np.dot(inputs[b, p], centres[b, l])
          negatives = np.array([np.dot(noise_rows[b, n], inputs[b, p]) for n in range(_N)])
          total += float(_term_loss(positive, negatives, weights))
          terms += 1
      elif contexts:
        hidden = np.mean([inputs[b, p] for p in contexts], axis=0)
        negatives = np.array([np.dot(noise_rows[b, n], hidden) for n in range(_N)])
        total += float(_term_loss(np.dot(hidden, centres[b, l]), negatives, weights))
        terms += 1
  return total, terms


@functools.lru_cache(maxsize=None)
def _chunk_loss(architecture):
  """``chunk_loss`` jitted (one compilation instead of one per op)."""
  return jax.jit(functools.partial(word_vectors.chunk_loss, architecture=architecture, window=_W,
                                   negative=_K))


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_chunk_loss_equals_a_loop_over_the_terms(architecture):
  batch, reduced, noise, inputs, centres, noise_rows = _chunk_inputs()
  loss, terms = _chunk_loss(architecture)(inputs, centres, noise_rows, batch, reduced, noise)
  expected, expected_terms = _loop_loss(batch, reduced, noise, inputs, centres, noise_rows,
                                        architecture)
  assert int(terms) == expected_terms
  assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_chunk_loss_term_counts_by_hand():
  batch, reduced, noise, inputs, centres, noise_rows = _chunk_inputs()
  # Chunk 0, centres at positions 3..7 (sentences 0 0 0 1 1), windows 3 1 2 3 2:
  #   pos 3: {4, 5} 2; pos 4: {3, 5} 2; pos 5: {3, 4} 2; pos 6: {7, 8, 9} 3; pos 7: {6, 8, 9} 3.
  # Chunk 1, centres at positions 3..7 (sentences 5 5 5 6 6), windows 1 3 3 2 1:
  #   pos 3: {2, 4} 2; pos 4: {2, 3, 5} 3; pos 5: {2, 3, 4} 3; pos 6: {7, 8} 2; pos 7: {6, 8} 2.
  _, pairs = _chunk_loss("skipgram")(inputs, centres, noise_rows, batch, reduced, noise)
  _, centres_with_context = _chunk_loss("cbow")(inputs, centres, noise_rows, batch, reduced, noise)
  assert int(pairs) == 12 + 12 and int(centres_with_context) == 10


def test_draw_windows_and_noise_follow_their_distributions():
  counts = np.array([50, 20, 9, 5, 1], np.float64)
  probabilities = vocab_lib.noise_distribution(counts)
  cdf = jnp.asarray(np.cumsum(probabilities), jnp.float32)
  draw = jax.jit(word_vectors.draw_windows_and_noise, static_argnums=(1, 2, 3, 4))
  reduced, noise = draw(jax.random.PRNGKey(0), 64, 100, 4, 500, cdf)
  assert reduced.shape == (64, 100) and noise.shape == (64, 500)
  reduced, noise = np.asarray(reduced), np.asarray(noise)
  assert reduced.min() == 1 and reduced.max() == 4
  # Each frequency within 5 binomial standard deviations of its probability.
  for value in range(1, 5):
    assert abs((reduced == value).mean() - 0.25) < 5 * np.sqrt(0.25 * 0.75 / reduced.size), value
  for word, expected in enumerate(probabilities):
    sd = np.sqrt(expected * (1 - expected) / noise.size)
    assert abs((noise == word).mean() - expected) < 5 * sd, word


# --- 5. The sparse step is a dense gradient step ---------------------------------------------


def _dense_loss(input_table, output_table, batch, reduced, noise, architecture, subwords=None):
  """The same loss as a function of the whole tables, gathering inside."""
  tokens = jnp.asarray(batch["tokens"])
  safe = jnp.maximum(tokens, 0)
  if subwords is None:
    inputs = input_table[safe]
  else:
    rows = jnp.asarray(subwords)[safe]  # [B, P, M]
    mask = (rows >= 0).astype(jnp.float32)
    inputs = (jnp.einsum("bpm,bpmd->bpd", mask, input_table[jnp.maximum(rows, 0)])
              / jnp.maximum(mask.sum(-1), 1.0)[..., None])
  centre_rows = output_table[safe[:, _W:_W + _L]]
  loss, _ = word_vectors.chunk_loss(inputs, centre_rows, output_table[jnp.asarray(noise)], batch,
                                    reduced, noise, architecture=architecture, window=_W,
                                    negative=_K)
  return loss


def test_cbow_context_rows_get_the_whole_gradient_of_the_mean():
  # One chunk, one centre (position 2) with all 4 positions around it as context (W = 2):
  # word2vec.c's rule gives each context row |c| = 4 times the exact gradient of the mean.
  window, dim = 2, 6
  rng = np.random.default_rng(3)
  batch = {"tokens": jnp.asarray([[0, 1, 2, 3, 4]], jnp.int32),
           "sentence": jnp.zeros((1, 5), jnp.int32)}
  reduced, noise = jnp.asarray([[2]], jnp.int32), jnp.asarray([[5, 6, 7]], jnp.int32)
  inputs, centre, noise_rows = (jnp.asarray(rng.normal(size=shape), jnp.float32)
                                for shape in ((1, 5, dim), (1, 1, dim), (1, 3, dim)))

  def loss(inputs, full):
    return word_vectors.chunk_loss(inputs, centre, noise_rows, batch, reduced, noise,
                                   architecture="cbow", window=window, negative=2,
                                   cbow_full_context_gradient=full)[0]

  assert float(loss(inputs, True)) == pytest.approx(float(loss(inputs, False)), rel=1e-6)
  full, exact = (np.asarray(jax.grad(loss)(inputs, flag)) for flag in (True, False))
  contexts = [0, 1, 3, 4]
  assert np.abs(exact[0, contexts]).max() > 1e-3
  np.testing.assert_allclose(full[0, contexts], 4 * exact[0, contexts], rtol=1e-5, atol=1e-7)
  assert not full[0, 2].any() and not exact[0, 2].any()  # The centre is not its own context.


@pytest.mark.parametrize("architecture, with_subwords", [("skipgram", False), ("cbow", False),
                                                         ("skipgram", True), ("cbow", True)])
def test_sparse_sgd_update_equals_a_dense_gradient_step(architecture, with_subwords):
  batch, reduced, noise, _, _, _ = _chunk_inputs(seed=1)
  rng = np.random.default_rng(2)
  num_words = _V + 3  # Words 7, 8, 9 never occur: their rows must not move.
  subwords = None
  num_inputs = num_words
  if with_subwords:  # fastText: word i = mean of its own row and shared n-gram rows (−1 pads).
    subwords = np.full((num_words, 3), -1, np.int32)
    for i in range(num_words):
      grams = rng.choice(np.arange(num_words, num_words + 6), size=rng.integers(1, 3),
                         replace=False)
      subwords[i, :1 + len(grams)] = [i, *grams]
    num_inputs = num_words + 6 + 2  # Two bucket rows that no word uses.
  input_table = jnp.asarray(rng.normal(size=(num_inputs, _D)), jnp.float32)
  output_table = jnp.asarray(rng.normal(size=(num_words, _D)), jnp.float32)
  learning_rate = 0.1
  sparse_step = jax.jit(functools.partial(word_vectors.sparse_sgd_update,
                                          architecture=architecture, window=_W, negative=_K))
  new_input, new_output, loss, _ = sparse_step(
      input_table, output_table, batch, reduced, noise, learning_rate,
      subwords=None if subwords is None else jnp.asarray(subwords))
  dense_loss = functools.partial(_dense_loss, batch=batch, reduced=reduced, noise=noise,
                                 architecture=architecture, subwords=subwords)
  dense_value, (grad_input, grad_output) = jax.jit(jax.value_and_grad(dense_loss, argnums=(0, 1)))(
      input_table, output_table)
  np.testing.assert_allclose(new_input, input_table - learning_rate * grad_input, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(new_output, output_table - learning_rate * grad_output, rtol=1e-5,
                             atol=1e-6)
  assert float(loss) == pytest.approx(float(dense_value), rel=1e-5)
  # The batch repeats rows (tokens and noise words), so the sparse step had sums to take.
  assert np.bincount(batch["tokens"][batch["tokens"] >= 0]).max() > 1
  assert np.bincount(noise.reshape(-1)).max() > 1
  # Rows no term touches stay bit-identical; rows that repeat in the batch did move.
  used_words = set(batch["tokens"][batch["tokens"] >= 0].tolist())
  used_inputs = used_words if subwords is None else {
      r for w in used_words for r in subwords[w].tolist() if r >= 0}
  untouched_inputs = sorted(set(range(num_inputs)) - used_inputs)
  untouched_outputs = sorted(set(range(num_words)) - used_words - set(noise.reshape(-1).tolist()))
  assert untouched_inputs and untouched_outputs
  np.testing.assert_array_equal(np.asarray(new_input)[untouched_inputs],
                                np.asarray(input_table)[untouched_inputs])
  np.testing.assert_array_equal(np.asarray(new_output)[untouched_outputs],
                                np.asarray(output_table)[untouched_outputs])
  assert not np.allclose(np.asarray(new_output)[3], np.asarray(output_table)[3])  # 3 repeats.


@pytest.mark.xfail(strict=True, reason=(
    "sparse_sgd_update sums every term's gradient of a row in one step (1024 centres at the "
    "smoke batch): without subsampling a word with a few % of the tokens gets dozens of "
    "summed updates at alpha=0.025 and training diverges (configs/skipgram.py:smoke with "
    "--config.word2vec.sample=0 ends with final_loss ~4e21 nats; gensim trains fine)."))
def test_skipgram_steps_without_subsampling_do_not_diverge():
  # A Zipfian stream like English without subsampling: the top word is 6.4% of the tokens.
  vocab_size, dim, window, length, num_chunks = 1000, 32, 5, 32, 32
  rng = np.random.default_rng(0)
  probabilities = 1.0 / (np.arange(vocab_size) + 2.5)
  probabilities /= probabilities.sum()
  ids = rng.choice(vocab_size, size=40_000, p=probabilities).astype(np.int32)
  chunks = vocab_lib.window_chunks(ids, (np.arange(ids.size) // 20).astype(np.int32),
                                   np.ones(vocab_size), epochs=1, window=window,
                                   chunk_size=length, seed=0)
  counts = np.bincount(ids, minlength=vocab_size) + 1
  cdf = jnp.asarray(np.cumsum(vocab_lib.noise_distribution(counts)), jnp.float32)

  @jax.jit
  def step(input_table, output_table, tokens, sentence, key):
    reduced, noise = word_vectors.draw_windows_and_noise(key, num_chunks, length, window, 32, cdf)
    input_table, output_table, loss, terms = word_vectors.sparse_sgd_update(
        input_table, output_table, {"tokens": tokens, "sentence": sentence}, reduced, noise,
        0.025, architecture="skipgram", window=window, negative=5)
    return input_table, output_table, loss / terms

  key = jax.random.PRNGKey(0)
  input_table = jax.random.uniform(key, (vocab_size, dim), jnp.float32, -0.5 / dim, 0.5 / dim)
  output_table = jnp.zeros((vocab_size, dim), jnp.float32)  # word2vec's initialisation.
  losses = []
  for s in range(30):
    rows = slice(s * num_chunks, (s + 1) * num_chunks)
    input_table, output_table, loss = step(input_table, output_table, chunks["tokens"][rows],
                                           chunks["sentence"][rows], jax.random.fold_in(key, s))
    losses.append(float(loss))
  # At initialisation every score is 0: a term costs at most 6 ln 2 = 4.16 nats (K = 5).
  assert np.isfinite(losses).all() and max(losses) < 6 * np.log(2), losses


# --- 6. fastText n-grams and hashes ----------------------------------------------------------


def test_fnv1a_known_vectors_and_char_ngrams():
  # FNV-1a 32-bit test vectors (Fowler, Noll & Vo; the offset basis for the empty input).
  assert fasttext.fnv1a_32(b"") == 0x811C9DC5
  assert fasttext.fnv1a_32(b"a") == 0xE40C292C
  assert fasttext.fnv1a_32(b"foobar") == 0xBF9CF968
  assert fasttext.char_ngrams("king", 3, 4) == ["<ki", "kin", "ing", "ng>", "<kin", "king", "ing>"]
  assert fasttext.char_ngrams("a", 3, 6) == ["<a>"]
  with pytest.raises(ValueError):
    fasttext.char_ngrams("king", 4, 3)


_ASCII_WORDS = ("king", "king's", "don't", "a", "of", "queen", "o'clock", "seafarers",
                "unfriendliness")


@pytest.mark.parametrize("bucket", [2_000_000, 20_000, 97])
def test_ngram_buckets_equal_gensims_ft_ngram_hashes(bucket):
  from gensim.models import fasttext as gensim_fasttext
  from gensim.models import fasttext_inner
  for word in _ASCII_WORDS:
    ours = fasttext.ngram_buckets(word, 3, 6, bucket)
    theirs = gensim_fasttext.ft_ngram_hashes(word, 3, 6, bucket)
    # Same n-grams, same buckets. (Ours lists them by length, then position; gensim by
    # position, then length: the mean over them does not depend on the order.)
    assert sorted(ours) == sorted(theirs), word
    grams = fasttext_inner.compute_ngrams_bytes(word, 3, 6)
    assert sorted(grams) == sorted(g.encode() for g in fasttext.char_ngrams(word, 3, 6))
    for gram in grams:
      assert fasttext.fnv1a_32(gram) % bucket == fasttext_inner.ft_hash_bytes(gram) % bucket, gram


def test_ngram_buckets_of_non_ascii_words_equal_gensims():
  from gensim.models import fasttext as gensim_fasttext
  for word in ("café", "naïve"):
    assert sorted(fasttext.ngram_buckets(word, 3, 6, 20_000)) == sorted(
        gensim_fasttext.ft_ngram_hashes(word, 3, 6, 20_000)), word


def test_fasttext_vectors_of_seen_and_unseen_words_are_means_of_gensims_buckets():
  from gensim.models import fasttext as gensim_fasttext
  bucket = 97
  config = smoke_config("fasttext", fasttext__bucket=bucket)
  sentences = [["the", "king", "and", "the", "queen"], ["king's", "men"]]
  vocabulary = vocab_lib.Vocabulary.build(sentences, min_count=1)
  subwords, num_inputs, word_fn, _ = fasttext.subwords_fn(vocabulary, sentences, config)
  num_words = len(vocabulary)
  assert num_inputs == num_words + bucket
  table = np.random.default_rng(0).normal(size=(num_inputs, 8)).astype(np.float32)
  info = word_vectors.WordVectorData(name="t", vocab=vocabulary, subwords=subwords,
                                     num_inputs=num_inputs, fingerprint="", subword_fn=word_fn)
  vectors = word_vectors.input_vectors(table, info)
  for i, word in enumerate(vocabulary.words):
    rows = [i] + [num_words + h for h in gensim_fasttext.ft_ngram_hashes(word, 3, 6, bucket)]
    np.testing.assert_allclose(vectors[i], table[rows].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fasttext.oov_vector(table, info, word), table[rows].mean(0),
                               rtol=1e-5, atol=1e-6)
  unseen = "kingship"
  assert unseen not in vocabulary.index()
  rows = [num_words + h for h in gensim_fasttext.ft_ngram_hashes(unseen, 3, 6, bucket)]
  vector = fasttext.oov_vector(table, info, unseen)
  assert vector.shape == (8,) and np.isfinite(vector).all()
  np.testing.assert_allclose(vector, table[rows].mean(0), rtol=1e-5, atol=1e-6)


def test_unknown_word_raises_out_of_vocabulary_error():
  vectors = wv_eval.WordVectors(words=("a", "b"), vectors=np.eye(2, dtype=np.float32), min_count=3)
  np.testing.assert_array_equal(vectors.vector("b"), [0.0, 1.0])
  with pytest.raises(wv_eval.OutOfVocabularyError):
    vectors.vector("kingship")


# --- 7. PPMI -----------------------------------------------------------------------------------


def _cooccurrence_loop(ids, sentence, vocab_size, window):
  counts = np.zeros((vocab_size, vocab_size))
  for i in range(len(ids)):
    for k in range(len(ids)):
      distance = abs(i - k)
      if 1 <= distance <= window and sentence[i] == sentence[k]:
        counts[ids[i], ids[k]] += (window - distance + 1) / window
  return counts


def test_cooccurrence_counts_equal_a_double_loop():
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 5, 17).astype(np.int32)
  sentence = np.repeat(np.arange(3), [7, 2, 8]).astype(np.int32)
  for window in (1, 3):
    ours = ppmi.cooccurrence_counts(ids, sentence, 5, window).toarray()
    np.testing.assert_allclose(ours, _cooccurrence_loop(ids, sentence, 5, window), rtol=1e-12)
  # By hand: "0 1 2 | 1" with W = 2: (0,1) 1, (1,2) 1, (0,2) 1/2; nothing across the boundary.
  small = ppmi.cooccurrence_counts(np.array([0, 1, 2, 1], np.int32),
                                   np.array([0, 0, 0, 1], np.int32), 3, 2).toarray()
  np.testing.assert_allclose(small, [[0, 1, 0.5], [1, 0, 1], [0.5, 1, 0]])


@pytest.mark.parametrize("power", [0.75, 1.0])
def test_ppmi_matrix_equals_the_dense_formula(power):
  rng = np.random.default_rng(1)
  ids = rng.integers(0, 6, 40).astype(np.int32)
  sentence = (np.arange(40) // 10).astype(np.int32)
  counts = _cooccurrence_loop(ids, sentence, 6, 2)
  ours = ppmi.ppmi_matrix(ppmi.cooccurrence_counts(ids, sentence, 6, 2), power).toarray()
  total = counts.sum()
  p_joint = counts / total
  p_word = counts.sum(1) / total
  p_context = counts.sum(0) ** power / (counts.sum(0) ** power).sum()
  with np.errstate(divide="ignore"):
    pmi = np.log(p_joint / np.outer(p_word, p_context))
  expected = np.where(counts > 0, np.maximum(pmi, 0.0), 0.0)
  np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
  assert (expected > 0).any() and (counts > 0).sum() > (expected > 0).sum()


# --- 8-11. End to end on a planted corpus ----------------------------------------------------

_NUM_FILLERS, _NUM_PAIRS, _OCCURRENCES, _NUM_SENTENCES = 300, 20, 40, 600
# Epochs where our skip-gram and cbow (and gensim's) find every planted pair on this corpus.
_EPOCHS = {"skipgram": 10, "cbow": 20, "gensim_skipgram": 10}


def _name(prefix, i):
  return prefix + string.ascii_lowercase[i // 26] + string.ascii_lowercase[i % 26]


def _planted_corpus(seed=0):
  """Sentences of 12 uniform fillers; 40 times per pair i, "l x r" is inserted with x = a_i
  (20 times) or b_i (20 times), l = left[i % 5], r = right[i // 5]. So a_i and b_i have the
  same contexts, while every other pair shares at most one of l, r with them."""
  rng = np.random.default_rng(seed)
  fillers = [_name("f", i) for i in range(_NUM_FILLERS)]
  a = [_name("pa", i) for i in range(_NUM_PAIRS)]
  b = [_name("pb", i) for i in range(_NUM_PAIRS)]
  left, right = [_name("lc", i) for i in range(5)], [_name("rc", i) for i in range(4)]
  sentences = [list(rng.choice(fillers, 12)) for _ in range(_NUM_SENTENCES)]
  slots = [(i, x) for i in range(_NUM_PAIRS) for x in (a[i], b[i])
           for _ in range(_OCCURRENCES // 2)]
  for k in rng.permutation(len(slots)):
    i, x = slots[k]
    sentence = sentences[k % _NUM_SENTENCES]
    position = rng.integers(0, len(sentence) + 1)
    sentence[position:position] = [left[i % 5], x, right[i // 5]]
  return sentences, a, b


def _documents(sentences):
  return [text.Document("planted", f"doc {d}",
                        ". ".join(" ".join(s) for s in sentences[d::20]) + ".")
          for d in range(20)]


@contextlib.contextmanager
def _planted_data(documents, bench_dir):
  """The loop reads ``documents`` as its train split and the word benchmarks from ``bench_dir``."""
  info = text.TextInfo(name="planted", sources=("planted",),
                       num_documents={"train": len(documents)},
                       num_words={"train": text.count_words(documents)})
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(datasets, "load_for_config",
                  lambda config: (info, {"train": list(documents), "val": [], "test": []}))
    patch.setattr(text, "benchmark_path", lambda name, data_dir=None: bench_dir / name)
    yield


def _config(method):
  overrides = dict(word2vec__vector_size=32, word2vec__min_count=1, word2vec__sample=0.0,
                   word2vec__epochs=_EPOCHS[method], train__log_every=10)
  if method.startswith("gensim"):
    return smoke_config(method, gensim__workers=1, **overrides)
  return smoke_config(method, **overrides)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
  root = tmp_path_factory.mktemp("planted")
  sentences, a, b = _planted_corpus()
  bench_dir = root / "bench"
  bench_dir.mkdir()
  (bench_dir / "questions-words.txt").write_text(
      ": capital-common-countries\n"
      + "".join(f"{a[i]} {b[i]} {a[i + 1]} {b[i + 1]}\n" for i in range(6))
      + f": gram1-adjective-to-adverb\n{a[7]} {b[7]} {a[8]} {b[8]}\n"
      + f"zzz {b[0]} {a[1]} {b[1]}\n")  # Out of vocabulary: skipped.
  # Planted pairs are similar (10), a word and an unrelated filler are not (1).
  (bench_dir / "wordsim353.tsv").write_text(
      "# Word 1\tWord 2\tHuman (mean)\n"
      + "".join(f"{a[i]}\t{b[i]}\t10\n{a[i]}\tf{string.ascii_lowercase[i]}z\t1\n"
                for i in range(10)))
  runs = {}

  def run(method):
    if method not in runs:
      workdir = root / method
      with _planted_data(_documents(sentences), bench_dir):
        results = loop.train_and_evaluate(_config(method), workdir, progress=False)
      runs[method] = workdir, results
    return runs[method]

  return {"sentences": sentences, "a": a, "b": b, "bench_dir": bench_dir, "run": run}


def _partner_hits(vectors_file: Path, a, b):
  """How many a_i have b_i as nearest neighbour, by gensim's reader and most_similar."""
  keyed = gensim_models.KeyedVectors.load_word2vec_format(str(vectors_file))
  return sum(keyed.most_similar(x, topn=1)[0][0] == y for x, y in zip(a, b)), keyed


@pytest.mark.parametrize("method", ["skipgram", "cbow"])
def test_planted_pairs_are_nearest_neighbours(planted, method):
  workdir, results = planted["run"](method)
  hits, keyed = _partner_hits(workdir / "vectors.txt", planted["a"], planted["b"])
  assert hits >= 0.9 * _NUM_PAIRS, f"{method}: {hits}/{_NUM_PAIRS} planted partners found"
  words = {w for s in planted["sentences"] for w in s}
  assert len(keyed) == results["vocab_size"] == len(words)
  assert set(keyed.index_to_key) == words
  # The benchmarks were read from the planted files: 7 questions answered, 1 skipped.
  assert results["analogy_questions"] == 7
  assert results["ws353_spearman"] > 0.5 and results["ws353_oov_percent"] == 0.0
  assert results["final_loss"] < np.log(2) * (1 + 5), "loss above its value at initialisation"
  tokens = sum(len(s) for s in planted["sentences"])
  assert results["train_words"] == tokens * _EPOCHS[method]


def test_killed_run_resumes_to_identical_vectors(planted, tmp_path, monkeypatch):
  straight_dir, straight = planted["run"]("skipgram")
  assert straight["num_steps"] > 60, "the kill must fall after a checkpoint"
  workdir = tmp_path / "killed"
  real_host_batch = loop.iterators.host_batch

  def dies_at_50(split, seed, step, batch_size):
    if step == 50:
      raise RuntimeError("killed at step 50")
    return real_host_batch(split, seed, step, batch_size)

  with _planted_data(_documents(planted["sentences"]), planted["bench_dir"]):
    monkeypatch.setattr(loop.iterators, "host_batch", dies_at_50)
    with pytest.raises(RuntimeError, match="killed"):
      loop.train_and_evaluate(_config("skipgram"), workdir, progress=False)
    assert (workdir / "checkpoints" / "40").is_dir() and not (workdir / "results.json").exists()
    monkeypatch.setattr(loop.iterators, "host_batch", real_host_batch)
    resumed = loop.train_and_evaluate(_config("skipgram"), workdir, progress=False)
  assert (workdir / "vectors.txt").read_bytes() == (straight_dir / "vectors.txt").read_bytes()
  assert resumed["final_loss"] == straight["final_loss"]
  for key in ("ws353_spearman", "analogy_accuracy", "num_steps"):
    assert resumed[key] == straight[key], key


def test_resume_on_a_corpus_with_another_vocabulary_is_refused(planted, tmp_path):
  straight_dir, _ = planted["run"]("skipgram")
  workdir = tmp_path / "run"
  shutil.copytree(straight_dir, workdir)
  (workdir / "results.json").unlink()  # As if evaluation had been interrupted.
  before = {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  # The same config and number of tokens, one filler occurrence swapped for another: the
  # same words (and table shapes) with other counts.
  sentences = [list(s) for s in planted["sentences"]]
  first = next(i for i, w in enumerate(sentences[0]) if w.startswith("f") and w != "fab")
  sentences[0][first] = "fab"
  with _planted_data(_documents(sentences), planted["bench_dir"]):
    with pytest.raises(CheckpointMismatchError, match="data_fingerprint") as error:
      loop.train_and_evaluate(_config("skipgram"), workdir, progress=False)
  assert "\n" not in str(error.value)
  after = {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  assert after == before, "a refused resume must not touch the workdir"


def test_gensim_reference_learns_the_planted_pairs_and_reports_our_keys(planted):
  _, ours = planted["run"]("skipgram")
  workdir, theirs = planted["run"]("gensim_skipgram")
  assert set(theirs) == set(ours)
  assert set(theirs) >= set(word_vectors.TABLE_COLUMNS)
  hits, _ = _partner_hits(workdir / "vectors.txt", planted["a"], planted["b"])
  assert hits >= 0.9 * _NUM_PAIRS, f"gensim: {hits}/{_NUM_PAIRS} planted partners found"
  assert theirs["analogy_questions"] == 7 and theirs["oov_handled"] is False

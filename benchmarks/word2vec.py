"""Training words/s of our cbow and skip-gram against gensim's, side by side on one corpus.

  python benchmarks/word2vec.py [--max_words 1000000] [--rounds 3] [--workers 2] [--quick]

Both sides train on the same tokenised sentences (the first ``--max_words`` words of the
English train split, ``configs/<method>.py:full`` hyper-parameters, one epoch per round).
The rounds alternate ours / gensim, and the medians are printed with their ratio. Each
side is timed from the sentences to trained vectors: ours ``prepare_sentences``
(vocabulary, subsampling, chunks) plus the training steps (compiled once; compilation
is not counted), gensim ``build_vocab`` plus ``train``. The last columns compare the
training alone: our steps against gensim's ``train``. words/s = corpus words
of the run / seconds. Needs gensim (``pip install -e '.[bench]'``) and the fetched corpus.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pretrain_jax.train import platform  # noqa: E402  pylint: disable=g-import-not-at-top

platform.configure_cpu()

import jax  # noqa: E402  pylint: disable=g-import-not-at-top
import ml_collections  # noqa: E402  pylint: disable=g-import-not-at-top

from pretrain_jax.data import iterators  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.data import text  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.methods import gensim_reference  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.methods import word_vectors  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.train import loop  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.train import sharding  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.train.config import load_method_config  # noqa: E402  pylint: disable=g-import-not-at-top

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")


def ours(config, sentences, step_cache):
  """Trains our method once from the sentences; returns (total seconds, step seconds, words)."""
  started = time.perf_counter()
  prepared, chunks = word_vectors.prepare_sentences(config, config.data.name, sentences)
  data = {"train": chunks}
  num_train = iterators.num_examples(data["train"])
  run = loop.Pretrainer(config, prepared, num_steps=loop.num_steps_for(config, num_train))
  state = run.init_state()
  batch_size = config.train.batch_size

  def batch(step):
    return sharding.global_batch(iterators.host_batch(data["train"], config.seed, step, batch_size),
                                 run.mesh)

  key = (config.method, run.num_steps, prepared.num_inputs, len(prepared.vocab))
  if key not in step_cache:  # Compilation is not timed (it happens once per shape).
    compile_started = time.perf_counter()
    step_cache[key] = run.jit_train_step().lower(state, batch(0)).compile()
    started += time.perf_counter() - compile_started
  train_step = step_cache[key]
  steps_started = time.perf_counter()
  for step in range(run.num_steps):
    state, _ = train_step(state, batch(step))
  jax.block_until_ready(state)
  finished = time.perf_counter()
  return finished - started, finished - steps_started, prepared.vocab.num_tokens * config.word2vec.epochs


def gensim_side(config, sentences):
  """Trains gensim once (``gensim_reference.build_model``: the same hyper-parameters) from
  the sentences: ``build_vocab`` plus ``train``; returns (total seconds, train seconds, words)."""
  started = time.perf_counter()
  model = gensim_reference.build_model(config)
  model.build_vocab(sentences)
  train_started = time.perf_counter()
  model.train(sentences, total_examples=model.corpus_count, epochs=config.word2vec.epochs)
  finished = time.perf_counter()
  words = sum(len(s) for s in sentences) * config.word2vec.epochs
  return finished - started, finished - train_started, words


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--max_words", type=int, default=1_000_000, help="train words used (0 = all)")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
  parser.add_argument("--workers", type=int, default=2, help="gensim worker threads")
  parser.add_argument("--quick", action="store_true", help="100k words, 1 round (a smoke check)")
  args = parser.parse_args(argv)
  if args.quick:
    args.max_words, args.rounds = 100_000, 1
  try:
    import gensim  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    print("error: this benchmark compares with gensim: pip install -e '.[bench]'.", file=sys.stderr)
    return 1
  print(f"jax {jax.__version__}, gensim {gensim.__version__}, {jax.device_count()} CPU devices, "
        f"{os.cpu_count()} cores; {args.rounds} rounds, medians")
  print(f"{'method':10s} {'ours words/s':>13s} {'gensim words/s':>15s} {'ratio':>6s}   "
        f"{'ours steps':>11s} {'gensim train':>13s} {'ratio':>6s}")
  for method in ("cbow", "skipgram"):
    config = load_method_config(CONFIG_DIR, method, "full", seed=0)
    config.unlock()
    config.word2vec.epochs = 1
    config.data.max_train_words = args.max_words
    config.gensim = ml_collections.ConfigDict({"model": method, "workers": args.workers})
    config.lock()
    _, splits = text.load_for_config(config)
    sentences = word_vectors.train_sentences(splits["train"])
    step_cache, rates = {}, {"ours": [], "steps": [], "gensim": [], "train": []}
    for _ in range(args.rounds):
      total, steps, words = ours(config, sentences, step_cache)
      rates["ours"].append(words / total)
      rates["steps"].append(words / steps)
      total, train, words = gensim_side(config, sentences)
      rates["gensim"].append(words / total)
      rates["train"].append(words / train)
    median = {key: statistics.median(values) for key, values in rates.items()}
    print(f"{method:10s} {median['ours']:13,.0f} {median['gensim']:15,.0f} "
          f"{median['ours'] / median['gensim']:5.2f}x   {median['steps']:11,.0f} "
          f"{median['train']:13,.0f} {median['steps'] / median['train']:5.2f}x", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())

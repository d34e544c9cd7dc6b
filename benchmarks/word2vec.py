"""Training words/s of our cbow and skip-gram against gensim's, side by side on one corpus.

  python benchmarks/word2vec.py [--max_words 1000000] [--rounds 3] [--workers 2]

Both sides train on the same sentences (the first ``--max_words`` words of the English
train split, ``configs/<method>.py:full`` hyper-parameters, one epoch per round). The
rounds alternate ours / gensim, and the medians are printed with their ratio. Each side
is timed from tokens to trained vectors: ours ``prepare_data`` (vocabulary, subsampling,
chunks) plus the training steps (compiled once before the first round), gensim
``build_vocab`` plus ``train``; ours' steps alone are shown too. words/s = corpus words
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


def ours(config, info, documents, step_cache):
  """Trains our method once; returns (total seconds, step seconds, words)."""
  started = time.perf_counter()
  prepared, data = word_vectors.prepare_data(config, info, {"train": documents, "val": [], "test": []})
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
  the sentences: ``build_vocab`` plus ``train``; returns (seconds, words)."""
  started = time.perf_counter()
  model = gensim_reference.build_model(config)
  model.build_vocab(sentences)
  model.train(sentences, total_examples=model.corpus_count, epochs=config.word2vec.epochs)
  return time.perf_counter() - started, sum(len(s) for s in sentences) * config.word2vec.epochs


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--max_words", type=int, default=1_000_000, help="train words used (0 = all)")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
  parser.add_argument("--workers", type=int, default=2, help="gensim worker threads")
  args = parser.parse_args(argv)
  try:
    import gensim  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    print("error: this benchmark compares with gensim: pip install -e '.[bench]'.", file=sys.stderr)
    return 1
  print(f"jax {jax.__version__}, gensim {gensim.__version__}, {jax.device_count()} CPU devices, "
        f"{os.cpu_count()} cores; {args.rounds} rounds, medians")
  print(f"{'method':10s} {'ours words/s':>13s} {'(steps only)':>13s} {'gensim words/s':>15s} {'ratio':>6s}")
  for method in ("cbow", "skipgram"):
    config = load_method_config(CONFIG_DIR, method, "full", seed=0)
    config.unlock()
    config.word2vec.epochs = 1
    config.data.max_train_words = args.max_words
    config.gensim = ml_collections.ConfigDict({"model": method, "workers": args.workers})
    config.lock()
    info, splits = text.load_for_config(config)
    sentences = word_vectors.train_sentences(splits["train"])
    step_cache, our_rates, step_rates, gensim_rates = {}, [], [], []
    for _ in range(args.rounds):
      total, steps, words = ours(config, info, splits["train"], step_cache)
      our_rates.append(words / total)
      step_rates.append(words / steps)
      seconds, words = gensim_side(config, sentences)
      gensim_rates.append(words / seconds)
    mine, theirs = statistics.median(our_rates), statistics.median(gensim_rates)
    print(f"{method:10s} {mine:13,.0f} {statistics.median(step_rates):13,.0f} {theirs:15,.0f} "
          f"{mine / theirs:5.2f}x", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())

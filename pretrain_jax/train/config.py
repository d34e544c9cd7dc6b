"""The fields every vision-pretraining config shares, for ``configs/<method>.py``.

Each experiment config calls ``base_config(variant)`` and adds the section named after its
method. Values are literals chosen per variant; nothing is derived from other fields
(a reader sees every number that runs). Variants:

* ``smoke``: seconds on one CPU core, the ``digits`` dataset (always present); for tests.
* ``demo``: the whole table in at most 10 minutes on a 2-core CPU, Fashion-MNIST.
* ``full``: the numbers quoted in the README; an accelerator recommended.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import ml_collections

VARIANTS = ("smoke", "demo", "full")


def check_variant(variant: str | None) -> str:
  """Returns the variant name, ``demo`` when None or empty.

  Raises:
    ValueError: for a name outside ``VARIANTS``.
  """
  variant = variant or "demo"
  if variant not in VARIANTS:
    raise ValueError(f"Unknown config variant {variant!r}: use one of {', '.join(VARIANTS)} "
                     "(e.g. --config configs/contrastive.py:demo).")
  return variant


def _run_config(method: str, variant: str | None):
  """A new config holding ``method`` and the checked ``variant``, and the variant's picker
  ``pick(smoke, demo, full)``.

  Raises:
    ValueError: unknown variant.
  """
  variant = check_variant(variant)
  config = ml_collections.ConfigDict()
  config.method = method  # Key of pretrain_jax.methods.METHODS: which pretraining runs.
  config.variant = variant  # Recorded for the table; smoke / demo / full.
  return config, lambda smoke, demo, full: {"smoke": smoke, "demo": demo, "full": full}[variant]


def base_config(method: str, variant: str | None) -> ml_collections.ConfigDict:
  """The shared sections ``data``, ``model``, ``optim``, ``train``, ``eval`` (unlocked).

  Args:
    method: key of ``pretrain_jax.methods.METHODS``.
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).

  Returns:
    An unlocked ``ml_collections.ConfigDict``; the caller adds its method section and locks.

  Raises:
    ValueError: unknown variant.
  """
  config, pick = _run_config(method, variant)
  config.seed = 0  # Seeds init, data order, augmentations and the probe.

  config.data = ml_collections.ConfigDict()
  config.data.name = pick("digits", "fashion_mnist", "fashion_mnist")  # Dataset by name.
  config.data.val_size = pick(300, 5000, 5000)  # Validation images carved from train.
  config.data.train_limit = pick(0, 0, 0)  # Use only the first N training images (0 = all).

  config.model = ml_collections.ConfigDict()
  config.model.width = pick(8, 16, 64)  # Encoder width w; the representation has 4w dims.

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 2e-3  # Peak learning rate of AdamW.
  config.optim.weight_decay = 1e-4  # Decoupled weight decay of AdamW.
  config.optim.warmup_steps = pick(5, 50, 500)  # Linear warm-up steps.
  config.optim.end_learning_rate = 1e-5  # Final value of the cosine decay.
  config.optim.grad_clip_norm = 1.0  # Global gradient-norm clip.

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = pick(64, 128, 512)  # Global batch, split over all devices.
  config.train.num_steps = pick(30, 500, 8000)  # Optimiser steps of pretraining.
  config.train.log_every = pick(10, 50, 200)  # Steps between metrics lines and NaN checks.
  config.train.checkpoint_every = pick(10, 100, 2000)  # Steps between Orbax checkpoints.
  config.train.keep_checkpoints = 3  # Most recent checkpoints kept on disk.

  config.eval = ml_collections.ConfigDict()
  config.eval.probe_train_limit = pick(0, 10000, 0)  # Probe fits on the first N train images (0 = all).
  config.eval.test_limit = pick(0, 0, 0)  # Evaluate on the first N test images (0 = all).
  config.eval.l2_grid = pick((1e-4, 1e-2), (1e-5, 1e-4, 1e-3), (1e-6, 1e-5, 1e-4, 1e-3))  # Probe weight decays tried on val.
  config.eval.probe_steps = pick(100, 300, 500)  # L-BFGS iterations of the linear probe.
  config.eval.knn_k = 20  # Neighbours of the cosine kNN classifier.
  config.eval.batch_size = 1000  # Images per forward pass when extracting features.
  return config


def generative_config(method: str, variant: str | None) -> ml_collections.ConfigDict:
  """The fields every likelihood model on binarized MNIST shares (issue 9's family).

  Variants: ``smoke`` trains on 2,000 images for a few hundred steps in seconds, for tests;
  ``demo`` a few thousand steps of the whole train split (minutes on a 2-core CPU);
  ``full`` the papers' setting (an accelerator recommended). Validation and test images
  are binarized once (``data.binarized_mnist``); the test limit keeps smoke and demo
  evaluations short.

  Args:
    method: key of ``pretrain_jax.methods.METHODS``.
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).

  Returns:
    An unlocked ``ml_collections.ConfigDict``; the caller adds its method section and locks.

  Raises:
    ValueError: unknown variant.
  """
  config, pick = _run_config(method, variant)
  config.seed = 0  # Seeds init, the validation carve-out, binarization draws and evaluation.

  config.data = ml_collections.ConfigDict()
  config.data.name = "binarized_mnist"  # MNIST, binarized (python -m pretrain_jax.data.fetch mnist).
  config.data.val_size = pick(1000, 10000, 10000)  # Validation images carved from MNIST's 60,000 (protocol: 10,000).
  config.data.train_limit = pick(2000, 0, 0)  # Use only the first N training images (0 = all 50,000).

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3  # Peak learning rate of Adam (Burda et al. 2016: 1e-3).
  config.optim.weight_decay = 0.0  # Decoupled weight decay (none in the papers).
  config.optim.warmup_steps = pick(10, 100, 1000)  # Linear warm-up steps.
  config.optim.end_learning_rate = 1e-5  # Final value of the cosine decay.
  config.optim.grad_clip_norm = 100.0  # Global gradient-norm clip (losses are nats per image, gradients large).

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = pick(64, 128, 128)  # Images per step, divisible by up to 8 devices (Burda et al.: 20).
  config.train.num_steps = pick(600, 3000, 1_000_000)  # Optimiser steps (demo: 8 passes; full: 2,560 passes over 50,000 images).
  config.train.log_every = pick(50, 250, 5000)  # Steps between metrics lines and NaN checks.
  config.train.checkpoint_every = pick(100, 1000, 50000)  # Steps between Orbax checkpoints.
  config.train.keep_checkpoints = 3  # Most recent checkpoints kept on disk.

  config.eval = ml_collections.ConfigDict()
  config.eval.test_limit = pick(500, 1000, 0)  # Score the first N val and test images (0 = all 10,000).
  config.eval.probe_train_limit = pick(1000, 10000, 0)  # Probe fits on the first N train images (0 = all).
  config.eval.l2_grid = pick((1e-4, 1e-2), (1e-5, 1e-4, 1e-3), (1e-6, 1e-5, 1e-4, 1e-3))  # Probe weight decays tried on val.
  config.eval.probe_steps = pick(100, 300, 500)  # L-BFGS iterations of the linear probe.
  config.eval.knn_k = 20  # Neighbours of the cosine kNN classifier.
  config.eval.batch_size = pick(64, 128, 128)  # Images per evaluation call.
  return config


def vae_config(variant: str | None, *, objective: str, num_samples: tuple[int, int, int],
               conditional: bool) -> ml_collections.ConfigDict:
  """A locked config of ``methods/vae.py`` (configs/vae.py, iwae.py, cvae.py).

  The architecture is Burda et al.'s (2016, Sec. 5) one stochastic layer: 784-200-200-50
  tanh encoder, 50-200-200-784 decoder, Bernoulli pixels (smaller at smoke size).

  Args:
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).
    objective: ``"elbo"`` or ``"iwae"``.
    num_samples: k of the training bound at (smoke, demo, full).
    conditional: feed the class to both networks.

  Returns:
    The locked config.

  Raises:
    ValueError: unknown variant.
  """
  config = generative_config("vae", variant)
  pick = lambda smoke, demo, full: {"smoke": smoke, "demo": demo, "full": full}[config.variant]
  config.model = ml_collections.ConfigDict()
  config.model.hidden_dims = (200, 200)  # Encoder hidden widths (decoder: reversed).
  config.model.latent_dim = pick(20, 50, 50)  # Latent dimension Z.
  config.model.activation = "tanh"  # Hidden activation (paper: tanh).
  config.vae = ml_collections.ConfigDict()
  config.vae.objective = objective  # elbo (Kingma & Welling 2014) or iwae (Burda et al. 2016).
  config.vae.num_samples = pick(*num_samples)  # Draws k per image in the training bound.
  config.vae.conditional = conditional  # Feed the class to the encoder and decoder (conditional VAE).
  config.eval.num_importance_samples = pick(100, 200, 5000)  # k of the IWAE bound on val/test (paper: 5,000).
  config.eval.importance_chunk_size = pick(50, 100, 100)  # Draws per scan step of that bound (memory).
  config.eval.gradient_variance_images = pick(20, 100, 1000)  # Test images for the estimator-variance comparison.
  config.lock()
  return config


def rbm_config(variant: str | None, *, persistent: bool) -> ml_collections.ConfigDict:
  """A locked config of ``methods/rbm.py`` (configs/rbm.py for CD-k, configs/rbm_pcd.py).

  Salakhutdinov & Murray (2008): 500 hidden units, CD-25 in the full variant (CD-1 in
  smoke and demo: 25 Gibbs steps per update cost 25 times as much); SGD with momentum
  and a small weight cost, as in Hinton's practical guide.

  Args:
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).
    persistent: PCD (persistent chains) instead of CD-k.

  Returns:
    The locked config.

  Raises:
    ValueError: unknown variant.
  """
  config = generative_config("rbm", variant)
  pick = lambda smoke, demo, full: {"smoke": smoke, "demo": demo, "full": full}[config.variant]
  config.model = ml_collections.ConfigDict()
  config.model.num_hidden = pick(100, 500, 500)  # Hidden units H (paper: 500).
  config.rbm = ml_collections.ConfigDict()
  config.rbm.persistent = persistent  # PCD: negative phase from persistent chains (Tieleman 2008).
  config.rbm.cd_steps = 1 if persistent else pick(1, 1, 25)  # Block-Gibbs steps k per update (paper: 25).
  config.rbm.num_chains = 128  # Persistent chains (PCD only).
  config.rbm.optimizer = "sgd"  # sgd (with momentum, Hinton's guide) or adamw (the loop's).
  # PCD at CD-1's 0.05 / 0.9 collapsed in the demo (every hidden unit the same filter,
  # probe 14%); at 0.01 / 0.5 it reached 121.8 nats and a 93.6% probe.
  config.rbm.momentum = 0.5 if persistent else 0.9  # SGD momentum.
  config.optim.learning_rate = 0.01 if persistent else 0.05  # Peak SGD rate (cosine-decayed to 1% of it).
  config.optim.weight_decay = 2e-4  # L2 weight cost on every parameter.
  config.eval.ais_chains = pick(16, 100, 100)  # AIS runs (paper: 100).
  config.eval.ais_betas = pick(1000, 5000, 14_500)  # Intermediate distributions K (paper: 14,500).
  config.eval.gibbs_steps = pick(100, 500, 10_000)  # Gibbs sweeps before a sample is drawn.
  config.lock()
  return config


def word_vector_config(method: str, variant: str | None) -> ml_collections.ConfigDict:
  """The fields every word-vector config shares (cbow, skip-gram, fastText, PPMI, gensim).

  Hyper-parameters are gensim's defaults and the issue's full setting (vector size 100,
  window 5, 5 negatives, min_count 5, 5 epochs), so our rows and gensim's train on the same
  tokens with the same settings. Variants: ``smoke`` trains on the first 200k words of
  Jane Austen's novels in seconds; ``demo`` is one epoch of the whole English corpus;
  ``full`` five.

  Args:
    method: key of ``pretrain_jax.methods.METHODS``.
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).

  Returns:
    An unlocked ``ml_collections.ConfigDict``; the caller adds its method section and locks.

  Raises:
    ValueError: unknown variant.
  """
  config, pick = _run_config(method, variant)
  config.seed = 0  # Seeds the document split, subsampling, windows and negatives.

  config.data = ml_collections.ConfigDict()
  config.data.name = "english"  # The English corpora (python -m pretrain_jax.data.fetch english).
  config.data.sources = pick(("austen",), (), ())  # Corpora used (empty = all of data.text.CORPUS_SOURCES).
  config.data.val_fraction = 0.05  # Fraction of each source's documents held out for validation.
  config.data.test_fraction = 0.05  # Fraction of each source's documents held out for testing.
  config.data.max_train_words = pick(200_000, 0, 0)  # Train on the first N words of the train split (0 = all).

  config.word2vec = ml_collections.ConfigDict()
  config.word2vec.vector_size = pick(32, 100, 100)  # Dimension D of the word vectors.
  config.word2vec.window = 5  # Maximum window W (words each side); each centre draws b ~ U{1..W}.
  config.word2vec.negative = 5  # Noise words K per centre.
  config.word2vec.ns_exponent = 0.75  # Noise distribution ∝ count^ns_exponent.
  config.word2vec.min_count = 5  # Words seen fewer times in the train split are dropped.
  config.word2vec.sample = 1e-3  # Subsampling threshold t of frequent words; 0 = off, where our summed batch updates diverge.
  config.word2vec.epochs = pick(2, 1, 5)  # Passes over the corpus, each with a fresh subsample.
  config.word2vec.alpha = 0.025  # Initial SGD learning rate α.
  config.word2vec.min_alpha = 1e-4  # α decays linearly to this over the run.
  config.word2vec.chunk_size = 32  # Consecutive centres per example (chunk) of the train split.
  config.word2vec.shared_negatives = 16  # Noise words per chunk, each weighted negative / 16 (vs 32: cbow 1.75x faster, analogies 9.7% both).

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 32  # Chunks per step (× chunk_size centres), split over all devices.
  config.train.num_epochs = 1  # Passes over the chunks (word2vec.epochs corpus passes).
  config.train.log_every = pick(10, 200, 500)  # Steps between metrics lines and NaN checks.
  config.train.checkpoint_every = pick(20, 2000, 4000)  # Steps between Orbax checkpoints.
  config.train.keep_checkpoints = 2  # Most recent checkpoints kept on disk.

  config.eval = ml_collections.ConfigDict()
  config.eval.restrict_vocab = 30_000  # Analogy questions and answers among the N most frequent words.
  config.eval.query_words = ("king", "france", "good", "ship", "god")  # Nearest neighbours reported.
  config.eval.analogy_queries = (("man", "king", "woman"), ("france", "paris", "england"))  # a:b::c:? reported.
  return config


def fasttext_section(variant: str) -> ml_collections.ConfigDict:
  """The ``fasttext`` section, shared by ``configs/fasttext.py`` and gensim's FastText row
  (``configs/gensim_fasttext.py``) so both train with the same subwords.

  Args:
    variant: ``smoke``, ``demo`` or ``full``.

  Returns:
    An unlocked ``ml_collections.ConfigDict``.

  Raises:
    ValueError: unknown variant.
  """
  _, pick = _run_config("fasttext", variant)
  section = ml_collections.ConfigDict()
  section.subwords = "ngrams"  # "ngrams" (hashed character n-grams + the word) or "bpe" (BPE pieces; ours only).
  section.architecture = "skipgram"  # "skipgram" (Bojanowski et al. 2017) or "cbow".
  section.min_n = 3  # Shortest character n-gram of <word>.
  section.max_n = 6  # Longest character n-gram of <word>.
  section.bucket = pick(20_000, 200_000, 200_000)  # Hash buckets of the n-grams (input rows beyond V).
  section.max_subwords = 40  # Rows per word at most (the word, then n-grams shortest first); 0 = all. Ours only.
  section.bpe_vocab_size = 8_000  # BPE tokenizer size for subwords = "bpe".
  return section


def gensim_config(model: str, variant: str | None) -> ml_collections.ConfigDict:
  """``word_vector_config`` of the gensim reference row for ``model`` (unlocked).

  Args:
    model: ``cbow``, ``skipgram`` (gensim's Word2Vec) or ``fasttext`` (gensim's FastText,
      with ``fasttext_section``).
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).

  Returns:
    An unlocked ``ml_collections.ConfigDict`` of method ``gensim_reference``.

  Raises:
    ValueError: unknown variant.
  """
  config = word_vector_config("gensim_reference", variant)
  config.gensim = ml_collections.ConfigDict()
  config.gensim.model = model  # gensim model: cbow, skipgram (Word2Vec) or fasttext (FastText).
  config.gensim.workers = 2  # gensim worker threads (one per core of the 2-core CPU).
  if model == "fasttext":
    config.fasttext = fasttext_section(config.variant)  # The same subwords as configs/fasttext.py.
  return config


def language_model_config(method: str, variant: str | None) -> ml_collections.ConfigDict:
  """The fields every language model's config shares (GPT; ELMo and BERT build on it).

  A byte-level BPE tokenizer trained on the train split, documents packed into rows of
  ``model.max_len + 1`` tokens (``methods.language_models``), AdamW with warm-up and
  cosine decay. Variants: ``smoke`` is a tiny model on the first 100k words of Jane
  Austen's novels, seconds on a CPU, for tests; ``demo`` a small model on all of Austen
  (one author: held-out chapters are in-domain), minutes on the 2-core CPU; ``full`` the
  whole English corpus, an accelerator recommended. (``data.max_train_words`` keeps the
  first documents of the train split, which is in source order: on several sources it
  would train on the first ones and validate on all.)

  Args:
    method: key of ``pretrain_jax.methods.METHODS``.
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).

  Returns:
    An unlocked ``ml_collections.ConfigDict``; the caller adds its method section and locks.

  Raises:
    ValueError: unknown variant.
  """
  config, pick = _run_config(method, variant)
  config.seed = 0  # Seeds the document split, init, batch order and sampling.

  config.data = ml_collections.ConfigDict()
  config.data.name = "english"  # The English corpora (python -m pretrain_jax.data.fetch english).
  config.data.sources = pick(("austen",), ("austen",), ())  # Corpora used (empty = all of data.text.CORPUS_SOURCES).
  config.data.val_fraction = 0.05  # Fraction of each source's documents held out for validation.
  config.data.test_fraction = 0.05  # Fraction of each source's documents held out for testing.
  config.data.max_train_words = pick(100_000, 0, 0)  # Train on the first N words of the train split (0 = all).

  config.tokenizer = ml_collections.ConfigDict()
  config.tokenizer.vocab_size = pick(512, 2048, 8192)  # BPE ids, 6 special tokens and 256 bytes included.
  config.tokenizer.min_frequency = 2  # Smallest pair count still merged.

  config.model = ml_collections.ConfigDict()
  config.model.num_layers = pick(2, 2, 6)  # Transformer blocks L.
  config.model.num_heads = pick(2, 4, 8)  # Attention heads H (model_dim / H per head).
  config.model.model_dim = pick(32, 64, 256)  # Model width D.
  config.model.mlp_dim = pick(64, 256, 1024)  # MLP hidden width (4 D).
  config.model.max_len = pick(32, 64, 128)  # Context T: tokens read per row.
  config.model.positional = "sinusoidal"  # Fixed positional encoding: sinusoidal or dials.
  config.model.attention = "project"  # project | xla | cudnn (jax.nn.dot_product_attention): how, not what.

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = pick(1e-2, 6e-3, 1e-3)  # Peak learning rate of AdamW.
  config.optim.weight_decay = 0.01  # Decoupled weight decay of AdamW.
  config.optim.warmup_steps = pick(5, 50, 500)  # Linear warm-up steps.
  config.optim.end_learning_rate = 1e-5  # Final value of the cosine decay.
  config.optim.grad_clip_norm = 1.0  # Global gradient-norm clip.

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = pick(16, 32, 64)  # Rows (sequences) per step, split over all devices.
  config.train.num_steps = pick(100, 800, 20000)  # Optimiser steps.
  config.train.log_every = pick(10, 50, 200)  # Steps between metrics lines and NaN checks.
  config.train.checkpoint_every = pick(20, 200, 2000)  # Steps between Orbax checkpoints.
  config.train.keep_checkpoints = 2  # Most recent checkpoints kept on disk.

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = pick(32, 64, 64)  # Held-out rows per forward pass.
  config.eval.bigram_add_k = 0.01  # k of the add-k bigram baseline.
  config.eval.sample_prompt_tokens = 16  # Tokens of the held-out prompt continued in results.json.
  config.eval.sample_new_tokens = pick(16, 48, 64)  # Tokens generated after the prompt.
  config.eval.temperature = 0.8  # Sampling temperature of the sample (0 = greedy).
  config.eval.top_k = 40  # Sample among the k most likely tokens (0 = all).
  return config


def finetune_config(variant: str | None) -> ml_collections.ConfigDict:
  """The config of a fine-tuning run (``methods.finetune``), unlocked.

  ``finetune.pretrained_workdir`` must be set (``--config.finetune.pretrained_workdir=runs/gpt``);
  the architecture and tokenizer are the pretrained run's. Variants: ``smoke`` 256 Rotten
  Tomatoes snippets, one epoch, for tests; ``demo`` 2,000 snippets, 2 epochs, minutes on
  the 2-core CPU; ``full`` every training text, 3 epochs.

  Args:
    variant: ``smoke``, ``demo`` or ``full`` (None means ``demo``).

  Returns:
    An unlocked ``ml_collections.ConfigDict``.

  Raises:
    ValueError: unknown variant.
  """
  config, pick = _run_config("finetune", variant)
  config.seed = 0  # Seeds the head's init and the batch order.

  config.data = ml_collections.ConfigDict()
  config.data.name = "rotten_tomatoes"  # Labelled texts: rotten_tomatoes or fine_food (fetch sentiment).
  config.data.train_limit = pick(256, 2000, 0)  # Fine-tune on the first N training texts (0 = all).

  config.finetune = ml_collections.ConfigDict()
  config.finetune.pretrained_workdir = ""  # The pretrained run (GPT, BERT or ELMo workdir); required.
  config.finetune.from_scratch = False  # Same architecture and tokenizer, random weights (no pretraining).
  config.finetune.head_only = False  # Train the head alone, the backbone frozen (ELMo's protocol).
  config.finetune.max_len = pick(32, 64, 128)  # Tokens per text (longer texts keep their beginning).

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = pick(1e-3, 1e-3, 1e-4)  # Peak learning rate of AdamW (eval.finetune sweeps it).
  config.optim.weight_decay = 0.01  # Decoupled weight decay of AdamW.
  config.optim.warmup_steps = pick(2, 10, 50)  # Linear warm-up steps.
  config.optim.end_learning_rate = 0.0  # Final value of the cosine decay.
  config.optim.grad_clip_norm = 1.0  # Global gradient-norm clip.

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = pick(16, 32, 32)  # Texts per step, split over all devices.
  config.train.num_epochs = pick(1, 2, 3)  # Passes over the training texts.
  config.train.log_every = pick(4, 20, 50)  # Steps between metrics lines and NaN checks.
  config.train.checkpoint_every = pick(8, 60, 300)  # Steps between checkpoints (eval.finetune: one per epoch).
  config.train.keep_checkpoints = 3  # Most recent checkpoints kept on disk.

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = pick(32, 64, 64)  # Texts per forward pass when scoring.
  return config


def load_method_config(config_dir: str | os.PathLike, method: str, variant: str, seed: int):
  """``<config_dir>/<method>.py``'s ``get_config(variant)`` with ``seed`` set.

  Args:
    config_dir: the directory holding the method configs (``configs/``).
    method: a key of ``pretrain_jax.methods.METHODS``.
    variant: ``smoke``, ``demo`` or ``full``.
    seed: the run's seed (the table's seed overrides every method config's).

  Returns:
    The locked ``ml_collections.ConfigDict``.

  Raises:
    FileNotFoundError: no config file for ``method`` in ``config_dir``.
  """
  path = pathlib.Path(config_dir) / f"{method}.py"
  if not path.exists():
    raise FileNotFoundError(f"No config for method {method!r}: expected {path}.")
  spec = importlib.util.spec_from_file_location(f"pretrain_jax_config_{method}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant)
  config.seed = seed
  return config


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing for the entry points, with bad flags reported in one line.

  A misspelled ``--config.a.b=value`` override, a missing config file or an unknown
  variant exits with ``error: ...`` on one line instead of a traceback. Pass it as
  ``app.run(main, flags_parser=parse_flags)``.

  Args:
    argv: the command line, program name first.

  Returns:
    The arguments left after the flags.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  for index, arg in enumerate(argv):
    path = None
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
    elif arg == "--config" and index + 1 < len(argv):
      path = argv[index + 1]
    if path is not None and not pathlib.Path(path.split(":", 1)[0]).is_file():
      raise SystemExit(f"error: no config file {path.split(':', 1)[0]!r}: pass one of "
                       "configs/<method>.py[:smoke|demo|full].")
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, OSError, TypeError, ValueError) as error:
    text = str(error)
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
      text = text[1:-1]  # KeyError-style messages arrive quoted.
    text = text.replace("\\n", "\n").replace("\\'", "'")
    if isinstance(error, AttributeError):
      text = f"unknown config field {text}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A config file that raised: its own last line says what is wrong, not the trace.
    message = lines[-1] if "Traceback" in text else " ".join(lines)
    raise SystemExit(f"error: {message}") from None

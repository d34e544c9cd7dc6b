"""Pretraining methods: one module each, all registered in ``METHODS`` (the one dispatch).

A method module owns its model, its loss (or its own update rule) and its evaluation;
the loop (``pretrain_jax.train.loop``), ``TrainState``, checkpointing, resume, sharding
and metrics are shared and know nothing of images or text. Adding a method means adding
a module here, a line in ``METHODS`` and a config in ``configs/``; the loop never changes.

Every module has ``NAME``, ``SUPERVISION`` (what signal it learns from, for the tables)
and ``evaluate(trained, data, config, workdir) -> dict`` (its family's numbers, written
to results.json; ``workdir`` is the run's ``epath`` directory, for files such as
``vectors.txt``). ``data`` is the loop's splits, each a pytree of equal-length arrays (for
images ``{"image": uint8 [n, H, W, C], "label": int32 [n]}``). A method may also give
``prepare_data(config, info, data) -> (info, data)``, run once after loading, to turn the
data layer's splits into its examples (word vectors: a vocabulary and window chunks of
the corpus); the returned ``info`` reaches ``make_model``, and an ``info.fingerprint``
(the vocabulary or tokenizer) is stored with every checkpoint and checked on resume;
``info.workdir_files`` (file name -> text, e.g. ``tokenizer.json``) are written into the
workdir before step 0, and a workdir holding a different version of one is refused. A
method whose trained runs are reloaded without their data (``generate``, ``score``,
fine-tuning) gives ``load_info(config, workdir) -> info`` (``train.loop.restore_trained``).
Then either

* iterative methods, trained by the loop for ``train.num_steps`` steps:

  - ``make_model(config, info, *, rngs) -> nnx.Module``;
  - ``loss_fn(model, batch, key, config) -> (loss, metrics)``: a float32 scalar (units in
    the module's docstring) whose gradient the shared step applies, ``batch`` a batch of
    the train split, ``key`` the step's PRNG key; or
    ``make_train_step(run) -> step(state, batch) -> (state, metrics)``, the method's own
    pure update rule (word2vec's sparse SGD, CD-k), given the loop's ``Pretrainer``;
  - optional ``make_mesh() -> jax.sharding.Mesh`` (the ``("data",)`` mesh of its steps;
    default every device), ``make_optimizer(config, num_steps) -> optax.GradientTransformation``
    (or a pytree of them for alternating updates; their states live in
    ``TrainState.opt_state``), ``warm_start(run, state) -> state`` (a fresh state's params
    replaced before step 0, e.g. by a pretrained checkpoint's: fine-tuning) and
    ``init_extra(config, model, key) -> pytree`` (persistent chains, EMA weights: kept in
    ``TrainState.extra``, checkpointed and resumed like the rest);
  - ``evaluate`` receives the loop's ``TrainedModel``;

* or closed-form baselines, fitted once with no steps and no checkpoints:

  - ``fit(train, config) -> fitted``; ``evaluate`` receives ``fitted``.
"""

from pretrain_jax.methods import autoencoder
from pretrain_jax.methods import bert
from pretrain_jax.methods import cbow
from pretrain_jax.methods import contrastive
from pretrain_jax.methods import elmo
from pretrain_jax.methods import fasttext
from pretrain_jax.methods import finetune
from pretrain_jax.methods import gensim_reference
from pretrain_jax.methods import gpt
from pretrain_jax.methods import kmeans
from pretrain_jax.methods import pca
from pretrain_jax.methods import ppmi
from pretrain_jax.methods import random_init
from pretrain_jax.methods import rbm
from pretrain_jax.methods import raw_pixels
from pretrain_jax.methods import rotation
from pretrain_jax.methods import skipgram
from pretrain_jax.methods import supervised
from pretrain_jax.methods import vae

METHODS = {
    "raw_pixels": raw_pixels,
    "pca": pca,
    "kmeans": kmeans,
    "random_init": random_init,
    "autoencoder": autoencoder,
    "rotation": rotation,
    "contrastive": contrastive,
    "supervised": supervised,
    # Word vectors (methods.word_vectors): configs/word_vectors_table.py.
    "cbow": cbow,
    "skipgram": skipgram,
    "fasttext": fasttext,
    "ppmi": ppmi,
    "gensim_reference": gensim_reference,  # gensim's Word2Vec / FastText (optional, [bench]).
    # Language models (methods.language_models): configs/language_table.py.
    "gpt": gpt,
    "finetune": finetune,  # A pretrained language model fine-tuned on labelled texts.
    "bert": bert,
    "elmo": elmo,
    # Likelihood models on binarized MNIST: configs/generative_table.py.
    "vae": vae,  # VAE, IWAE and conditional VAE (configs/vae.py, iwae.py, cvae.py).
    "rbm": rbm,  # CD-k and PCD, log-likelihood by AIS (configs/rbm.py, rbm_pcd.py).
}


def get_method(name: str):
  """The method module called ``name``.

  Raises:
    ValueError: unknown name (the message lists the known ones).
  """
  if name not in METHODS:
    raise ValueError(f"Unknown method {name!r}: use one of {', '.join(METHODS)} "
                     "(one module in pretrain_jax/methods/ each).")
  return METHODS[name]

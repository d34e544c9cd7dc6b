"""VAE, IWAE and conditional VAE on binarized MNIST, trained by the shared loop.

Training maximises, per image x (binarized afresh each step, ``data.binarized_mnist``):

* ``vae.objective = "elbo"``: the ELBO, E_q[ln p(x|z)] − KL(q(z|x) ‖ N(0, I)), with the KL
  in closed form and ``vae.num_samples`` reparameterized draws for the first term
  (Kingma & Welling 2014, Eq. 7 and Appendix B);
* ``"iwae"``: the importance-weighted bound L_k = ln (1/k) Σ_s p(x, z_s) / q(z_s|x) with
  k = ``vae.num_samples`` (Burda et al. 2016, Eq. 8; k = 1 is the ELBO).

``vae.conditional`` feeds the class to both networks (the slides' conditional VAE).
The loss is minus the bound in nats per image, averaged over the batch.

``evaluate`` reports minus L_k on the validation and test images with
k = ``eval.num_importance_samples`` (5,000 in the full variant, as Burda et al. report):
an upper bound on the NLL that tightens as k grows. It also reports the ELBO on the same
draws, the linear probe and kNN on the encoder's mean μ(x), and writes ``samples.png``
(decoder means of prior draws; one row per class for a conditional VAE).

Sources: Kingma & Welling (2014); Burda, Grosse & Salakhutdinov (2016), Sec. 5 and Table 1
(one stochastic layer: VAE k = 1 86.76, IWAE k = 50 84.78 nats, dynamic binarization).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax.data import binarized_mnist
from pretrain_jax.data import datasets
from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.eval import generative
from pretrain_jax.methods import common
from pretrain_jax.nn.vae import VAE
from pretrain_jax.objectives import elbo as elbo_lib
from pretrain_jax.train import sharding

NAME = "vae"
make_mesh = sharding.small_step_mesh  # Millisecond steps: one device on a CPU host.
SUPERVISION = "none (ELBO / IWAE bound on pixels)"
OBJECTIVES = ("elbo", "iwae")

# Burda et al. (2016), Table 1, MNIST, one stochastic layer, test NLL (IWAE-5000 bound).
PUBLISHED_SOURCE = "Burda et al. 2016, Table 1"
PUBLISHED_NLL = {("elbo", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78,
                 ("elbo", 5): 86.47, ("elbo", 50): 86.35}


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.vae.objective not in OBJECTIVES:
    raise ValueError(f"vae.objective must be one of {OBJECTIVES}, got {config.vae.objective!r}.")
  if config.vae.num_samples < 1:
    raise ValueError(f"vae.num_samples must be >= 1, got {config.vae.num_samples}.")


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> VAE:
  """``nn.vae.VAE`` on ``info.image_shape`` flattened, sizes from ``config.model``.

  Raises:
    ValueError: an unknown objective, num_samples < 1, or bad sizes (``VAE``).
  """
  _check_config(config)
  model = config.model
  return VAE(input_dim=math.prod(info.image_shape), hidden_dims=tuple(model.hidden_dims),
             latent_dim=model.latent_dim, activation=model.activation,
             num_classes=info.num_classes if config.vae.conditional else 0, rngs=rngs)


def load_info(config: ml_collections.ConfigDict, workdir: Any = None) -> DatasetInfo:
  """The dataset's ``DatasetInfo``: all ``make_model`` needs to reload a run without its data."""
  del workdir  # A VAE writes no files that its model depends on.
  return datasets.get_info(config.data.name)


def _pixels(images: jax.Array) -> jax.Array:
  """uint8 or float ``[B, H, W, C]`` in {0, 1}-valued pixels -> float32 ``[B, D]``."""
  return images.reshape(images.shape[0], -1).astype(jnp.float32)


def _labels(model: VAE, batch: dict) -> jax.Array | None:
  return batch["label"] if model.num_classes else None


def loss_fn(model: VAE, batch: dict, key: jax.Array, config: ml_collections.ConfigDict):
  """Minus the training bound, nats per image.

  Args:
    model: the ``VAE``.
    batch: ``{"image": uint8 [B, 28, 28, 1] grey levels, "label": int32 [B]}``.
    key: the step's key: the binarization and the latent draws.
    config: ``vae.objective``, ``vae.num_samples``.

  Returns:
    ``(loss, {"elbo", "kl", "reconstruction"})``: loss = −bound averaged over the batch;
    the metrics in nats per image (``elbo`` for either objective, from the same draws).
  """
  binarize_key, sample_key = jax.random.split(key)
  x = _pixels(binarized_mnist.dynamic_binarize(binarize_key, batch["image"]))
  labels = _labels(model, batch)
  num_samples = config.vae.num_samples
  if config.vae.objective == "iwae":
    log_weights = model.log_weights(sample_key, x, num_samples, labels)  # [S, B]
    bound = elbo_lib.iwae_bound(log_weights)
    return -bound.mean(), {"elbo": log_weights.mean(), "iwae_bound": bound.mean()}
  mean, log_var = model.encode(x, labels)
  epsilon = jax.random.normal(sample_key, (num_samples, *mean.shape), mean.dtype)
  z = mean[None] + jnp.exp(0.5 * log_var)[None] * epsilon  # [S, B, Z]
  reconstruction = elbo_lib.bernoulli_log_likelihood(x[None], model.decode(z, labels)).mean(0)
  kl = elbo_lib.gaussian_kl(mean, log_var)
  bound = elbo_lib.elbo(reconstruction, kl)
  return -bound.mean(), {"elbo": bound.mean(), "kl": kl.mean(),
                         "reconstruction": reconstruction.mean()}


@functools.lru_cache(maxsize=None)
def importance_weighted_fn(num_samples: int, chunk_size: int, seed: int):
  """A ``fn(model, batch)`` for ``TrainedModel.map``: the bound L_S of each image.

  The S draws of row ``i`` come from ``fold_in(fold_in(PRNGKey(seed), index_i), chunk)``,
  so the numbers do not depend on the batch size or the device count. Chunks of
  ``chunk_size`` draws run in a ``lax.scan`` with a running log-sum-exp, so memory stays
  at ``batch × chunk_size × D``. One function per setting (cached), compiled once.

  Args:
    num_samples: S, a multiple of ``chunk_size``.
    chunk_size: draws per scan step.
    seed: the evaluation seed.

  Returns:
    ``fn(model, {"image": {0,1}-valued [B, H, W, C], "label": int32 [B], "index": int32
    [B]}) -> {"log_likelihood_bound": float32 [B] L_S, "elbo": float32 [B]}`` in nats.

  Raises:
    ValueError: S not a positive multiple of ``chunk_size``.
  """
  if num_samples < 1 or chunk_size < 1 or num_samples % chunk_size:
    raise ValueError(f"eval.num_importance_samples={num_samples} must be a positive multiple of "
                     f"eval.importance_chunk_size={chunk_size}.")

  def fn(model: VAE, batch: dict) -> dict[str, jax.Array]:
    x = _pixels(batch["image"])
    labels = _labels(model, batch)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(batch["index"])

    def chunk(carry, c):
      running_max, running_sum, total = carry
      chunk_keys = jax.vmap(lambda k: jax.random.fold_in(k, c))(keys)
      # One draw key per row: log_weights of each row separately, stacked to [S_c, B].
      log_w = jax.vmap(lambda k, xi, yi: model.log_weights(
          k, xi[None], chunk_size, None if yi is None else yi[None])[:, 0],
                       in_axes=(0, 0, None if labels is None else 0), out_axes=1)(
                           chunk_keys, x, labels)
      new_max = jnp.maximum(running_max, log_w.max(0))
      running_sum = (running_sum * jnp.exp(running_max - new_max)
                     + jnp.exp(log_w - new_max[None]).sum(0))
      return (new_max, running_sum, total + log_w.sum(0)), None

    batch_size = x.shape[0]
    init = (jnp.full((batch_size,), -jnp.inf), jnp.zeros((batch_size,)), jnp.zeros((batch_size,)))
    (running_max, running_sum, total), _ = jax.lax.scan(
        chunk, init, jnp.arange(num_samples // chunk_size))
    return {"log_likelihood_bound": running_max + jnp.log(running_sum) - math.log(num_samples),
            "elbo": total / num_samples}

  return fn


def importance_weighted_nll(trained: Any, split: dict[str, np.ndarray], num_samples: int,
                            config: ml_collections.ConfigDict) -> dict[str, float]:
  """−L_S averaged over a split's images: an upper bound on their NLL in nats per image.

  Args:
    trained: the loop's ``TrainedModel`` of a VAE.
    split: ``{"image": uint8 [n, 28, 28, 1] in {0, 255}, "label": int32 [n]}`` (already
      binarized: val or test).
    num_samples: S (Burda et al. report S = 5,000).
    config: ``eval.importance_chunk_size``, ``eval.batch_size``, ``seed``.

  Returns:
    ``{"nll": −mean L_S, "nll_std_error": its standard error over images, "elbo_nll":
    −mean ELBO}``, nats per image.
  """
  images = (split["image"] > 0).astype(np.float32)
  inputs = {"image": images, "label": split["label"],
            "index": np.arange(len(images), dtype=np.int32)}
  chunk_size = min(config.eval.importance_chunk_size, num_samples)
  out = trained.map(importance_weighted_fn(num_samples, chunk_size, config.seed), inputs,
                    batch_size=config.eval.batch_size)
  bound = np.asarray(out["log_likelihood_bound"], np.float64)
  return {"nll": float(-bound.mean()),
          "nll_std_error": float(bound.std(ddof=1) / math.sqrt(len(bound))) if len(bound) > 1 else 0.0,
          "elbo_nll": float(-np.mean(out["elbo"], dtype=np.float64))}


def gradient_variances(model: VAE, images: np.ndarray, key: jax.Array,
                       num_samples: int) -> dict[str, float]:
  """The slides' "key takeaway", measured: the variance of the two one-sample estimators of
  the gradient of E_q[ln p(x|z)] with respect to the variational parameters (μ, log σ²).

  For each image x, at the trained encoder's q(z|x) = N(μ(x), diag σ²(x)), S draws give S
  one-sample estimates of ∇_{μ, log σ²} E_q[ln p(x|z)] by the score function (REINFORCE,
  f(z) ∇ ln q(z), no baseline) and by reparameterization (∇ f(μ + σ ⊙ ε)), from the same
  ε (``objectives.elbo``). Each of the 2Z coordinates gets its variance over the S draws.

  Args:
    model: a trained unconditional ``VAE``.
    images: float ``[N, D]`` binary pixels.
    key: PRNG key.
    num_samples: S ≥ 2 draws per image.

  Returns:
    ``{"score_function": mean variance, "reparameterization": mean variance,
    "median_ratio": median over images and coordinates of the variance ratio}``
    (variances in nats² per unit parameter).

  Source: Kingma & Welling (2014), Sec. 2.4; Williams (1992); the slides' comparison of
  the REINFORCE and reparameterization estimators.
  """
  def per_image(x, image_key):
    mean, log_var = model.encode(x[None])
    f = lambda z: elbo_lib.bernoulli_log_likelihood(x, model.decode(z))
    score = elbo_lib.score_function_gradient_samples(image_key, f, mean[0], log_var[0], num_samples)
    path = elbo_lib.reparameterization_gradient_samples(image_key, f, mean[0], log_var[0],
                                                        num_samples)
    return (jnp.concatenate([g.var(0, ddof=1) for g in score]),
            jnp.concatenate([g.var(0, ddof=1) for g in path]))

  keys = jax.random.split(key, len(images))
  score_var, path_var = jax.jit(jax.vmap(per_image))(jnp.asarray(images, jnp.float32), keys)
  score_var, path_var = np.asarray(score_var, np.float64), np.asarray(path_var, np.float64)
  return {"score_function": float(score_var.mean()), "reparameterization": float(path_var.mean()),
          "median_ratio": float(np.median(score_var / np.maximum(path_var, 1e-30)))}


def _encoder_mean(model: VAE, batch: dict) -> jax.Array:
  return model.encode(_pixels(batch["image"]), _labels(model, batch))[0]


def sample_images(model: VAE, key: jax.Array, num_samples: int,
                  labels: np.ndarray | None = None) -> np.ndarray:
  """Decoder means σ(logits) of prior draws z ~ N(0, I).

  Args:
    model: a (trained) ``VAE``.
    key: PRNG key.
    num_samples: N.
    labels: int ``[N]`` classes for a conditional VAE; None otherwise.

  Returns:
    float32 ``[N, D]`` pixel probabilities in [0, 1].
  """
  z = jax.random.normal(key, (num_samples, model.latent_dim))
  return np.asarray(jax.nn.sigmoid(model.decode(z, None if labels is None else jnp.asarray(labels))))


def evaluate(trained: Any, data: dict[str, dict[str, np.ndarray]],
             config: ml_collections.ConfigDict, workdir: Any = None) -> dict[str, Any]:
  """Validation and test NLL bounds, the probe on μ(x), and a grid of samples.

  Returns:
    ``val_nll``, ``test_nll`` (−L_S, nats per image, S = ``eval.num_importance_samples``),
    ``test_nll_std_error``, ``val_elbo_nll`` / ``test_elbo_nll`` (−ELBO), ``likelihood``
    (how the NLL was obtained), ``published_nll`` and ``published_source`` (Burda et
    al.'s figure for this objective and k, or None), ``gradient_variance_score_function``,
    ``gradient_variance_reparameterization`` and ``gradient_variance_median_ratio``
    (``gradient_variances`` on the first ``eval.gradient_variance_images`` test images,
    unconditional VAEs) and the probe's keys (``common.evaluate_features``).
  """
  num_samples = config.eval.num_importance_samples
  results: dict[str, Any] = {"likelihood": f"IWAE bound, k={num_samples}",
                             "objective": config.vae.objective,
                             "train_num_samples": config.vae.num_samples}
  for split in ("val", "test"):
    limit = config.eval.test_limit  # The same cap on val and test keeps demo evaluation short.
    arrays = {key: value[:limit] if limit else value for key, value in data[split].items()}
    scores = importance_weighted_nll(trained, arrays, num_samples, config)
    results.update({f"{split}_nll": scores["nll"], f"{split}_elbo_nll": scores["elbo_nll"],
                    f"{split}_nll_std_error": scores["nll_std_error"]})
  results["published_nll"] = (None if config.vae.conditional else
                              PUBLISHED_NLL.get((config.vae.objective, config.vae.num_samples)))
  results["published_source"] = (PUBLISHED_SOURCE if results["published_nll"] is not None
                                 else None)

  def features_fn(images: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    binary = binarized_mnist.fixed_binarization(images) > 0
    inputs = {"image": binary.astype(np.float32)}
    if config.vae.conditional:  # Labels enter a conditional encoder; probe only μ(x, y).
      inputs["label"] = labels
    return trained.map(_encoder_mean, inputs, batch_size=config.eval.batch_size)

  if config.vae.conditional:
    results["probe"] = "skipped: a conditional encoder reads the label"
  else:
    results.update(common.evaluate_features(features_fn, data, config))

  model = trained.model()
  if not config.vae.conditional:
    count = config.eval.gradient_variance_images
    variances = gradient_variances(model, (data["test"]["image"][:count] > 0).reshape(count, -1),
                                   jax.random.PRNGKey(config.seed), 100)
    results.update({f"gradient_variance_{name}": value for name, value in variances.items()})
  if config.vae.conditional:
    labels = np.repeat(np.arange(model.num_classes), 10)
    images = sample_images(model, jax.random.PRNGKey(config.seed), len(labels), labels)
    title = "conditional VAE: decoder means, one row per class"
  else:
    images = sample_images(model, jax.random.PRNGKey(config.seed), 100)
    title = f"{config.vae.objective} k={config.vae.num_samples}: decoder means of z ~ N(0, I)"
  if workdir is not None:
    generative.save_image_grid(images.reshape(-1, 28, 28), workdir / generative.SAMPLES_FILE,
                               title=title, num_columns=10)
  return results

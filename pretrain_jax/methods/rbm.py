"""Binary RBM on binarized MNIST, trained by CD-k or PCD, with its log-likelihood from AIS.

The model is p(v, h) ∝ exp(hᵀWv + bᵀh + cᵀv) over binary pixels v (784) and binary hidden
units h (500 in the paper). Training follows the slides' contrastive divergence
(``samplers.gibbs``): the ascent direction ⟨p(h|v) vᵀ⟩_data − ⟨p(h|v) vᵀ⟩_model, the
negative phase from k block-Gibbs steps started at the data (``rbm.persistent = False``,
CD-k; Hinton 2002) or at persistent fantasy chains kept in ``TrainState.extra`` (PCD;
Tieleman 2008). The optimiser is the loop's (AdamW schedule) applied to minus that
direction, or SGD with momentum as in Hinton's guide (``rbm.optimizer = "sgd"``).

``evaluate`` estimates ln Z by annealed importance sampling (``samplers.ais``, the base-rate
model fitted to the training pixels) and reports the test NLL, mean F(v) + ln Z in nats
per image, with the AIS standard error; the linear probe and kNN read p(h = 1 | v); it
draws samples from long Gibbs chains (``samples.png``) and the first filters
(``filters.png``).

Sources: Hinton (2002); Tieleman (2008); Salakhutdinov & Murray (2008), "On the
Quantitative Analysis of Deep Belief Networks", Sec. 5 (500 hidden units trained with
CD-25: 86.34 nats on MNIST).
"""

from __future__ import annotations

import math
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from pretrain_jax.data import binarized_mnist
from pretrain_jax.data import datasets
from pretrain_jax.data.datasets import DatasetInfo
from pretrain_jax.eval import generative
from pretrain_jax.methods import common
from pretrain_jax.samplers import ais
from pretrain_jax.samplers import gibbs
from pretrain_jax.train import sharding

NAME = "rbm"
make_mesh = sharding.small_step_mesh  # Millisecond steps: one device on a CPU host.
SUPERVISION = "none (likelihood of pixels, CD / PCD)"
FILTERS_FILE = "filters.png"

# Salakhutdinov & Murray (2008), MNIST, RBM with 500 hidden units: minus the test average
# log-probability in nats, by the number of CD steps used in training.
PUBLISHED_NLL = {25: 86.34}
PUBLISHED_SOURCE = "Salakhutdinov & Murray 2008, Table 2"


class RBM(nnx.Module):
  """The parameters of a binary RBM, in ``samplers.gibbs``' layout.

  Attributes:
    W: nnx.Param float32 [H, V], initialised N(0, 0.01²) (Hinton's guide, Sec. 8).
    b: nnx.Param float32 [H], hidden biases, 0.
    c: nnx.Param float32 [V], visible biases, 0 (the base rate enters through AIS).
  """

  def __init__(self, num_visible: int, num_hidden: int, *, rngs: nnx.Rngs):
    if num_visible < 1 or num_hidden < 1:
      raise ValueError(f"an RBM needs >= 1 visible and hidden units, got {num_visible}, {num_hidden}.")
    self.W = nnx.Param(0.01 * jax.random.normal(rngs.params(), (num_hidden, num_visible)))
    self.b = nnx.Param(jnp.zeros((num_hidden,)))
    self.c = nnx.Param(jnp.zeros((num_visible,)))

  def params(self) -> dict[str, jax.Array]:
    """``{"W": [H, V], "b": [H], "c": [V]}``, the dict the samplers take."""
    return {"W": self.W[...], "b": self.b[...], "c": self.c[...]}


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.rbm.cd_steps < 1:
    raise ValueError(f"rbm.cd_steps must be >= 1, got {config.rbm.cd_steps}.")
  if config.rbm.optimizer not in ("adamw", "sgd"):
    raise ValueError(f"rbm.optimizer must be adamw or sgd, got {config.rbm.optimizer!r}.")


def make_model(config: ml_collections.ConfigDict, info: DatasetInfo, *, rngs: nnx.Rngs) -> RBM:
  """``RBM(V = H·W·C pixels, config.model.num_hidden)``.

  Raises:
    ValueError: cd_steps < 1, an unknown optimizer or a size < 1.
  """
  _check_config(config)
  return RBM(math.prod(info.image_shape), config.model.num_hidden, rngs=rngs)


def load_info(config: ml_collections.ConfigDict, workdir: Any = None) -> DatasetInfo:
  """The dataset's ``DatasetInfo`` (an RBM reloads without its data)."""
  del workdir
  return datasets.get_info(config.data.name)


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """The loop's AdamW schedule, or SGD with momentum and L2 weight cost (Hinton's guide,
  Secs. 9-10: cosine-decayed ``optim.learning_rate``, momentum ``rbm.momentum``, L2
  weight cost ``optim.weight_decay`` on every parameter)."""
  if config.rbm.optimizer == "sgd":
    schedule = optax.cosine_decay_schedule(config.optim.learning_rate, max(num_steps, 1),
                                           alpha=0.01)
    return optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                       optax.sgd(schedule, momentum=config.rbm.momentum))
  from pretrain_jax.train.optimizers import make_optimizer as shared  # pylint: disable=g-import-not-at-top
  return shared(config.optim, num_steps)


def init_extra(config: ml_collections.ConfigDict, model: RBM, key: jax.Array) -> dict:
  """PCD's persistent chains: float32 ``[rbm.num_chains, V]`` uniform random bits (PCD), or
  an empty dict (CD-k needs no state between steps)."""
  if not config.rbm.persistent:
    return {}
  num_visible = model.c.shape[0]
  return {"chains": jax.random.bernoulli(key, 0.5, (config.rbm.num_chains, num_visible)
                                         ).astype(jnp.float32)}


def make_train_step(run: Any):
  """One CD-k or PCD-k update of the RBM, through the run's optimiser.

  The data batch is binarized afresh with the step's key (``fold_in(rng, step)``), the
  update direction comes from ``samplers.gibbs.persistent_contrastive_divergence``, its
  chains started at the data (CD-k, the same as ``contrastive_divergence``) or at the
  persistent chains of ``state.extra`` (PCD, which it advances), and the optimiser
  descends minus it.

  Returns:
    ``train_step(state, batch) -> (state, metrics)``; metrics ``loss`` = mean free energy
    of the data minus that of the negative samples (nats; its gradient is minus the CD
    direction), ``reconstruction_error`` (mean squared error per pixel of one Gibbs step,
    the guide's monitor) and ``grad_norm``.
  """
  config, optimizer = run.config, run.optimizer
  k, persistent = config.rbm.cd_steps, config.rbm.persistent

  def train_step(state, batch):
    key = jax.random.fold_in(state.rng, state.step)
    binarize_key, gibbs_key = jax.random.split(key)
    v = binarized_mnist.dynamic_binarize(binarize_key, batch["image"])
    v = v.reshape(v.shape[0], -1)
    model = nnx.merge(run.graphdef, state.params, state.model_state, copy=True)
    params = model.params()
    # CD-k is PCD-k with the chains started at the data (the same k block-Gibbs steps).
    start = state.extra["chains"] if persistent else v
    direction, negative = gibbs.persistent_contrastive_divergence(gibbs_key, params, v, start, k)
    extra = dict(state.extra, chains=negative) if persistent else state.extra
    grads = jax.tree.map(lambda x: x, state.params)
    nnx.replace_by_pure_dict(grads, jax.tree.map(jnp.negative, direction))
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    free_energy_data = gibbs.rbm_free_energy(params, v).mean()
    metrics = {"loss": free_energy_data - gibbs.rbm_free_energy(params, negative).mean(),
               "free_energy_data": free_energy_data, "grad_norm": optax.tree.norm(grads),
               "reconstruction_error": jnp.mean(jnp.square(
                   gibbs.rbm_visible_probs(params, gibbs.rbm_hidden_probs(params, v)) - v))}
    return state.replace(step=state.step + 1, params=new_params, opt_state=opt_state,
                         extra=extra), metrics

  return train_step


def _hidden_probs(model: RBM, batch: dict) -> jax.Array:
  pixels = batch["image"].reshape(batch["image"].shape[0], -1).astype(jnp.float32)
  return gibbs.rbm_hidden_probs(model.params(), pixels)


def _free_energy(model: RBM, batch: dict) -> dict[str, jax.Array]:
  pixels = batch["image"].reshape(batch["image"].shape[0], -1).astype(jnp.float32)
  return {"free_energy": gibbs.rbm_free_energy(model.params(), pixels)}


def gibbs_samples(params: dict, key: jax.Array, num_samples: int, num_steps: int,
                  init_probs: np.ndarray | None = None) -> np.ndarray:
  """Visible probabilities after ``num_steps`` block-Gibbs steps from random bits.

  Args:
    params: RBM params dict.
    key: PRNG key.
    num_samples: chains N.
    num_steps: Gibbs sweeps per chain (thousands to mix).
    init_probs: float ``[V]`` probability of each starting bit (the training pixels'
      means: chains then start near the data's marginals, not in uniform noise, where
      a trained RBM's chains linger); None for 0.5.

  Returns:
    float32 ``[N, V]``: p(v = 1 | h) at the last step (the mean image, less noisy to look
    at than the binary sample).
  """
  init_key, run_key = jax.random.split(key)
  shape = (num_samples, params["c"].shape[0])
  probs = jnp.broadcast_to(0.5 if init_probs is None else jnp.asarray(init_probs, jnp.float32), shape)
  v = jax.random.bernoulli(init_key, probs, shape).astype(jnp.float32)

  @jax.jit
  def run(params, v, key):
    def body(v, step_key):
      return gibbs.rbm_block_gibbs_step(step_key, params, v), None
    v, _ = jax.lax.scan(body, v, jax.random.split(key, num_steps - 1))
    hidden = jax.random.bernoulli(key, gibbs.rbm_hidden_probs(params, v)).astype(jnp.float32)
    return gibbs.rbm_visible_probs(params, hidden)

  return np.asarray(run(params, v, run_key))


def evaluate(trained: Any, data: dict[str, dict[str, np.ndarray]],
             config: ml_collections.ConfigDict, workdir: Any = None) -> dict[str, Any]:
  """AIS test NLL, the probe on p(h|v), samples and filters.

  Returns:
    ``log_z``, ``log_z_std_error`` (AIS), ``val_nll``, ``test_nll`` (mean F(v) + ln Z,
    nats per image), ``test_nll_std_error`` (the AIS error and the images' spread,
    combined), ``likelihood``, ``published_nll`` / ``published_source`` (for a 500-unit
    RBM at a published number of CD steps), and the probe's keys.
  """
  model = trained.model()
  params = {name: np.asarray(value) for name, value in model.params().items()}
  train_bits = binarized_mnist.fixed_binarization(data["train"]["image"]) > 0
  base = ais.base_rate_visible_bias(train_bits.reshape(len(train_bits), -1).astype(np.float32))
  estimate = ais.ais_log_partition(jax.random.PRNGKey(config.seed), params,
                                   num_chains=config.eval.ais_chains,
                                   num_betas=config.eval.ais_betas, base_visible_bias=base)
  results: dict[str, Any] = {
      "likelihood": f"AIS ({config.eval.ais_chains} runs × {config.eval.ais_betas} β)",
      "log_z": float(estimate.log_z), "log_z_std_error": float(estimate.log_z_std_error),
      "ais_effective_sample_size": float(estimate.effective_sample_size)}
  for split in ("val", "test"):
    limit = config.eval.test_limit
    arrays = {key: value[:limit] if limit else value for key, value in data[split].items()}
    binary = {"image": (arrays["image"] > 0).astype(np.float32)}
    free_energy = np.asarray(trained.map(_free_energy, binary, batch_size=config.eval.batch_size)
                             ["free_energy"], np.float64)
    results[f"{split}_nll"] = float(free_energy.mean() + estimate.log_z)
    spread = free_energy.std(ddof=1) / math.sqrt(len(free_energy)) if len(free_energy) > 1 else 0.0
    results[f"{split}_nll_std_error"] = float(math.hypot(spread, estimate.log_z_std_error))
  paper = PUBLISHED_NLL.get(config.rbm.cd_steps) if (
      config.model.num_hidden == 500 and not config.rbm.persistent) else None
  results.update(published_nll=paper, published_source=PUBLISHED_SOURCE if paper else None)

  def features_fn(images: np.ndarray) -> np.ndarray:
    binary = (binarized_mnist.fixed_binarization(images) > 0).astype(np.float32)
    return trained.map(_hidden_probs, {"image": binary}, batch_size=config.eval.batch_size)

  results.update(common.evaluate_features(features_fn, data, config))
  if workdir is not None:
    samples = gibbs_samples(params, jax.random.PRNGKey(config.seed + 1), 100,
                            config.eval.gibbs_steps, init_probs=jax.nn.sigmoid(base))
    generative.save_image_grid(samples.reshape(-1, 28, 28), workdir / generative.SAMPLES_FILE,
                               title=f"RBM: p(v|h) after {config.eval.gibbs_steps} Gibbs steps",
                               num_columns=10)
    filters = params["W"][:100]
    scale = np.abs(filters).max(axis=1, keepdims=True) + 1e-12
    generative.save_image_grid((0.5 + 0.5 * filters / scale).reshape(-1, 28, 28),
                               workdir / FILTERS_FILE, title="RBM filters W_j (grey = 0)",
                               num_columns=10)
  return results

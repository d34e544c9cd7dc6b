"""Binarized MNIST and the VAE family: binarization statistics and pinned bits, the IWAE bound
against numerical integration, a smoke run against the independent-pixel Bernoulli model,
the bound tightening with k on the trained model, and resume after an interruption."""

import hashlib
import math

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from pretrain_jax.data import binarized_mnist, datasets
from pretrain_jax.methods import vae
from pretrain_jax.nn.vae import VAE
from pretrain_jax.objectives import elbo as elbo_lib
from pretrain_jax.train import loop

from test_train import assert_resume_is_exact, smoke_config

pytestmark = pytest.mark.xdist_group("vae")  # One worker trains the shared smoke run once.


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("vae") / "run"
  return workdir, loop.train_and_evaluate(smoke_config("vae"), workdir, progress=False)


def test_dynamic_binarization_draws_bernoulli_pixels():
  levels = np.array([0, 1, 64, 128, 200, 254, 255], np.uint8)
  images = np.broadcast_to(levels, (20_000, levels.size))
  draws = np.asarray(binarized_mnist.dynamic_binarize(jax.random.PRNGKey(0), jnp.asarray(images)))
  assert set(np.unique(draws)) <= {0.0, 1.0}
  p = levels / 255.0
  bound = 5 * np.sqrt(p * (1 - p) / len(images)) + 1e-12  # 5 binomial standard errors.
  assert np.all(np.abs(draws.mean(0) - p) <= bound)
  assert draws[:, 0].max() == 0 and draws[:, -1].min() == 1  # 0 and 255 never flip.
  fixed = binarized_mnist.fixed_binarization(np.ascontiguousarray(images))
  assert set(np.unique(fixed)) <= {0, 255}
  assert np.all(np.abs((fixed > 0).mean(0) - p) <= bound)
  np.testing.assert_array_equal(binarized_mnist.fixed_binarization(fixed), fixed)  # Idempotent.
  with pytest.raises(ValueError, match="uint8"):
    binarized_mnist.fixed_binarization(images.astype(np.float32))


def test_binarized_splits_are_the_protocol_and_the_same_on_every_machine(monkeypatch):
  splits = binarized_mnist.load_splits(seed=0)
  assert {k: len(v["image"]) for k, v in splits.items()} == {"train": 50_000, "val": 10_000,
                                                              "test": 10_000}
  # The reference bits of record: every machine must score these test images.
  digest = hashlib.sha256(splits["test"]["image"].tobytes()).hexdigest()
  assert digest == "85cd61edfd6fcb5f18540f63ca01d7a0940cfba5fe818ff9ac8c6c6d74cf869f"
  for split in ("val", "test"):
    assert set(np.unique(splits[split]["image"])) == {0, 255}
  assert len(np.unique(splits["train"]["image"])) > 2  # Train keeps its grey levels.
  grey, _ = datasets.load("mnist", "train")
  train_idx, val_idx = datasets.train_val_split(60_000, 10_000, 0)
  np.testing.assert_array_equal(splits["train"]["image"], grey[train_idx])
  assert not set(train_idx) & set(val_idx)
  monkeypatch.setitem(binarized_mnist.BINARIZED_SHA256, "test", "0" * 64)
  with pytest.raises(binarized_mnist.BinarizationMismatchError, match="pinned"):
    binarized_mnist.load_splits(seed=0)
  with pytest.raises(ValueError, match="binarized_mnist.load_splits"):
    datasets.load("binarized_mnist", "train")


def _log_marginal_by_quadrature(model, x):
  """ln ∫ p(x|z) N(z; 0, 1) dz for a 1-D latent, on a fine grid (trapezoid rule)."""
  z = np.linspace(-12.0, 12.0, 24_001)
  logits = np.asarray(model.decode(jnp.asarray(z[:, None], jnp.float32)), np.float64)
  log_px = np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), axis=-1)
  log_integrand = log_px - 0.5 * z**2 - 0.5 * math.log(2 * math.pi)
  return special.logsumexp(log_integrand) + math.log(z[1] - z[0])


def test_iwae_bound_approaches_the_exact_marginal_from_below():
  model = VAE(input_dim=5, hidden_dims=(8,), latent_dim=1, rngs=nnx.Rngs(1))
  x = np.array([1, 0, 1, 1, 0], np.float32)
  exact = _log_marginal_by_quadrature(model, x)

  def bound(k):
    log_w = model.log_weights(jax.random.PRNGKey(k), jnp.asarray(x[None]), k)
    return float(elbo_lib.iwae_bound(log_w)[0]), float(log_w.mean())

  # An encoder q(z|x) narrower than the posterior: the bound climbs slowly but stays below.
  (l_100k, elbo), (l_100, _) = bound(100_000), bound(100)
  assert elbo < l_100 < l_100k <= exact + 2e-3 and exact - l_100k < 0.05
  # With q = the prior (encoder output zeroed), w = ln p(x|z) is bounded and L_k converges
  # fast: the importance sampler is then plain Monte Carlo of ∫ p(x|z) p(z) dz.
  last = model.encoder.layers[-1]
  last.kernel[...] = jnp.zeros_like(last.kernel[...])
  last.bias[...] = jnp.zeros_like(last.bias[...])
  l_100k, elbo = bound(100_000)
  assert l_100k == pytest.approx(exact, abs=2e-3)
  assert elbo < exact - 0.05  # The ELBO's gap, KL(q ‖ posterior), is then large.


def independent_pixels_nll(config) -> float:
  """Test NLL (nats per image) of independent Bernoulli pixels fitted, with add-one
  smoothing, on the same train images as a run of ``config``: the baseline every
  likelihood model must beat."""
  splits = binarized_mnist.load_splits(seed=config.seed, val_size=config.data.val_size,
                                       train_limit=config.data.train_limit)
  train = binarized_mnist.fixed_binarization(splits["train"]["image"]) > 0
  p = (train.sum(0) + 1.0) / (len(train) + 2.0)
  test = splits["test"]["image"][:config.eval.test_limit] > 0
  return float(-np.mean(np.sum(np.where(test, np.log(p), np.log1p(-p)), axis=(1, 2, 3))))


def test_smoke_run_beats_independent_pixels(smoke_run):
  workdir, results = smoke_run
  baseline = independent_pixels_nll(smoke_config("vae"))
  assert 190 < baseline < 230  # The known ≈ 206 nats of pixel marginals on MNIST.
  assert results["test_nll"] < baseline - 25
  assert results["test_nll"] <= results["test_elbo_nll"]  # L_k ≥ ELBO (Burda et al., Thm. 1).
  assert results["linear_probe_test_accuracy"] > 0.6
  assert results["likelihood"] == "IWAE bound, k=100" and results["published_nll"] == 86.76
  # The slides' takeaway on the trained encoder: REINFORCE's one-sample gradient varies far
  # more than the pathwise one (ratios of 10^2 to 10^4 are typical on MNIST VAEs).
  assert results["gradient_variance_median_ratio"] > 10
  assert results["gradient_variance_score_function"] > 10 * results["gradient_variance_reparameterization"]
  assert (workdir / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_iwae_bound_tightens_with_k_on_the_trained_model(smoke_run):
  workdir, _ = smoke_run
  config = smoke_config("vae")
  trained = loop.restore_trained(workdir)
  test = binarized_mnist.load_splits(seed=0, val_size=config.data.val_size,
                                     train_limit=config.data.train_limit)["test"]
  test = {key: value[:100] for key, value in test.items()}
  nll = {k: vae.importance_weighted_nll(trained, test, k, config)["nll"] for k in (1, 10, 100)}
  assert nll[1] > nll[10] > nll[100]
  assert nll[1] - nll[100] > 1.0  # Not a vacuous ordering: the bound moves by nats.


def test_interrupted_run_resumes_to_identical_numbers(tmp_path, monkeypatch):
  overrides = dict(train__num_steps=60, eval__test_limit=100, data__val_size=200)
  assert_resume_is_exact(lambda: smoke_config("vae", **overrides), tmp_path, monkeypatch, 45,
                         ("final_loss", "val_nll", "test_nll", "linear_probe_test_accuracy"))


def test_conditional_vae_uses_the_label_and_bad_settings_are_refused():
  model = VAE(input_dim=6, hidden_dims=(8,), latent_dim=2, num_classes=3, rngs=nnx.Rngs(0))
  z = jnp.zeros((3, 2))
  logits = np.asarray(model.decode(z, jnp.arange(3)))
  assert not np.allclose(logits[0], logits[1])  # Same z, different class, different image.
  with pytest.raises(ValueError, match="needs labels"):
    model.decode(z)
  plain = VAE(input_dim=6, hidden_dims=(8,), latent_dim=2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="unconditional"):
    plain.encode(jnp.zeros((1, 6)), jnp.zeros((1,), jnp.int32))
  config = smoke_config("cvae")
  batch = {"image": jnp.full((4, 28, 28, 1), 255, jnp.uint8), "label": jnp.arange(4)}
  big = vae.make_model(config, datasets.get_info("binarized_mnist"), rngs=nnx.Rngs(0))
  loss, metrics = vae.loss_fn(big, batch, jax.random.PRNGKey(0), config)
  assert np.isfinite(float(loss)) and float(metrics["kl"]) >= 0
  iwae_config = smoke_config("iwae")
  loss, metrics = vae.loss_fn(vae.make_model(iwae_config, datasets.get_info("binarized_mnist"),
                                             rngs=nnx.Rngs(0)),
                              batch, jax.random.PRNGKey(0), iwae_config)
  assert float(-loss) >= float(metrics["elbo"]) - 1e-3  # L_5 ≥ the mean of its log-weights.
  with pytest.raises(ValueError, match="vae.objective"):
    vae.make_model(smoke_config("vae", vae__objective="wake_sleep"),
                   datasets.get_info("binarized_mnist"), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="multiple of"):
    vae.importance_weighted_fn(100, 30, 0)

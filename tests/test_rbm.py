"""The RBM on the spine: its step is exactly the slides' CD-k / PCD update, a smoke run beats
independent pixels under AIS, and a PCD run (persistent chains in TrainState.extra) resumes
to identical numbers."""

import numpy as np
import optax
import pytest
import jax
import jax.numpy as jnp

from pretrain_jax.data import binarized_mnist, datasets
from pretrain_jax.methods import rbm
from pretrain_jax.samplers import gibbs
from pretrain_jax.train import loop, sharding

from test_train import assert_resume_is_exact, smoke_config
from test_vae import independent_pixels_nll

pytestmark = pytest.mark.xdist_group("rbm")


def _plain_sgd(config, num_steps):
  del config, num_steps
  return optax.sgd(1.0)  # params += CD direction exactly (learning rate 1, no momentum).


@pytest.mark.parametrize("persistent", [False, True])
def test_step_adds_the_cd_direction_of_the_samplers(persistent, monkeypatch):
  monkeypatch.setattr(rbm, "make_optimizer", _plain_sgd)
  config = smoke_config("rbm_pcd" if persistent else "rbm", model__num_hidden=16,
                        train__batch_size=8)
  config.rbm.cd_steps = 2 if not persistent else 1
  run = loop.Pretrainer(config)
  state = run.init_state()
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
           "label": rng.integers(0, 10, 8).astype(np.int32)}
  step = jax.jit(run.train_step_fn())
  new_state, metrics = step(state, sharding.global_batch(batch, run.mesh))
  # The oracle: the same keys into samplers.gibbs' own CD-k / PCD-k.
  params = {name: np.asarray(state.params[name][...]) for name in ("W", "b", "c")}
  key = jax.random.fold_in(state.rng, state.step)
  binarize_key, gibbs_key = jax.random.split(key)
  v = np.asarray(binarized_mnist.dynamic_binarize(binarize_key, jnp.asarray(batch["image"])))
  v = v.reshape(8, -1)
  if persistent:
    direction, chains = gibbs.persistent_contrastive_divergence(
        gibbs_key, params, v, np.asarray(state.extra["chains"]), config.rbm.cd_steps)
    np.testing.assert_array_equal(np.asarray(new_state.extra["chains"]), np.asarray(chains))
  else:
    direction = gibbs.contrastive_divergence(gibbs_key, params, v, config.rbm.cd_steps)
  for name in ("W", "b", "c"):
    np.testing.assert_allclose(np.asarray(new_state.params[name][...]) - params[name],
                               np.asarray(direction[name]), atol=1e-6)
  assert int(new_state.step) == 1 and np.isfinite(float(metrics["loss"]))


def test_smoke_run_beats_independent_pixels(tmp_path):
  config = smoke_config("rbm")
  results = loop.train_and_evaluate(config, tmp_path / "rbm", progress=False)
  assert results["test_nll"] < independent_pixels_nll(config) - 30  # That is ≈ 206 nats.
  assert results["test_nll_std_error"] >= results["log_z_std_error"] > 0
  assert results["likelihood"].startswith("AIS")
  assert results["linear_probe_test_accuracy"] > 0.7  # p(h|v) features of 100 units.
  for name in ("samples.png", rbm.FILTERS_FILE):
    assert (tmp_path / "rbm" / name).read_bytes()[:4] == b"\x89PNG"


def test_pcd_run_resumes_to_identical_numbers(tmp_path, monkeypatch):
  overrides = dict(train__num_steps=60, train__checkpoint_every=20, eval__test_limit=64,
                   eval__ais_betas=200, eval__ais_chains=8, eval__gibbs_steps=10,
                   eval__probe_train_limit=200, model__num_hidden=32)
  assert_resume_is_exact(lambda: smoke_config("rbm_pcd", **overrides), tmp_path, monkeypatch, 45,
                         ("final_loss", "log_z", "test_nll", "linear_probe_test_accuracy"))


def test_bad_settings_are_refused():
  info = datasets.get_info("binarized_mnist")
  with pytest.raises(ValueError, match="cd_steps"):
    rbm.make_model(smoke_config("rbm", rbm__cd_steps=0), info, rngs=None)
  with pytest.raises(ValueError, match="rbm.optimizer"):
    rbm.make_model(smoke_config("rbm", rbm__optimizer="lbfgs"), info, rngs=None)

"""Test configuration: 4 simulated CPU devices, the fast CPU XLA flags, strict rank promotion.

These settings must be applied before JAX initialises its backends, so they live here,
at import time of the test session. ``platform.configure_cpu`` adds the project's CPU
XLA flags (as every entry point does) unless XLA_FLAGS is already set.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from pretrain_jax.train import platform  # noqa: E402

platform.configure_cpu(num_devices=4)

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Many tests compile the same train steps; the persistent cache lets later tests (and later
# runs) reuse the executables instead of recompiling them.
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(os.path.expanduser("~"), ".cache", "pretrain_jax", "jax_test_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gpt_smoke_run(tmp_path_factory):
  """One GPT smoke run (``configs/gpt.py:smoke``), shared by the GPT and fine-tuning tests
  (both marked ``xdist_group("gpt")`` so that one worker trains it once)."""
  from pretrain_jax.train import loop  # pylint: disable=g-import-not-at-top
  from test_train import smoke_config  # pylint: disable=g-import-not-at-top

  workdir = tmp_path_factory.mktemp("gpt") / "run"
  results = loop.train_and_evaluate(smoke_config("gpt"), workdir, progress=False)
  return workdir, results

"""Test configuration: 4 simulated CPU devices and strict rank promotion.

Both settings must be applied before JAX initialises its backends, so they live here,
at import time of the test session.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")

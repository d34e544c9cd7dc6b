"""pretrain_jax: pretraining representations in JAX/Flax and measuring what they buy.

Subpackages: ``nn`` (Flax NNX modules and pure attention functions), ``objectives``
(pure losses and bounds), ``samplers`` (pure MCMC kernels), ``methods`` (one module per
pretraining method), ``data``, ``train``, ``eval``.
"""

__version__ = "0.1.0"

"""Variational autoencoder networks: a Gaussian encoder q(z|x) and a Bernoulli decoder p(x|z).

The architecture of Burda et al. (2016), Sec. 5 ("one stochastic layer"): x (784) ->
200 -> 200 tanh -> (μ, log σ²) of 50 latents, and 50 -> 200 -> 200 tanh -> 784 Bernoulli
logits; the prior is N(0, I). A conditional VAE (Sohn et al. 2015; the slides' conditional
model) appends the one-hot class to the encoder's input and to the decoder's input.

Shape letters: B batch, S importance samples, D pixels (H·W·C), Z latents, Y classes.

Sources: Kingma & Welling (2014), "Auto-Encoding Variational Bayes", Sec. 3 and Appendix
C.1-C.2 (MLP encoder and Bernoulli decoder); Burda, Grosse & Salakhutdinov (2016),
"Importance Weighted Autoencoders", Sec. 5 and Eq. 8; Sohn, Lee & Yan (2015), "Learning
Structured Output Representation using Deep Conditional Generative Models".
"""

from __future__ import annotations

from typing import Sequence

from flax import nnx
import jax
import jax.numpy as jnp

from pretrain_jax.objectives import elbo as elbo_lib

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "softplus": jax.nn.softplus}


class MLP(nnx.Module):
  """Dense layers with an activation after every layer but the last.

  Args:
    dims: layer widths ``(in, hidden..., out)``, each ≥ 1, at least two entries.
    activation: a key of ``ACTIVATIONS``.
    rngs: ``nnx.Rngs`` for initialisation only.

  Raises:
    ValueError: fewer than two widths, a width < 1 or an unknown activation.
  """

  def __init__(self, dims: Sequence[int], activation: str, *, rngs: nnx.Rngs):
    if len(dims) < 2 or min(dims) < 1:
      raise ValueError(f"MLP needs at least an input and an output width, all >= 1; got {dims}.")
    if activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
    self.activation = activation

  def __call__(self, x: jax.Array) -> jax.Array:
    """float ``[..., dims[0]]`` -> float ``[..., dims[-1]]``."""
    act = ACTIVATIONS[self.activation]
    for layer in self.layers[:-1]:
      x = act(layer(x))
    return self.layers[-1](x)


class VAE(nnx.Module):
  """Gaussian encoder, Bernoulli decoder, standard normal prior.

  Attributes:
    encoder: ``MLP`` (D [+ Y]) -> hidden -> 2Z, read as (μ, log σ²).
    decoder: ``MLP`` (Z [+ Y]) -> reversed hidden -> D logits.
    latent_dim: Z.
    num_classes: Y, 0 for an unconditional VAE.
  """

  def __init__(self, *, input_dim: int, hidden_dims: Sequence[int], latent_dim: int,
               activation: str = "tanh", num_classes: int = 0, rngs: nnx.Rngs):
    """Creates the networks.

    Args:
      input_dim: D, pixels per image.
      hidden_dims: hidden widths of the encoder; the decoder uses them reversed.
      latent_dim: Z ≥ 1.
      activation: hidden activation, a key of ``ACTIVATIONS`` (paper: tanh).
      num_classes: Y > 0 makes a conditional VAE; 0 none.
      rngs: ``nnx.Rngs`` for initialisation only.

    Raises:
      ValueError: a size < 1 (num_classes < 0) or an unknown activation.
    """
    if input_dim < 1 or latent_dim < 1 or num_classes < 0:
      raise ValueError(f"VAE needs input_dim, latent_dim >= 1 and num_classes >= 0; got "
                       f"{input_dim}, {latent_dim}, {num_classes}.")
    hidden = tuple(hidden_dims)
    self.encoder = MLP((input_dim + num_classes, *hidden, 2 * latent_dim), activation, rngs=rngs)
    self.decoder = MLP((latent_dim + num_classes, *hidden[::-1], input_dim), activation,
                       rngs=rngs)
    self.latent_dim = latent_dim
    self.num_classes = num_classes

  def _condition(self, h: jax.Array, labels: jax.Array | None) -> jax.Array:
    if not self.num_classes:
      if labels is not None:
        raise ValueError("labels were given to an unconditional VAE (num_classes=0).")
      return h
    if labels is None:
      raise ValueError(f"a conditional VAE (num_classes={self.num_classes}) needs labels.")
    one_hot = jax.nn.one_hot(labels, self.num_classes, dtype=h.dtype)
    return jnp.concatenate([h, jnp.broadcast_to(one_hot, h.shape[:-1] + one_hot.shape[-1:])], -1)

  def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """q(z|x[, y]) = N(μ, diag σ²).

    Args:
      x: float32 ``[B, D]`` binary pixels.
      labels: int ``[B]`` classes (conditional VAE only).

    Returns:
      ``(mean, log_var)``, float32 ``[B, Z]`` each.
    """
    out = self.encoder(self._condition(x, labels))
    return out[..., :self.latent_dim], out[..., self.latent_dim:]

  def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Logits of p(x_d = 1 | z[, y]): float32 ``[..., Z]`` -> float32 ``[..., D]``.

    ``labels`` (conditional only) broadcast against z's leading axes: int ``[B]`` with z
    ``[B, Z]``, or with z ``[B, S, Z]`` give ``labels[:, None]``.
    """
    return self.decoder(self._condition(z, labels))

  def log_weights(self, key: jax.Array, x: jax.Array, num_samples: int,
                  labels: jax.Array | None = None) -> jax.Array:
    """Importance log-weights w_s = ln p(x | z_s) + ln p(z_s) − ln q(z_s | x), z_s ~ q.

    Reparameterized, so differentiable in every parameter (IWAE training).

    Args:
      key: PRNG key of the S draws.
      x: float32 ``[B, D]`` binary pixels.
      num_samples: S ≥ 1.
      labels: int ``[B]`` (conditional VAE only).

    Returns:
      float32 ``[S, B]`` nats; ``objectives.elbo.iwae_bound`` of them is L_S (Burda et al.
      2016, Eq. 8) and their mean over S an unbiased estimate of the ELBO.
    """
    mean, log_var = self.encode(x, labels)
    epsilon = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
    z = mean[None] + jnp.exp(0.5 * log_var)[None] * epsilon  # [S, B, Z]
    logits = self.decode(z, labels)
    log_px = elbo_lib.bernoulli_log_likelihood(x[None], logits)
    log_pz = elbo_lib.gaussian_log_likelihood(z, 0.0, 0.0)
    log_qz = elbo_lib.gaussian_log_likelihood(z, mean[None], log_var[None])
    return log_px + log_pz - log_qz

"""Coupling flows (NICE and RealNVP) and the 8-bit image helpers that go with them.

A flow is an invertible map f from data x to latents z = f(x) with a tractable Jacobian;
the change of variables gives log p(x) = log p_Z(f(x)) + log |det ∂f/∂x| (Dinh et al.
2017, Sec. 3.1). Every layer here is a masked coupling (RealNVP Sec. 3.4, eq. 9):

  z = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s(b ⊙ x)) + t(b ⊙ x)),   log |det| = Σ_d (1 − b_d) s_d,

with a binary mask b over the D features; s = 0 gives NICE's additive coupling (volume
preserving; Dinh et al. 2015, Sec. 3.2). The Jacobian is triangular up to a permutation,
so its log-determinant is the sum of s over the transformed features (RealNVP Sec. 3.3,
eq. 6), and the inverse needs no inversion of s or t (eq. 7-8).

All log densities are in nats per example (summed over the D features). Shape letters:
B batch, D features (H·W·C for a flattened image), N samples.

Sources:
  Dinh, Krueger, Bengio (2015), "NICE: Non-linear Independent Components Estimation",
    Sec. 3.2 (additive coupling), Sec. 3.3 (diagonal scaling), Sec. 3.4 (priors).
  Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using Real NVP", Sec. 3.1-3.5
    (affine coupling, masks, log-determinant), Sec. 4.1 (dequantisation, logit transform).
  Theis, van den Oord, Bethge (2016), "A note on the evaluation of generative models",
    Sec. 3.1 (continuous densities of dequantised discrete data bound the discrete
    log-likelihood).
"""

from __future__ import annotations

import math
from typing import Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.nn.vae import MLP

PRIORS = ("gaussian", "logistic")


def alternating_mask(dim: int, parity: int = 0) -> np.ndarray:
  """Mask b_d = 1 for d + parity even: NICE's partition into odd and even features.

  Args:
    dim: D ≥ 2.
    parity: 0 or 1; parity 1 gives the complement 1 − b.

  Returns:
    float32 numpy array [D] of 0s and 1s.

  Raises:
    ValueError: if D < 2 or parity is not 0 or 1.
  """
  _check_mask_args(dim, parity)
  return ((np.arange(dim) + parity) % 2 == 0).astype(np.float32)


def half_mask(dim: int, parity: int = 0) -> np.ndarray:
  """Mask with ones on the first ⌊D/2⌋ features (parity 0) or on the rest (parity 1).

  Args:
    dim: D ≥ 2.
    parity: 0 or 1; parity 1 gives the complement 1 − b.

  Returns:
    float32 numpy array [D] of 0s and 1s.

  Raises:
    ValueError: if D < 2 or parity is not 0 or 1.
  """
  _check_mask_args(dim, parity)
  first = (np.arange(dim) < dim // 2).astype(np.float32)
  return first if parity == 0 else 1.0 - first


def checkerboard_mask(height: int, width: int, channels: int = 1,
                      parity: int = 0) -> np.ndarray:
  """RealNVP's spatial checkerboard, b[h, w, c] = 1 for h + w + parity even (Sec. 3.4),
  flattened in row-major [H, W, C] order to match images reshaped to [B, H·W·C].

  Args:
    height: H ≥ 1.
    width: W ≥ 1 (H·W ≥ 2).
    channels: C ≥ 1; every channel of a pixel shares the pixel's bit.
    parity: 0 or 1; parity 1 gives the complement 1 − b.

  Returns:
    float32 numpy array [H·W·C] of 0s and 1s.

  Raises:
    ValueError: if a size is < 1, H·W < 2, or parity is not 0 or 1.
  """
  if min(height, width, channels) < 1:
    raise ValueError(f"checkerboard_mask needs sizes >= 1, got {(height, width, channels)}.")
  _check_mask_args(height * width, parity)
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  board_HxW = ((rows + cols + parity) % 2 == 0).astype(np.float32)
  return np.repeat(board_HxW[:, :, None], channels, axis=2).reshape(-1)


def _check_mask_args(dim, parity):
  if dim < 2:
    raise ValueError(f"a coupling mask needs at least 2 features, got {dim}.")
  if parity not in (0, 1):
    raise ValueError(f"mask parity must be 0 or 1, got {parity!r}.")


def _check_input(name, x, dim):
  if jnp.ndim(x) != 2 or jnp.shape(x)[1] != dim:
    raise ValueError(f"{name}: expected an array [B, {dim}], got shape {jnp.shape(x)}; "
                     "flatten images to [B, H*W*C].")


class CouplingLayer(nnx.Module):
  """One masked coupling layer: affine (RealNVP) or additive (NICE).

  Forward: z = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s) + t), with (s̃, t) = MLP(b ⊙ x) and
  s = scale ⊙ tanh(s̃) (tanh bounds the log-scale and a learned per-feature scale, init 1,
  restores its range: a common stabilisation of RealNVP's affine coupling). additive=True
  sets s = 0 (NICE, Dinh et al. 2015, Sec. 3.2, "additive coupling law"). The features with
  b = 1 pass through unchanged and condition the others.

  Source: Dinh et al. (2017), Sec. 3.2-3.4, eq. 4-9.

  Attributes:
    network: ``vae.MLP`` D -> hidden -> 2D (s̃, t) or D -> hidden -> D (t only, additive).
    log_scale_scale: nnx.Param float32 [D], the learned scale of tanh (affine only).
    mask: tuple of D ints in {0, 1}, b (static, part of the graph definition).
    additive: bool.
  """

  def __init__(self, *, mask: Sequence[float], hidden_dims: Sequence[int] = (64, 64),
               additive: bool = False, activation: str = "relu", rngs: nnx.Rngs):
    """Creates the coupling networks (default Flax initialisation, so the layer is not the
    identity at initialisation).

    Args:
      mask: sequence of D values in {0, 1}, b; both values must occur. See
        ``alternating_mask``, ``half_mask`` and ``checkerboard_mask``.
      hidden_dims: hidden widths of the s/t network, each ≥ 1.
      additive: True for NICE (s = 0, log-determinant 0).
      activation: hidden activation, a key of ``vae.ACTIVATIONS``.
      rngs: ``nnx.Rngs`` for initialisation only.

    Raises:
      ValueError: if the mask is not binary with both 0s and 1s, or a width is < 1.
    """
    mask = np.asarray(mask, np.float32).reshape(-1)
    if not np.all((mask == 0) | (mask == 1)) or mask.min() == mask.max():
      raise ValueError("CouplingLayer: mask must be a [D] array of 0s and 1s containing both "
                       "values; build one with alternating_mask or checkerboard_mask.")
    dim = mask.size
    self.mask = tuple(int(b) for b in mask)
    self.additive = additive
    out_dim = dim if additive else 2 * dim
    self.network = MLP((dim, *hidden_dims, out_dim), activation, rngs=rngs)
    if not additive:
      self.log_scale_scale = nnx.Param(jnp.ones((dim,), jnp.float32))

  @property
  def dim(self) -> int:
    return len(self.mask)

  def _shift_and_log_scale(self, x_masked_BxD):
    """(t, s), float32 [B, D] each, already multiplied by 1 − b (zero where b = 1)."""
    keep_1xD = jnp.asarray(self.mask, x_masked_BxD.dtype)[None, :]
    out = self.network(x_masked_BxD)
    if self.additive:
      return out * (1.0 - keep_1xD), jnp.zeros_like(x_masked_BxD)
    raw_log_scale_BxD, shift_BxD = out[:, :self.dim], out[:, self.dim:]
    log_scale_BxD = self.log_scale_scale[...][None, :] * jnp.tanh(raw_log_scale_BxD)
    return shift_BxD * (1.0 - keep_1xD), log_scale_BxD * (1.0 - keep_1xD)

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z = f(x) and log |det ∂z/∂x|.

    Args:
      x: float32 [B, D].

    Returns:
      (z, log_det): float32 [B, D] and float32 [B] (nats; Σ_d (1 − b_d) s_d, 0 if additive).

    Raises:
      ValueError: if x is not [B, D].
    """
    _check_input("CouplingLayer.forward", x, self.dim)
    keep_1xD = jnp.asarray(self.mask, x.dtype)[None, :]
    shift_BxD, log_scale_BxD = self._shift_and_log_scale(x * keep_1xD)
    z_BxD = x * jnp.exp(log_scale_BxD) + shift_BxD  # identity where b = 1
    return z_BxD, jnp.sum(log_scale_BxD, axis=-1)

  def inverse(self, z: jax.Array) -> jax.Array:
    """x = f⁻¹(z) = b ⊙ z + (1 − b) ⊙ (z − t(b ⊙ z)) ⊙ exp(−s(b ⊙ z)) (RealNVP eq. 8).

    Args:
      z: float32 [B, D].

    Returns:
      float32 [B, D].

    Raises:
      ValueError: if z is not [B, D].
    """
    _check_input("CouplingLayer.inverse", z, self.dim)
    keep_1xD = jnp.asarray(self.mask, z.dtype)[None, :]
    shift_BxD, log_scale_BxD = self._shift_and_log_scale(z * keep_1xD)
    return (z - shift_BxD) * jnp.exp(-log_scale_BxD)


class Flow(nnx.Module):
  """A stack of coupling layers with alternating masks b, 1 − b, b, ... and a fixed prior.

  When additive, NICE's diagonal scaling z = exp(log_scale) ⊙ h follows the couplings
  (Dinh et al. 2015, Sec. 3.3; log-determinant Σ_d log_scale_d), since additive couplings
  alone preserve volume. The prior p_Z is factorised: standard Gaussian, or the standard
  logistic p(z_d) = σ(z_d) σ(−z_d) NICE used (Sec. 3.4).

  log p(x) = log p_Z(f(x)) + Σ_layers log |det J_layer|   (RealNVP Sec. 3.1).

  Attributes:
    layers: nnx.List of ``CouplingLayer``.
    log_scale: nnx.Param float32 [D], NICE's diagonal scaling (additive flows only, init 0).
    prior: "gaussian" or "logistic".
    dim: D.
  """

  def __init__(self, *, dim: int, num_layers: int = 4, hidden_dims: Sequence[int] = (64, 64),
               mask: Sequence[float] | None = None, additive: bool = False,
               prior: str = "gaussian", activation: str = "relu", rngs: nnx.Rngs):
    """Creates the layers.

    Args:
      dim: D ≥ 2.
      num_layers: number of couplings ≥ 1 (at least 2 so that every feature is transformed;
        NICE used 4, RealNVP 3 per scale with alternating checkerboards).
      hidden_dims: hidden widths of each coupling's network.
      mask: [D] binary mask of the first layer (default ``alternating_mask(dim)``); layer l
        uses it for even l and its complement for odd l.
      additive: True for NICE (additive couplings + diagonal scaling), False for RealNVP.
      prior: "gaussian" or "logistic".
      activation: hidden activation of the coupling networks.
      rngs: ``nnx.Rngs`` for initialisation only.

    Raises:
      ValueError: if D < 2, num_layers < 1, the prior is unknown, or the mask is not a
        binary [D] array with both values.
    """
    if prior not in PRIORS:
      raise ValueError(f"Flow: prior must be one of {PRIORS}, got {prior!r}.")
    if dim < 2 or num_layers < 1:
      raise ValueError(f"Flow needs dim >= 2 and num_layers >= 1, got {dim}, {num_layers}.")
    mask = alternating_mask(dim) if mask is None else np.asarray(mask, np.float32).reshape(-1)
    if mask.size != dim:
      raise ValueError(f"Flow: mask has {mask.size} entries but dim is {dim}; pass a [dim] mask.")
    self.layers = nnx.List([
        CouplingLayer(mask=mask if l % 2 == 0 else 1.0 - mask, hidden_dims=hidden_dims,
                      additive=additive, activation=activation, rngs=rngs)
        for l in range(num_layers)])
    if additive:
      self.log_scale = nnx.Param(jnp.zeros((dim,), jnp.float32))
    self.additive = additive
    self.prior = prior
    self.dim = dim

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z = f(x) through every layer (and NICE's scaling), with the total log-determinant.

    Args:
      x: float32 [B, D].

    Returns:
      (z, log_det): float32 [B, D] and float32 [B] nats.

    Raises:
      ValueError: if x is not [B, D].
    """
    _check_input("Flow.forward", x, self.dim)
    log_det_B = jnp.zeros(x.shape[:1], x.dtype)
    for layer in self.layers:
      x, layer_log_det_B = layer.forward(x)
      log_det_B = log_det_B + layer_log_det_B
    if self.additive:
      x = x * jnp.exp(self.log_scale[...])[None, :]
      log_det_B = log_det_B + jnp.sum(self.log_scale[...])
    return x, log_det_B

  def inverse(self, z: jax.Array) -> jax.Array:
    """x = f⁻¹(z), the layers inverted in reverse order.

    Args:
      z: float32 [B, D].

    Returns:
      float32 [B, D].

    Raises:
      ValueError: if z is not [B, D].
    """
    _check_input("Flow.inverse", z, self.dim)
    if self.additive:
      z = z * jnp.exp(-self.log_scale[...])[None, :]
    for layer in reversed(self.layers):
      z = layer.inverse(z)
    return z

  def prior_log_prob(self, z: jax.Array) -> jax.Array:
    """log p_Z(z) summed over features: float32 [B, D] -> float32 [B] nats.

    Gaussian: −½ Σ (z² + log 2π). Logistic: −Σ (softplus(z) + softplus(−z)) (NICE Sec. 3.4).
    """
    if self.prior == "gaussian":
      return -0.5 * jnp.sum(z**2 + math.log(2 * math.pi), axis=-1)
    return -jnp.sum(jax.nn.softplus(z) + jax.nn.softplus(-z), axis=-1)

  def log_prob(self, x: jax.Array) -> jax.Array:
    """log p(x) = log p_Z(f(x)) + log |det ∂f/∂x| (change of variables, RealNVP Sec. 3.1).

    Args:
      x: float32 [B, D].

    Returns:
      float32 [B], log density in nats per example.

    Raises:
      ValueError: if x is not [B, D].
    """
    z_BxD, log_det_B = self.forward(x)
    return self.prior_log_prob(z_BxD) + log_det_B

  def sample(self, key: jax.Array, num_samples: int) -> jax.Array:
    """Draws x = f⁻¹(z), z ~ p_Z: z is ``jax.random.normal(key, (N, D))`` for the Gaussian
    prior and ``jax.random.logistic(key, (N, D))`` for the logistic one.

    Args:
      key: PRNG key.
      num_samples: N ≥ 1 (static).

    Returns:
      float32 [N, D].

    Raises:
      ValueError: if num_samples < 1.
    """
    if num_samples < 1:
      raise ValueError(f"Flow.sample: num_samples must be >= 1, got {num_samples}.")
    shape = (num_samples, self.dim)
    if self.prior == "gaussian":
      z_NxD = jax.random.normal(key, shape, jnp.float32)
    else:
      z_NxD = jax.random.logistic(key, shape, jnp.float32)
    return self.inverse(z_NxD)


def dequantize(key: jax.Array, x_uint8: jax.Array, num_bins: int = 256) -> jax.Array:
  """Uniform dequantisation y = (x + u) / 256, u ~ U[0, 1)^D, so y ∈ [0, 1)^D.

  Pixel value x ∈ {0, ..., 255} maps to the bin [x/256, (x + 1)/256); floor(256 y) = x.
  Train and evaluate a continuous density on y; report ``bits_per_dim`` (RealNVP Sec. 4.1;
  Theis et al. 2016, Sec. 3.1).

  Args:
    key: PRNG key.
    x_uint8: integer array [...] (uint8 or any int) with values in [0, num_bins).
    num_bins: number of levels, 256 for 8-bit data.

  Returns:
    float32 [...], in [0, 1).

  Raises:
    ValueError: if x is not an integer array.
  """
  x_uint8 = jnp.asarray(x_uint8)
  if not jnp.issubdtype(x_uint8.dtype, jnp.integer):
    raise ValueError(f"dequantize: x must hold integer pixel values, got {x_uint8.dtype}; "
                     "pass the raw uint8 image, not a rescaled float one.")
  noise = jax.random.uniform(key, x_uint8.shape, jnp.float32)
  y = (x_uint8.astype(jnp.float32) + noise) / num_bins
  # Rounding can give (255 + u)/256 == 1.0 in float32: keep y inside [0, 1).
  return jnp.minimum(y, jnp.float32(1.0 - 2.0**-24))


def bits_per_dim(nll_nats: jax.Array, num_dims: int, num_bins: int = 256) -> jax.Array:
  """Bits per dimension of 8-bit data from the NLL of its dequantised version on [0, 1)^D.

  bpd = (nll + D log 256) / (D log 2),   with nll = −log p(y) in nats for y = (x + u)/256.

  Reported quantity: an upper bound on the discrete NLL −log₂ P(x) / D of the 8-bit data.
  With the model's discrete distribution P(x) = ∫_bin(x) p(y) dy, Jensen gives
  −log P(x) ≤ E_u[−log p((x + u)/256)] + D log 256 (Theis et al. 2016, Sec. 3.1), the
  + D log 256 being the change of variables from [0, 256)^D, where bins have unit volume,
  to [0, 1)^D, where they have volume 256^−D. So a uniform density on [0, 1)^D (nll = 0)
  gives exactly 8 bits/dim. If the model was fitted to logit(α + (1 − 2α) y) instead,
  include the log-determinant of ``logit_transform`` in nll first (RealNVP Sec. 4.1).

  Args:
    nll_nats: float array [...], −log p(y) in nats per example, summed over the D dims
      (one dequantisation sample is an unbiased estimate of E_u[·]).
    num_dims: D, dimensions per example (H·W·C).
    num_bins: levels per dimension, 256 for 8-bit data.

  Returns:
    float32 (or wider) array [...], bits/dim.

  Raises:
    ValueError: if num_dims < 1 or num_bins < 2.
  """
  if num_dims < 1 or num_bins < 2:
    raise ValueError(f"bits_per_dim needs num_dims >= 1 and num_bins >= 2, got {num_dims}, "
                     f"{num_bins}.")
  nll_nats = jnp.asarray(nll_nats)
  nll_nats = nll_nats.astype(jnp.promote_types(nll_nats.dtype, jnp.float32))
  return (nll_nats + num_dims * math.log(num_bins)) / (num_dims * math.log(2.0))


def logit_transform(y: jax.Array, alpha: float = 0.05) -> tuple[jax.Array, jax.Array]:
  """RealNVP's preprocessing v = logit(α + (1 − 2α) y) and its log-determinant.

  Maps [0, 1)^D to R^D while keeping away from 0 and 1 (Dinh et al. 2017, Sec. 4.1; the
  paper prints α + (1 − α) y, the symmetric form here is the usual implementation). With
  p = α + (1 − 2α) y = σ(v):  log |dv/dy| = Σ_d [log(1 − 2α) − log p_d − log(1 − p_d)], so
  log p_Y(y) = log p_V(v) + log_det.

  Args:
    y: float32 [B, D] in [0, 1) (e.g. from ``dequantize``).
    alpha: α in (0, ½).

  Returns:
    (v, log_det): float32 [B, D] and float32 [B] nats.

  Raises:
    ValueError: if alpha is not in (0, ½).
  """
  if not 0.0 < alpha < 0.5:
    raise ValueError(f"logit_transform: alpha must be in (0, 0.5), got {alpha}.")
  p = alpha + (1.0 - 2.0 * alpha) * jnp.asarray(y, jnp.float32)
  v = jnp.log(p) - jnp.log1p(-p)
  log_det = jnp.sum(math.log(1.0 - 2.0 * alpha) - jnp.log(p) - jnp.log1p(-p), axis=-1)
  return v, log_det


def inverse_logit_transform(v: jax.Array, alpha: float = 0.05) -> jax.Array:
  """y = (σ(v) − α) / (1 − 2α), the inverse of ``logit_transform``: float32 [B, D] -> [B, D].

  Raises:
    ValueError: if alpha is not in (0, ½).
  """
  if not 0.0 < alpha < 0.5:
    raise ValueError(f"inverse_logit_transform: alpha must be in (0, 0.5), got {alpha}.")
  return (jax.nn.sigmoid(v) - alpha) / (1.0 - 2.0 * alpha)

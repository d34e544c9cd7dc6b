"""Sparse coding: the L1-penalised reconstruction energy, ISTA / FISTA inference, dictionary
learning, and the tied-weight one-step ISTA autoencoder.

Per example, with a dictionary D whose K columns are atoms d_k ∈ R^D (unit norm):

  E(z) = ½ ‖x − D z‖² + λ ‖z‖₁.

No 1/D factor: scikit-learn's ``Lasso`` minimises (1/(2n)) ‖y − X w‖² + α ‖w‖₁ over its n
samples; with X = D (the n = D coordinates of x as samples, the atoms as features) and
y = x, E = D · that objective at α = λ / D, so both have the same minimiser.
E is in squared data units (not nats): it is a negative log joint up to constants only for
x | z ~ N(D z, I) and a Laplace prior on z with rate λ (Olshausen & Field 1996).

ISTA iterates the proximal-gradient step z ← S_{ηλ}(z − η Dᵀ(D z − x)) with step η = 1/L,
L = λ_max(DᵀD) the Lipschitz constant of the gradient of the quadratic term (Beck & Teboulle
write ‖A x − b‖² without the ½, so their L is 2 λ_max(AᵀA)); E decreases monotonically and
E(z_k) − E* = O(1/k) (Beck & Teboulle 2009, Sec. 2-3, Theorem 3.1; Daubechies, Defrise &
De Mol 2004). FISTA adds Nesterov momentum for O(1/k²) (Beck & Teboulle 2009, Sec. 4).

Shape letters: B batch, D data dim, K atoms (codes).

Sources:
  Olshausen & Field (1996), "Emergence of simple-cell receptive field properties by learning
    a sparse code for natural images", Nature 381 (energy, dictionary learning).
  Daubechies, Defrise, De Mol (2004), "An iterative thresholding algorithm for linear inverse
    problems with a sparsity constraint", CPAM 57.
  Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm for linear
    inverse problems", SIAM J. Imaging Sci.: eq. 1.4-1.5 (ISTA, shrinkage), Sec. 4 (FISTA).
  Gregor & LeCun (2010), "Learning fast approximations of sparse coding" (LISTA: the
    encoder z = h_θ(W_e x), W_e = η Dᵀ, θ = ηλ, one ISTA step from zero).
"""

from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

# Atom norms are clipped below at this value before renormalising.
_NORM_EPS = 1e-12


def _at_least_float32(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_inputs(name, x, dictionary, codes=None):
  x, dictionary = _at_least_float32(x), _at_least_float32(dictionary)
  if x.ndim != 2 or dictionary.ndim != 2 or x.shape[1] != dictionary.shape[0]:
    raise ValueError(f"{name}: expected x [B, D] and dictionary [D, K] (atoms as columns); "
                     f"got {x.shape} and {dictionary.shape}.")
  if codes is None:
    return x, dictionary
  codes = _at_least_float32(codes)
  if codes.shape != (x.shape[0], dictionary.shape[1]):
    raise ValueError(f"{name}: codes must be [B, K] = {(x.shape[0], dictionary.shape[1])}, "
                     f"got {codes.shape}.")
  return x, dictionary, codes


def _check_positive(name, **scalars):
  for key, value in scalars.items():
    if isinstance(value, (int, float)) and value < 0:
      raise ValueError(f"{name}: {key} must be >= 0, got {value}.")


def soft_threshold(v: jax.Array, threshold: jax.Array) -> jax.Array:
  """S_θ(v) = sign(v) max(|v| − θ, 0), elementwise.

  The proximal operator of θ‖·‖₁: S_θ(v) = argmin_u ½ (u − v)² + θ |u| (Beck & Teboulle
  2009, eq. 1.5; Daubechies et al. 2004).

  Args:
    v: float array [...].
    threshold: float θ ≥ 0, a scalar or an array broadcastable against v of the same rank.

  Returns:
    float array [...], dtype of v (at least float32).

  Raises:
    ValueError: if threshold is a Python number < 0.
  """
  _check_positive("soft_threshold", threshold=threshold)
  v = _at_least_float32(v)
  return jnp.sign(v) * jnp.maximum(jnp.abs(v) - threshold, 0.0)


def lipschitz_constant(dictionary: jax.Array) -> jax.Array:
  """L = λ_max(DᵀD) = ‖D‖₂², the Lipschitz constant of z ↦ Dᵀ(D z − x).

  Args:
    dictionary: float [D, K].

  Returns:
    float32 scalar.
  """
  dictionary = _at_least_float32(dictionary)
  return jnp.linalg.eigvalsh(dictionary.T @ dictionary)[-1]


def sparse_coding_loss(x: jax.Array, dictionary: jax.Array, codes: jax.Array,
                       lam: float) -> jax.Array:
  """E = ½ ‖x − D z‖² + λ ‖z‖₁ per example (no 1/D factor; see the module docstring).

  Args:
    x: float [B, D].
    dictionary: float [D, K], atoms as columns.
    codes: float [B, K], z.
    lam: λ ≥ 0, the L1 weight.

  Returns:
    float32 [B], the energy in squared data units.

  Raises:
    ValueError: if the shapes disagree or lam is a Python number < 0.
  """
  _check_positive("sparse_coding_loss", lam=lam)
  x, dictionary, codes = _check_inputs("sparse_coding_loss", x, dictionary, codes)
  residual_BxD = x - codes @ dictionary.T
  return 0.5 * jnp.sum(residual_BxD**2, axis=-1) + lam * jnp.sum(jnp.abs(codes), axis=-1)


def ista_step(x: jax.Array, dictionary: jax.Array, codes: jax.Array, lam: float,
              step_size: float) -> jax.Array:
  """One ISTA step z' = S_{ηλ}(z − η Dᵀ(D z − x)) (Beck & Teboulle 2009, eq. 1.4).

  With η ≤ 1/L (``lipschitz_constant``) it never increases ``sparse_coding_loss``.

  Args:
    x: float [B, D].
    dictionary: float [D, K].
    codes: float [B, K], the current z.
    lam: λ ≥ 0.
    step_size: η > 0.

  Returns:
    float32 [B, K].

  Raises:
    ValueError: if the shapes disagree or lam is a Python number < 0.
  """
  _check_positive("ista_step", lam=lam, step_size=step_size)
  x, dictionary, codes = _check_inputs("ista_step", x, dictionary, codes)
  gradient_BxK = (codes @ dictionary.T - x) @ dictionary
  return soft_threshold(codes - step_size * gradient_BxK, step_size * lam)


def ista(x: jax.Array, dictionary: jax.Array, lam: float, num_steps: int,
         step_size: float | None = None) -> jax.Array:
  """Sparse codes by ISTA from z = 0: num_steps ``ista_step``s under ``lax.fori_loop``.

  Args:
    x: float [B, D].
    dictionary: float [D, K].
    lam: λ ≥ 0 (to match ``sklearn.linear_model.Lasso``, use alpha = λ / D).
    num_steps: number of steps ≥ 0.
    step_size: η; None for 1/L with L = λ_max(DᵀD).

  Returns:
    float32 [B, K], codes z.

  Raises:
    ValueError: if the shapes disagree, num_steps < 0, or lam / step_size is a Python
      number < 0.
  """
  if num_steps < 0:
    raise ValueError(f"ista: num_steps must be >= 0, got {num_steps}.")
  x, dictionary = _check_inputs("ista", x, dictionary)
  if step_size is None:
    step_size = 1.0 / lipschitz_constant(dictionary)
  codes = jnp.zeros((x.shape[0], dictionary.shape[1]), x.dtype)
  return lax.fori_loop(
      0, num_steps, lambda _, z: ista_step(x, dictionary, z, lam, step_size), codes)


def fista(x: jax.Array, dictionary: jax.Array, lam: float, num_steps: int,
          step_size: float | None = None) -> jax.Array:
  """Sparse codes by FISTA from z = 0 (Beck & Teboulle 2009, Sec. 4, constant step).

  z_k = ISTA step from y_k; t_{k+1} = (1 + √(1 + 4 t_k²)) / 2;
  y_{k+1} = z_k + ((t_k − 1) / t_{k+1}) (z_k − z_{k−1}); y_1 = z_0 = 0, t_1 = 1.
  E(z_k) − E* ≤ 2 L ‖z_0 − z*‖² / (k + 1)² (their Theorem 4.4); not monotone.

  Args:
    x: float [B, D].
    dictionary: float [D, K].
    lam: λ ≥ 0.
    num_steps: number of steps ≥ 0.
    step_size: η; None for 1/L.

  Returns:
    float32 [B, K], codes z.

  Raises:
    ValueError: if the shapes disagree, num_steps < 0, or lam / step_size is a Python
      number < 0.
  """
  if num_steps < 0:
    raise ValueError(f"fista: num_steps must be >= 0, got {num_steps}.")
  x, dictionary = _check_inputs("fista", x, dictionary)
  if step_size is None:
    step_size = 1.0 / lipschitz_constant(dictionary)
  codes = jnp.zeros((x.shape[0], dictionary.shape[1]), x.dtype)

  def body(_, state):
    codes, extrapolated, momentum = state
    new_codes = ista_step(x, dictionary, extrapolated, lam, step_size)
    new_momentum = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * momentum**2))
    extrapolated = new_codes + ((momentum - 1.0) / new_momentum) * (new_codes - codes)
    return new_codes, extrapolated, new_momentum

  codes, _, _ = lax.fori_loop(0, num_steps, body, (codes, codes, jnp.ones((), x.dtype)))
  return codes


def normalize_atoms(dictionary: jax.Array) -> jax.Array:
  """Rescales every column d_k to unit L2 norm (norms clipped below at 1e-12).

  Args:
    dictionary: float [D, K].

  Returns:
    float32 [D, K].
  """
  dictionary = _at_least_float32(dictionary)
  norms_1xK = jnp.sqrt(jnp.sum(dictionary**2, axis=0, keepdims=True))
  return dictionary / jnp.maximum(norms_1xK, _NORM_EPS)


def dictionary_update(x: jax.Array, codes: jax.Array, dictionary: jax.Array,
                      learning_rate: float) -> jax.Array:
  """One projected gradient step on D with the codes fixed, then atoms renormalised.

  D ← normalize(D − η ∇_D R),  R = (1/B) Σ_b ½ ‖x_b − D z_b‖²,  ∇_D R = −(1/B) (X − Z Dᵀ)ᵀ Z.

  A gradient step (Olshausen & Field 1996's learning rule, averaged over the batch), not the
  closed-form least squares; the unit-norm projection removes the scale ambiguity between
  D and z that the L1 penalty would otherwise exploit (atoms growing, codes shrinking).

  Args:
    x: float [B, D].
    codes: float [B, K], e.g. from ``ista``.
    dictionary: float [D, K].
    learning_rate: η ≥ 0.

  Returns:
    float32 [D, K], unit-norm columns.

  Raises:
    ValueError: if the shapes disagree or learning_rate is a Python number < 0.
  """
  _check_positive("dictionary_update", learning_rate=learning_rate)
  x, dictionary, codes = _check_inputs("dictionary_update", x, dictionary, codes)
  residual_BxD = x - codes @ dictionary.T
  gradient_DxK = -(residual_BxD.T @ codes) / x.shape[0]
  return normalize_atoms(dictionary - learning_rate * gradient_DxK)


def tied_autoencoder_encode(x: jax.Array, dictionary: jax.Array, lam: float,
                            step_size: float) -> jax.Array:
  """The encoder z = S_{ηλ}(η Dᵀ x): one ISTA step from z = 0 (Gregor & LeCun 2010, LISTA
  with W_e = η Dᵀ and threshold θ = ηλ; the slides' tied-weight autoencoder).

  Args:
    x: float [B, D].
    dictionary: float [D, K], shared by encoder and decoder.
    lam: λ ≥ 0.
    step_size: η > 0.

  Returns:
    float32 [B, K].

  Raises:
    ValueError: if the shapes disagree or lam / step_size is a Python number < 0.
  """
  _check_positive("tied_autoencoder_encode", lam=lam, step_size=step_size)
  x, dictionary = _check_inputs("tied_autoencoder_encode", x, dictionary)
  return soft_threshold(step_size * (x @ dictionary), step_size * lam)


def tied_autoencoder_loss(x: jax.Array, dictionary: jax.Array, lam: float,
                          step_size: float) -> jax.Array:
  """The sparse-coding energy at the amortised code: ½ ‖x − D z(x)‖² + λ ‖z(x)‖₁ with
  z(x) = ``tied_autoencoder_encode`` and decoder x̂ = D z. Differentiable in D through both
  the encoder and the decoder (tied weights).

  Args:
    x: float [B, D].
    dictionary: float [D, K].
    lam: λ ≥ 0.
    step_size: η > 0.

  Returns:
    float32 [B], per-example energy in squared data units.

  Raises:
    ValueError: if the shapes disagree or lam / step_size is a Python number < 0.
  """
  codes = tied_autoencoder_encode(x, dictionary, lam, step_size)
  return sparse_coding_loss(x, dictionary, codes, lam)

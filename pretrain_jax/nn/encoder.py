"""The small convolutional encoder every vision method shares, and its heads.

Every method in ``pretrain_jax.methods`` trains (or leaves untrained) the same
``ConvEncoder`` so that the comparison table measures the pretraining signal, not the
architecture (the protocol of the lecture notes' tables: one backbone, a linear layer on
frozen features).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp


class ConvEncoder(nnx.Module):
  """Four 3x3 conv layers (two with stride 2), batch-free normalisation, global average pool.

  The representation is the pooled feature vector ``[B, 4 * width]`` (the thing the linear
  probe and kNN read). GroupNorm rather than BatchNorm keeps every step a pure function of
  (params, batch) with no running statistics to thread through the train state.

  Layers: conv(width, s1) -> conv(2w, s2) -> conv(2w, s1) -> conv(4w, s2) -> mean over H, W.
  A 28x28 input gives 7x7 maps before the pool; an 8x8 input (``digits``) gives 2x2.

  Args:
    in_channels: C of the input images.
    width: channels of the first layer; the representation has ``4 * width`` dimensions.
    rngs: ``nnx.Rngs`` used for initialisation only.
  """

  def __init__(self, in_channels: int, width: int, *, rngs: nnx.Rngs):
    if width < 4 or width % 4:
      raise ValueError(f"model.width must be a positive multiple of 4, got {width}.")
    channels = (width, 2 * width, 2 * width, 4 * width)
    strides = (1, 2, 1, 2)
    convs, norms = [], []
    previous = in_channels
    for out, stride in zip(channels, strides):
      convs.append(nnx.Conv(previous, out, kernel_size=(3, 3), strides=(stride, stride),
                            padding="SAME", rngs=rngs))
      norms.append(nnx.GroupNorm(out, num_groups=min(8, out // 4), rngs=rngs))
      previous = out
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    self.feature_dim = channels[-1]
    self.downsample = 4

  def feature_map(self, images: jax.Array) -> jax.Array:
    """Spatial features before pooling.

    Args:
      images: float32 ``[B, H, W, C]`` in [0, 1]; H and W divisible by 4.

    Returns:
      float32 ``[B, H/4, W/4, 4 * width]``.
    """
    x = images * 2.0 - 1.0
    for conv, norm in zip(self.convs, self.norms):
      x = nnx.relu(norm(conv(x)))
    return x

  def __call__(self, images: jax.Array) -> jax.Array:
    """The representation: ``[B, H, W, C]`` float32 in [0, 1] -> ``[B, 4 * width]`` float32."""
    return jnp.mean(self.feature_map(images), axis=(1, 2))


class MLP(nnx.Module):
  """Linear -> ReLU -> Linear, the projection head of SimCLR (Chen et al. 2020, Sec. 2.1)."""

  def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, *, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(in_dim, hidden_dim, rngs=rngs)
    self.out = nnx.Linear(hidden_dim, out_dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """``[B, in_dim]`` -> ``[B, out_dim]``."""
    return self.out(nnx.relu(self.hidden(x)))


class ConvDecoder(nnx.Module):
  """Mirror of ``ConvEncoder`` for reconstruction: a vector -> an image.

  Dense to a ``[H/4, W/4, 2w]`` map, two stride-2 transposed convs back to ``[H, W]``, a
  final 3x3 conv to C channels. Output is logits-free: raw pixel predictions (the caller
  applies its own loss; the autoencoder uses L2 on ``sigmoid`` outputs).

  Args:
    feature_dim: size of the input vector.
    image_shape: ``(H, W, C)`` of the images to reconstruct; H, W divisible by 4.
    width: the encoder's width.
    rngs: ``nnx.Rngs`` for initialisation.
  """

  def __init__(self, feature_dim: int, image_shape: tuple[int, int, int], width: int, *,
               rngs: nnx.Rngs):
    height, image_width, channels = image_shape
    if height % 4 or image_width % 4:
      raise ValueError(f"image height and width must be divisible by 4, got {image_shape}.")
    self.map_shape = (height // 4, image_width // 4, 2 * width)
    self.dense = nnx.Linear(feature_dim, height // 4 * image_width // 4 * 2 * width, rngs=rngs)
    self.up1 = nnx.ConvTranspose(2 * width, 2 * width, kernel_size=(3, 3), strides=(2, 2),
                                 padding="SAME", rngs=rngs)
    self.up2 = nnx.ConvTranspose(2 * width, width, kernel_size=(3, 3), strides=(2, 2),
                                 padding="SAME", rngs=rngs)
    self.out = nnx.Conv(width, channels, kernel_size=(3, 3), padding="SAME", rngs=rngs)

  def __call__(self, features: jax.Array) -> jax.Array:
    """``[B, feature_dim]`` -> pre-sigmoid pixels ``[B, H, W, C]`` float32."""
    x = nnx.relu(self.dense(features)).reshape((features.shape[0],) + self.map_shape)
    x = nnx.relu(self.up1(x))
    x = nnx.relu(self.up2(x))
    return self.out(x)

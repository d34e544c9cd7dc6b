"""What the likelihood models share in evaluation: sample grids, and the probe on their features.

Every generative method reports its test negative log-likelihood in nats per image (and
writes how it was obtained: exact, an importance-weighted bound or AIS), draws a grid of
samples into its workdir, and hands its features to the vision family's linear probe and
kNN (``methods.common.evaluate_features``), so that what the model learned about digits is
measured the way the vision table measures it.
"""

from __future__ import annotations

import io
import math
from typing import Any

from etils import epath
import numpy as np

SAMPLES_FILE = "samples.png"


def image_grid(images: np.ndarray, num_columns: int | None = None) -> np.ndarray:
  """Tiles images into one picture, one pixel of padding between them.

  Args:
    images: float ``[N, H, W]`` or ``[N, H, W, 1]`` with values in [0, 1].
    num_columns: images per row; None for ⌈√N⌉.

  Returns:
    float32 ``[rows (H + 1) − 1, columns (W + 1) − 1]`` in [0, 1], padding at 0.

  Raises:
    ValueError: not [N, H, W(, 1)] or N = 0.
  """
  images = np.asarray(images, np.float32)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3 or not len(images):
    raise ValueError(f"image_grid expects [N, H, W] or [N, H, W, 1] with N >= 1, got {images.shape}.")
  count, height, width = images.shape
  columns = num_columns or math.ceil(math.sqrt(count))
  rows = math.ceil(count / columns)
  grid = np.zeros((rows * (height + 1) - 1, columns * (width + 1) - 1), np.float32)
  for index, image in enumerate(images):
    top, left = (index // columns) * (height + 1), (index % columns) * (width + 1)
    grid[top:top + height, left:left + width] = image
  return grid


def save_image_grid(images: np.ndarray, path: Any, *, title: str = "",
                    num_columns: int | None = None) -> epath.Path:
  """Writes ``image_grid(images)`` as a PNG (ink 1 = black on white) through ``etils.epath``.

  Args:
    images: float ``[N, H, W(, 1)]`` in [0, 1]; pixel probabilities or binary samples.
    path: the PNG's path (local or ``gs://``).
    title: a line above the grid.
    num_columns: images per row; None for ⌈√N⌉.

  Returns:
    The path written.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  grid = image_grid(images, num_columns)
  figure, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] / 40), max(2.0, grid.shape[0] / 40 + 0.4)))
  ax.imshow(grid, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=9)
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  plt.close(figure)
  path = epath.Path(path)
  path.write_bytes(buffer.getvalue())
  return path

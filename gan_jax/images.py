"""Image output: [-1, 1] floats to uint8, grids of samples, PNG folders."""

from __future__ import annotations

import os

import numpy as np

from gan_jax import files


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps images in [-1, 1] to uint8 [0, 255] (values outside are clipped)."""
  images = np.asarray(images, dtype=np.float32)
  return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sample_grid(images: np.ndarray, rows: int, cols: int, border: int = 2,
                scale: int = 1, caption_height: int = 0, background: int = 0
                ) -> np.ndarray:
  """Tiles images into one grayscale grid (the one grid renderer: the sample
  grids, and under `gan_jax.labels`' captions the labelled grid).

  Args:
    images: (N, H, W, 1) or (N, H, W) in [-1, 1], N >= rows * cols.
    rows, cols: grid size.
    border: pixels between and around cells (after scaling).
    scale: integer upscaling of each cell (nearest neighbour), for viewing.
    caption_height: empty pixels under each cell, for a caption.
    background: the gray level of borders and caption space (0 black, 255 white).

  Returns:
    A uint8 array (rows*(H*scale+caption_height+border)+border,
    cols*(W*scale+border)+border).
  """
  cells = to_uint8(images)
  if cells.ndim == 4:
    cells = cells[..., 0]
  if len(cells) < rows * cols:
    raise ValueError(f'need {rows * cols} images for a {rows}x{cols} grid, got {len(cells)}')
  if scale > 1:
    cells = cells.repeat(scale, axis=1).repeat(scale, axis=2)
  h, w = cells.shape[1:]
  cell_h = h + caption_height + border
  grid = np.full((rows * cell_h + border, cols * (w + border) + border), background, np.uint8)
  for i in range(rows * cols):
    r, c = divmod(i, cols)
    y, x = border + r * cell_h, border + c * (w + border)
    grid[y:y + h, x:x + w] = cells[i]
  return grid


def save_grid(path: str, images: np.ndarray, rows: int, cols: int, scale: int = 2) -> None:
  """Saves a grid of `images` as a PNG, atomically."""
  files.save_png(path, sample_grid(images, rows, cols, scale=scale))


def save_images(folder: str, images: np.ndarray, prefix: str = 'img_') -> list[str]:
  """Saves each image as a 28x28 grayscale PNG ``<prefix>000.png``...; returns the names."""
  digits = max(3, len(str(len(images) - 1)))
  names = []
  for i, image in enumerate(to_uint8(images)):
    name = f'{prefix}{i:0{digits}d}.png'
    files.save_png(os.path.join(folder, name), image)
    names.append(name)
  return names

"""Grids and PNG folders of generated images."""

import os

import numpy as np
from PIL import Image

from gan_jax import images


def test_to_uint8_maps_the_range_ends():
  out = images.to_uint8(np.array([-1.0, 0.0, 1.0, 5.0]))
  assert out.tolist() == [0, 128, 255, 255]


def test_grid_size_and_cell_placement():
  x = -np.ones((25, 28, 28, 1), np.float32)
  x[7] = 1.0  # Row 1, column 2.
  grid = images.sample_grid(x, 5, 5, border=2)
  assert grid.shape == (5 * 30 + 2, 5 * 30 + 2)
  y, xx = 2 + 1 * 30, 2 + 2 * 30
  assert (grid[y:y + 28, xx:xx + 28] == 255).all()
  assert grid[y - 1, xx] == 0 and grid.sum() == 255 * 28 * 28
  assert images.sample_grid(x, 5, 5, border=2, scale=2).shape == (5 * 58 + 2,) * 2


def test_save_images_writes_28x28_grayscale_pngs(tmp_path):
  x = np.random.default_rng(0).uniform(-1, 1, (12, 28, 28, 1)).astype(np.float32)
  names = images.save_images(str(tmp_path), x)
  assert names[0] == 'img_000.png' and names[-1] == 'img_011.png'
  img = Image.open(os.path.join(tmp_path, 'img_003.png'))
  assert img.size == (28, 28) and img.mode == 'L'
  np.testing.assert_array_equal(np.asarray(img), images.to_uint8(x[3])[..., 0])

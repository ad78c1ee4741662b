"""Does the generator copy its training images? Nearest neighbours in the
domain classifier's feature space.

`check` measures the memorisation ratio (`quality.memorisation_ratio`: the
median distance of generated images to their nearest training image over that
of real test images; about 1 when nothing is copied, far below 1 for copies)
and `nearest_grid` draws generated images beside their nearest training images,
for `final_generated_images/nearest_train.png`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gan_jax import files, images, quality

NEIGHBOURS = 3   # Training images shown beside each generated one.
GRID_ROWS = 10   # Generated images in nearest_train.png.


def check(generated_features: np.ndarray, test_features: np.ndarray,
          train_features: np.ndarray) -> dict[str, Any]:
  """The memorisation ratio and the images it was measured on."""
  return {'memorisation_ratio': quality.memorisation_ratio(
              generated_features, test_features, train_features),
          'memorisation_images': len(generated_features),
          'memorisation_test_images': len(test_features),
          'memorisation_train_images': len(train_features)}


def nearest_grid(generated: np.ndarray, generated_features: np.ndarray,
                 train_images: np.ndarray, train_features: np.ndarray,
                 rows: int = GRID_ROWS) -> np.ndarray:
  """A uint8 grid: each row a generated image, then its NEIGHBOURS nearest
  training images (nearest first). Images in [-1, 1], (N, 28, 28, 1)."""
  rows = min(rows, len(generated))
  _, idx = quality.nearest_neighbours(generated_features[:rows], train_features, NEIGHBOURS)
  cells = np.concatenate([np.concatenate([generated[i:i + 1], train_images[idx[i]]])
                          for i in range(rows)])
  return images.sample_grid(cells, rows, NEIGHBOURS + 1, scale=2)


def save_nearest_grid(path: str, *args: Any, **kwargs: Any) -> None:
  """Writes `nearest_grid(*args, **kwargs)` as a PNG, atomically."""
  files.save_png(path, nearest_grid(*args, **kwargs))

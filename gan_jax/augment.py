"""Differentiable augmentation of what the discriminator sees (DiffAugment,
Zhao et al. 2020): real and generated images alike, every step, with the
gradient flowing through it to the generator. On a few hundred or thousand
images the discriminator otherwise learns them by heart within a few
thousand steps, and the generator's signal collapses.

A policy is a tuple of the names in `OPS`, applied in order; () is none.
Each op is a pure function of (images (B, H, W, C) in [-1, 1], key) that
keeps shapes and range; every image gets its own random draw.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

BACKGROUND = -1.0   # The pixel value of empty space (black in [-1, 1]).
SHIFT_RATIO = 0.125  # translation: up to 1/8 of the side in each direction (3 px of 28).
CUTOUT_RATIO = 0.5   # cutout: a square of half the side (14 px of 28).


def translation(images: jax.Array, key: jax.Array) -> jax.Array:
  """Shifts each image by whole pixels, up to SHIFT_RATIO of its side in x
  and y, filling with background."""
  b, h, w, _ = images.shape
  r = max(1, round(h * SHIFT_RATIO))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * r + 1)
  padded = jnp.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), constant_values=BACKGROUND)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def cutout(images: jax.Array, key: jax.Array) -> jax.Array:
  """Sets a square of CUTOUT_RATIO of the side, at a random place in each
  image (partly outside it at the edges), to background."""
  b, h, w, _ = images.shape
  size = round(h * CUTOUT_RATIO)
  centres = jax.random.randint(key, (b, 2), 0, jnp.array([h, w]))
  rows = jnp.arange(h)[None, :, None]
  cols = jnp.arange(w)[None, None, :]
  top = centres[:, 0, None, None] - size // 2
  left = centres[:, 1, None, None] - size // 2
  inside = ((rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size))
  keep = (~inside)[..., None].astype(images.dtype)
  return images * keep + BACKGROUND * (1 - keep)


OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    'translation': translation,
    'cutout': cutout,
}


def parse(policy: str) -> tuple[str, ...]:
  """'translation,cutout' -> ('translation', 'cutout'); 'none' or '' -> ().

  Raises:
    ValueError: an unknown op.
  """
  names = tuple(n.strip() for n in policy.split(',') if n.strip() and n.strip() != 'none')
  unknown = [n for n in names if n not in OPS]
  if unknown:
    raise ValueError(f'unknown augmentation {unknown[0]!r}; use a comma-separated list of '
                     f'{", ".join(OPS)}, or none')
  return names


def apply(policy: tuple[str, ...], images: jax.Array, key: jax.Array) -> jax.Array:
  """`images` through each op of `policy`, each with its own key."""
  for i, name in enumerate(policy):
    images = OPS[name](images, jax.random.fold_in(key, i))
  return images

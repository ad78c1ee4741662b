"""The trained generator as one file that a program with only jax loads.

`export_generator` lowers the generator with its sampling weights (the EMA
when kept) baked in to StableHLO with `jax.export`, for cpu, cuda and tpu at
once, with a symbolic batch size. Loading needs jax alone::

  import jax, numpy as np
  gen = jax.export.deserialize(bytearray(open('generator.jax', 'rb').read()))
  images = gen.call(np.random.randn(16, 100).astype(np.float32),
                    np.arange(16, dtype=np.int32) % 10)   # (16, 28, 28, 1) in [-1, 1]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gan_jax import sampling, train

PLATFORMS = ('cpu', 'cuda', 'tpu')
FILE = 'generator.jax'


def export_generator(state: train.GANState, platforms: tuple[str, ...] = PLATFORMS
                     ) -> jax.export.Exported:
  """The generator as a `jax.export.Exported`: (noise (B, noise_dim) float32,
  labels (B,) int32; ignored by an unconditional generator) -> images
  (B, 28, 28, 1) float32 in [-1, 1], for any batch size B."""
  # The variables `sampling.generate` samples with, so the file draws the same images.
  variables = jax.device_get(sampling.inference_variables(state))
  apply_fn = state.generator.apply_fn

  def generate(z: jax.Array, labels: jax.Array) -> jax.Array:
    return apply_fn(variables, z, labels, train=False).astype(jnp.float32)

  (batch,) = jax.export.symbolic_shape('b')
  # Without source locations: the file holds no local paths and is the same
  # bytes for the same weights, wherever it was called from.
  limit = jax.config.jax_traceback_in_locations_limit
  jax.config.update('jax_traceback_in_locations_limit', 0)
  try:
    return jax.export.export(jax.jit(generate), platforms=platforms)(
        jax.ShapeDtypeStruct((batch, state.noise_dim), jnp.float32),
        jax.ShapeDtypeStruct((batch,), jnp.int32))
  finally:
    jax.config.update('jax_traceback_in_locations_limit', limit)


def describe(exported: jax.export.Exported) -> dict[str, Any]:
  """What the export's manifest says about the file."""
  return {'file': FILE, 'platforms': list(exported.platforms),
          'inputs': [str(a) for a in exported.in_avals],
          'output': [str(a) for a in exported.out_avals],
          'weights': 'the sampling weights (the EMA of the generator when kept)',
          'load': "jax.export.deserialize(bytearray(open(FILE, 'rb').read())).call(z, labels)"}

"""Per-layer timings of the DCGAN's layers on XLA:CPU, flax vs. gan_jax.layers.

For every layer of the DCGAN (TensorFlow DCGAN tutorial network) at batch 256,
in float32 and bfloat16 (bf16 compute, fp32 params), times the jitted forward
pass and the forward + gradient w.r.t. params and input (one `jax.vjp`), for
the plain flax formulation and for the formulations in `gan_jax/layers.py`.
Prints one table: median wall ms (and median process CPU ms, steadier when
the machine is shared), and the effective TFLOP/s of the useful work (the flax layer's FLOPs).

Usage:
  python experiments/profile_layers.py [--batch_size=256] [--reps=7]
      [--dtypes=float32,bfloat16] [--impls=flax,gan_jax] [--layers=g_ct2,...]
XLA flags can be tried by setting XLA_FLAGS in the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from gan_jax import layers  # pylint: disable=g-import-not-at-top

# name -> (kind, input shape without batch, features, stride, use_bias)
LAYERS = {
    'g_dense': ('dense', (100,), 7 * 7 * 256, None, False),
    'g_ct1': ('convT', (7, 7, 256), 128, 1, False),
    'g_ct2': ('convT', (7, 7, 128), 64, 2, False),
    'g_ct3': ('convT', (14, 14, 64), 1, 2, False),
    'd_c1': ('conv', (28, 28, 1), 64, 2, True),
    'd_c2': ('conv', (14, 14, 64), 128, 2, True),
    'd_dense': ('dense', (7 * 7 * 128,), 1, None, True),
}


def make_module(kind: str, features: int, stride: int | None, use_bias: bool,
                impl: str, dtype) -> nn.Module | None:
  """The layer as flax ('flax') or gan_jax.layers ('gan_jax') builds it."""
  if kind == 'dense':
    return nn.Dense(features, use_bias=use_bias, dtype=dtype)
  kw = dict(kernel_size=(5, 5), strides=(stride, stride), padding='SAME',
            use_bias=use_bias, dtype=dtype)
  if impl == 'flax':
    cls = nn.ConvTranspose if kind == 'convT' else nn.Conv
    return cls(features, **kw)
  cls = layers.ConvTranspose if kind == 'convT' else layers.Conv
  return cls(features, **kw)


def bench(fn: Callable, *args, reps: int) -> tuple[float, float]:
  """(median wall, median process CPU) seconds of `fn(*args)` after warm-up.

  CPU time (all threads) is the steadier figure when others share the cores:
  on an idle 2-core machine a well-parallelized op shows cpu ~= 2 x wall.
  """
  for _ in range(2):
    jax.block_until_ready(fn(*args))
  wall, cpu = [], []
  for _ in range(reps):
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--batch_size', type=int, default=256)
  p.add_argument('--reps', type=int, default=7)
  p.add_argument('--dtypes', default='float32,bfloat16')
  p.add_argument('--impls', default='flax,gan_jax')
  p.add_argument('--layers', default=','.join(LAYERS))
  args = p.parse_args()

  print(f'jax {jax.__version__}, devices {jax.devices()}, '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  header = (f'{"layer":8s} {"dtype":8s} {"impl":7s} | {"fwd ms (cpu)":>16s} | '
            f'{"fwd+grad ms (cpu)":>18s} | {"GFLOP":>6s} {"fwd TF/s":>8s} '
            f'{"f+g TF/s":>8s}')
  print(header)
  print('-' * len(header))
  key = jax.random.PRNGKey(0)
  for name in args.layers.split(','):
    kind, in_shape, features, stride, use_bias = LAYERS[name]
    for dtype_name in args.dtypes.split(','):
      dtype = jnp.dtype(dtype_name)
      x = jax.random.normal(key, (args.batch_size,) + in_shape).astype(dtype)
      flops = None
      for impl in args.impls.split(','):
        if kind == 'dense' and impl != 'flax':
          continue
        module = make_module(kind, features, stride, use_bias, impl, dtype)
        params = module.init(key, x)
        fwd = jax.jit(module.apply)
        y = fwd(params, x)
        ct = jax.random.normal(key, y.shape).astype(y.dtype)

        def fwd_grad(params, x, ct, module=module):
          _, vjp = jax.vjp(module.apply, params, x)
          return vjp(ct)

        fwd_grad = jax.jit(fwd_grad)
        if flops is None:  # Useful work: the flax formulation's FLOPs.
          flops = fwd.lower(params, x).compile().cost_analysis()['flops']
        t_f, m_f = bench(fwd, params, x, reps=args.reps)
        t_g, m_g = bench(fwd_grad, params, x, ct, reps=args.reps)
        print(f'{name:8s} {dtype_name:8s} {impl:7s} | '
              f'{t_f * 1e3:7.2f} ({m_f * 1e3:6.2f}) | '
              f'{t_g * 1e3:8.2f} ({m_g * 1e3:7.2f}) | '
              f'{flops / 1e9:6.2f} {flops / t_f / 1e12:8.3f} '
              f'{3 * flops / t_g / 1e12:8.3f}', flush=True)


if __name__ == '__main__':
  main()

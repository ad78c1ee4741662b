"""Matmul throughput of this machine under XLA, float32 and bfloat16.

A ceiling for the train steps: a GAN step cannot run its dots faster than
XLA runs a large matmul. bfloat16 operands are multiplied with float32
accumulation and output (`preferred_element_type`), the fastest form here.

Usage:
  python experiments/matmul_peak.py
Prints one line per (dtype, shape): median ms of 3 calls and GFLOP/s.
"""

import argparse
import time

import jax
import jax.numpy as jnp

# (M, K, N): the DCGAN's stride-1 deconvolution as one matmul at batch 256
# (both ways round), and a large square one.
SHAPES = ((256 * 49, 256, 3200), (256 * 49, 6400, 128), (4096, 4096, 4096))


def main() -> None:
  argparse.ArgumentParser(description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
  dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  for dtype in (jnp.float32, jnp.bfloat16):
    for m, k, n in SHAPES:
      a, b = jnp.ones((m, k), dtype), jnp.ones((k, n), dtype)
      dot(a, b).block_until_ready()
      times = []
      for _ in range(3):
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
      t = sorted(times)[1]
      print(f'{jnp.dtype(dtype).name:8s} {m}x{k}x{n}: {t * 1e3:7.1f} ms '
            f'{2 * m * k * n / t / 1e9:6.0f} GFLOP/s', flush=True)


if __name__ == '__main__':
  main()

"""Images/s of the real device epoch loop, `gan_jax.train.run_chunk`, on random data.

Builds the state with `gan_jax.train.create_state`, keeps `--images` random
images on the host, draws an epoch's permutation with `train.epoch_batches`
and, as the trainer does, gathers each chunk's batches on the host and puts
them on the device; runs one warm-up chunk (it compiles), then times
`--chunks` chunks of `--chunk_steps` steps each. The last line printed is one
JSON object:

  {"arch", "batch_size", "path", "chunk_steps", "chunks", "images_per_s",
   "chunk_s", "warmup_s"}

with images_per_s the median over the timed chunks (others may share the
machine). The path:
  (default)  `train.run_chunk` as the package runs it;
  --scan     one `lax.scan` per chunk (`train.run_chunk`, what the package runs);
  --no-scan  one jitted `train.train_batch` call per step, a Python loop (the
             per-step alternative to the scan).

Usage:
  python experiments/epoch_loop.py --arch=dcgan --batch_size=128 [--scan|--no-scan]
Like run.py it adds gan_jax.xla_setup.CPU_FLAGS to XLA_FLAGS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from gan_jax import xla_setup  # pylint: disable=g-import-not-at-top

xla_setup.use_fast_cpu_settings()  # Before jax is imported.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from gan_jax import datasets, train  # pylint: disable=g-import-not-at-top

_train_batch = jax.jit(train.train_batch, donate_argnums=(0,))


def per_step_chunk(state, batches, rng):
  """One jitted step per batch; metric sums on the device."""
  sums = None
  for i in range(batches['image'].shape[0]):
    state, metrics = _train_batch(state, jax.tree_util.tree_map(lambda x: x[i], batches), rng)
    sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
  return state, sums


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--arch', choices=config_lib.ARCHS, default='dcgan')
  p.add_argument('--batch_size', type=int, default=128)
  p.add_argument('--images', type=int, default=6400)
  p.add_argument('--chunk_steps', type=int, default=10)
  p.add_argument('--chunks', type=int, default=3)
  p.add_argument('--scan', action=argparse.BooleanOptionalAction, default=None,
                 help='the scanned run_chunk (default, --scan) or per-step calls (--no-scan)')
  args = p.parse_args()

  steps = (1 + args.chunks) * args.chunk_steps
  if steps * args.batch_size > args.images:
    p.error(f'{steps} steps of {args.batch_size} need more than --images={args.images}')
  config = config_lib.Config(arch=args.arch, batch_size=args.batch_size)
  state = train.create_state(config, jax.random.PRNGKey(0))
  images = np.random.default_rng(1).uniform(
      -1, 1, (args.images,) + datasets.IMAGE_SHAPE).astype(np.float32)
  idx = np.asarray(train.epoch_batches(jax.random.PRNGKey(2), args.images, steps,
                                       args.batch_size))
  rng = jax.random.PRNGKey(3)
  if args.scan is None or args.scan:
    path, run = 'scan', train.run_chunk
  else:
    path, run = 'per_step', per_step_chunk

  times = []
  for c in range(1 + args.chunks):
    rows = idx[c * args.chunk_steps:(c + 1) * args.chunk_steps]
    t = time.perf_counter()
    batches = {'image': images[rows], 'label': (rows % 10).astype(np.int32)}
    state, metrics = run(state, jax.device_put(batches), rng)
    metrics = jax.device_get(metrics)  # What the trainer does after each chunk.
    times.append(time.perf_counter() - t)
  if not all(np.isfinite(v) for v in metrics.values()):
    raise FloatingPointError(f'non-finite metrics: {metrics}')
  chunk_s = float(np.median(times[1:]))
  print(f'chunk seconds: warm-up {times[0]:.2f}, timed {[round(t, 3) for t in times[1:]]}',
        file=sys.stderr)
  print(json.dumps({
      'arch': args.arch,
      'batch_size': args.batch_size,
      'path': path,
      'chunk_steps': args.chunk_steps,
      'chunks': args.chunks,
      'images_per_s': round(args.chunk_steps * args.batch_size / chunk_s, 1),
      'chunk_s': round(chunk_s, 3),
      'warmup_s': round(times[0], 2),
  }))


if __name__ == '__main__':
  main()

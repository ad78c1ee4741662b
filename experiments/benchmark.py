"""Throughput of the package's real GAN train step on random data.

Builds the state with `gan_jax.train.create_state`, jits `gan_jax.train.train_step`
(one discriminator step then one generator step) with the state donated, warms
it up, then times `--steps` steps. No dataset is needed. The last line printed
is one JSON object:

  {"arch", "batch_size", "dtype", "devices", "images_per_s", "step_ms",
   "compile_s", "flops_per_image", "gflops_per_s"}

where the FLOPs come from XLA's cost analysis of the compiled step.

Usage:
  python experiments/benchmark.py --arch=dcgan --batch_size=256 --steps=20 \\
      [--dtype=float32|bfloat16] [--dataset=fashion --conditional --reconstruction=W]
Like run.py it adds gan_jax.xla_setup.CPU_FLAGS to XLA_FLAGS (--plain_xla: don't);
other XLA flags can be tried by setting XLA_FLAGS in the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from gan_jax import xla_setup  # pylint: disable=g-import-not-at-top

# The same XLA settings as run.py (unless --plain_xla), before jax is imported.
if '--plain_xla' not in sys.argv:
  xla_setup.use_fast_cpu_settings()

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from gan_jax import datasets, train  # pylint: disable=g-import-not-at-top


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--arch', choices=config_lib.ARCHS, default='dcgan')
  p.add_argument('--batch_size', type=int, default=256)
  p.add_argument('--steps', type=int, default=20)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32')
  p.add_argument('--dataset', default='mnist', help="whose per-dataset defaults apply")
  p.add_argument('--conditional', action='store_true')
  p.add_argument('--reconstruction', type=float, default=None,
                 help="run.py's --reconstruction (default: the dataset's)")
  p.add_argument('--plain_xla', action='store_true',
                 help="don't add run.py's XLA:CPU flags (gan_jax/xla_setup.py)")
  args = p.parse_args()

  config = config_lib.Config(arch=args.arch, batch_size=args.batch_size, dtype=args.dtype,
                             dataset=args.dataset, conditional=args.conditional,
                             reconstruction=args.reconstruction)
  state = train.create_state(config, jax.random.PRNGKey(0))
  images = {'image': jax.random.uniform(jax.random.PRNGKey(1),
                                       (args.batch_size,) + datasets.IMAGE_SHAPE,
                                       minval=-1.0, maxval=1.0),
            'label': jnp.arange(args.batch_size, dtype=jnp.int32) % 10}
  rng = jax.random.PRNGKey(2)
  step = jax.jit(train.train_step, donate_argnums=(0,))

  t0 = time.perf_counter()
  compiled = step.lower(state, images, rng).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get('flops', float('nan')))

  for i in range(args.warmup):
    state, metrics = compiled(state, images, jax.random.fold_in(rng, i))
  jax.block_until_ready((state, metrics))
  times = []
  cpu0 = time.process_time()
  for i in range(args.steps):
    t = time.perf_counter()
    state, metrics = compiled(state, images, jax.random.fold_in(rng, 1000 + i))
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
  cpu_s = (time.process_time() - cpu0) / args.steps
  losses = {k: float(v) for k, v in metrics.items()}
  if not all(np.isfinite(v) for v in losses.values()):
    raise FloatingPointError(f'non-finite metrics: {losses}')

  # Median: robust to the other jobs sharing this machine.
  step_s = float(np.median(times))
  print(f'step ms: median {step_s * 1e3:.1f}, min {min(times) * 1e3:.1f}, '
        f'max {max(times) * 1e3:.1f}; process CPU ms/step {cpu_s * 1e3:.1f} '
        f'(steadier on a shared machine; ~2x wall when idle on 2 cores); '
        f'last metrics {losses}', file=sys.stderr)
  print(json.dumps({
      'arch': args.arch,
      'dataset': args.dataset,
      'conditional': args.conditional,
      'reconstruction': state.reconstruction,
      'batch_size': args.batch_size,
      'dtype': args.dtype,
      'devices': [str(d) for d in jax.devices()],
      'images_per_s': round(args.batch_size / step_s, 1),
      'step_ms': round(step_s * 1e3, 2),
      'compile_s': round(compile_s, 2),
      'flops_per_image': round(flops / args.batch_size),
      'gflops_per_s': round(flops / step_s / 1e9, 2),
  }))


if __name__ == '__main__':
  main()

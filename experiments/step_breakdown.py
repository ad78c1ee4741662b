"""Where a scanned train step's time goes at a small batch: the networks or the updates.

Times `gan_jax.train.run_chunk` (the scanned loop run.py runs, random data
on the device) in four versions, interleaved in one process so that they
share the machine's state: as shipped (Adam, generator EMA); without the
EMA; with plain SGD instead of Adam; with SGD and no EMA. What SGD saves is
Adam's extra memory traffic (two moments read and written for every
parameter); what remains is the networks' forward and backward passes.

Usage:
  python experiments/step_breakdown.py --arch=mlp_bn --batch_size=32
Prints one JSON line per version: ms per step (the best of --rounds chunks)
and images/s. Like run.py it adds gan_jax.xla_setup.CPU_FLAGS to XLA_FLAGS.
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
import optax  # pylint: disable=g-import-not-at-top

from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from gan_jax import datasets, train  # pylint: disable=g-import-not-at-top


def with_sgd(state: train.GANState, learning_rate: float) -> train.GANState:
  """`state` with both optimizers replaced by plain SGD."""
  tx = optax.sgd(learning_rate)
  return state.replace(
      generator=state.generator.replace(tx=tx, opt_state=tx.init(state.generator.params)),
      discriminator=state.discriminator.replace(
          tx=tx, opt_state=tx.init(state.discriminator.params)))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--arch', choices=config_lib.ARCHS, default='mlp_bn')
  p.add_argument('--batch_size', type=int, default=32)
  p.add_argument('--steps', type=int, default=200, help='steps per timed chunk')
  p.add_argument('--rounds', type=int, default=5)
  args = p.parse_args()

  config = config_lib.Config(arch=args.arch, batch_size=args.batch_size)
  shape = (args.steps, args.batch_size)
  batches = {'image': jax.random.uniform(jax.random.PRNGKey(1), shape + datasets.IMAGE_SHAPE,
                                         minval=-1, maxval=1),
             'label': jax.random.randint(jax.random.PRNGKey(2), shape, 0, 10)}
  rng = jax.random.PRNGKey(3)
  # A state of its own for each version: run_chunk donates (deletes) its input.
  base = lambda: train.create_state(config, jax.random.PRNGKey(0))
  states = {
      'adam+ema (shipped)': base(),
      'adam': base().replace(ema_decay=0.0),
      'sgd+ema': with_sgd(base(), config.learning_rate),
      'sgd': with_sgd(base(), config.learning_rate).replace(ema_decay=0.0),
  }
  best = {}
  for name in states:  # Compile and warm up.
    states[name], _ = train.run_chunk(states[name], batches, rng)
    jax.block_until_ready(states[name])
  for _ in range(args.rounds):
    for name in states:
      start = time.perf_counter()
      states[name], _ = train.run_chunk(states[name], batches, rng)
      jax.block_until_ready(states[name])
      best[name] = min(best.get(name, float('inf')), time.perf_counter() - start)
  for name, seconds in best.items():
    print(json.dumps({'arch': args.arch, 'batch_size': args.batch_size, 'version': name,
                      'ms_per_step': round(1e3 * seconds / args.steps, 3),
                      'images_per_s': round(args.steps * args.batch_size / seconds)}))


if __name__ == '__main__':
  main()

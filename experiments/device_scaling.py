"""How a train step's cost grows with the number of (forced CPU) devices.

For each device count N, starts a Python process with
XLA_FLAGS=--xla_force_host_platform_device_count=N, builds the mesh, replicates
the state, shards a (steps, batch) chunk of random images on 'data' and times
`train.run_chunk` (after one compiling call). Prints one JSON line per N.

  python experiments/device_scaling.py --arch=mlp --batch_size=256 --devices=1,2,4,8

On one CPU the N devices share the same cores, so this shows the overhead of
sharding and of the all-reduce, not a speed-up; on GPUs or TPUs each device
brings its own compute and the all-reduce runs over the interconnect.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = '''
import json, sys, time
sys.path.insert(0, {root!r})
from gan_jax import xla_setup
xla_setup.use_fast_cpu_settings()
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from gan_jax import train
from gan_jax.config import Config
config = Config(arch={arch!r}, batch_size={batch})
mesh = train.make_mesh()
state = train.replicate(train.create_state(config, jax.random.PRNGKey(0)), mesh)
images = np.random.default_rng(0).uniform(-1, 1, ({steps}, {batch}, 28, 28, 1)).astype(np.float32)
labels = (np.arange({steps} * {batch}) % 10).reshape({steps}, {batch}).astype(np.int32)
batches = jax.device_put({{'image': images, 'label': labels}},
                         NamedSharding(mesh, P(None, 'data')))
rng = jax.random.PRNGKey(1)
state, m = train.run_chunk(state, batches, rng)
jax.block_until_ready(m)
times = []
for _ in range({repeats}):
  t = time.perf_counter()
  state, m = train.run_chunk(state, batches, rng)
  jax.block_until_ready(m)
  times.append(time.perf_counter() - t)
step = float(np.median(times)) / {steps}
print(json.dumps({{'devices': jax.device_count(), 'arch': {arch!r}, 'batch_size': {batch},
                  'step_ms': round(step * 1e3, 2), 'images_per_s': round({batch} / step, 1)}}))
'''


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--arch', default='mlp', choices=('mlp', 'dcgan'))
  p.add_argument('--batch_size', type=int, default=256)
  p.add_argument('--steps', type=int, default=20, help='steps per timed chunk')
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--devices', default='1,2,4,8')
  args = p.parse_args()
  root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
  for n in (int(d) for d in args.devices.split(',')):
    code = _CHILD.format(root=root, arch=args.arch, batch=args.batch_size, steps=args.steps,
                         repeats=args.repeats)
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={n}')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout
    print(json.dumps(json.loads(out.strip().splitlines()[-1])), flush=True)


if __name__ == '__main__':
  main()

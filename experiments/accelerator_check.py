"""The accelerator check: the user's path (2-epoch runs, sample, export) on
whatever jax device is present, one JSON line per measurement.

  TFDS_DATA_DIR=../shared/tfds python experiments/accelerator_check.py [--limit=N]

For each network (mlp_bn, mlp_wide, dcgan) in float32 and bfloat16, a 2-epoch
run through `trainer.train_and_evaluate` with the run's defaults (batch 32,
evaluation at epoch 2), then `--mode=sample` and `--mode=export` (without the
CAS) of `--num_samples` images from the first run. Each JSON line has the
network, dtype, device, images/s of epoch 2, epoch 2's seconds, the compile
time (epoch 1's seconds less epoch 2's: the first epoch compiles), and the
device's peak memory so far (None where jax reports none, as on CPU). Runs in
a temporary folder; within 5 minutes on a GPU with the full training split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NETWORKS = ('mlp_bn', 'mlp_wide', 'dcgan')
DTYPES = ('float32', 'bfloat16')


def _peak_memory(jax) -> int | None:
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get('peak_bytes_in_use')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--limit', type=int, default=None,
                      help='training images (default: the whole split; tests: a few hundred)')
  parser.add_argument('--num_samples', type=int, default=10_000,
                      help='images of --mode=sample and --mode=export')
  parser.add_argument('--networks', default=','.join(NETWORKS), help='comma-separated')
  parser.add_argument('--dtypes', default=','.join(DTYPES), help='comma-separated')
  args = parser.parse_args()
  from gan_jax import xla_setup
  xla_setup.use_fast_cpu_settings()
  import jax
  from gan_jax import export, files, input_pipeline, sampling, trainer
  from gan_jax.config import Config
  data_dir = input_pipeline.resolve_data_dir(None)
  device = f'{jax.default_backend()}: {jax.devices()[0].device_kind} x {jax.device_count()}'
  root = tempfile.mkdtemp(prefix='gan_jax-accelerator-check-')
  first = None
  for arch in args.networks.split(','):
    for dtype in args.dtypes.split(','):
      workdir = os.path.join(root, f'{arch}-{dtype}')
      config = Config(arch=arch, dtype=dtype, epochs=2, save_interval=2, limit=args.limit,
                      eval_samples=min(5000, args.limit or 5000), workdir=workdir,
                      data_dir=data_dir, progress=False)
      t0 = time.time()
      trainer.train_and_evaluate(config, log=lambda *_: None)
      epochs = files.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
      print(json.dumps({
          'network': arch, 'dtype': dtype, 'device': device,
          'images_per_s': epochs[1]['images_per_s'], 'epoch_s': epochs[1]['seconds'],
          'compile_s': round(max(0.0, epochs[0]['seconds'] - epochs[1]['seconds']), 2),
          'run_s': round(time.time() - t0, 1), 'peak_memory_bytes': _peak_memory(jax),
          'training_images': args.limit or 60_000}), flush=True)
      first = first or config
  for mode in ('sample', 'export'):
    t0 = time.time()
    if mode == 'sample':
      sampling.sample_from_run(first.replace(num_samples=args.num_samples,
                                             sample_dir=os.path.join(root, 'samples')),
                               log=lambda *_: None)
    else:
      export.export_from_run(first.replace(num_samples=args.num_samples, cas=False,
                                           export_dir=os.path.join(root, 'export')),
                             log=lambda *_: None)
    print(json.dumps({'mode': mode, 'network': first.arch, 'dtype': first.dtype,
                      'device': device, 'images': args.num_samples,
                      'seconds': round(time.time() - t0, 1),
                      'peak_memory_bytes': _peak_memory(jax)}), flush=True)


if __name__ == '__main__':
  main()

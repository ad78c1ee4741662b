"""The augmentation check of a finished conditional run at several ratios of
synthetic to real images, to choose --synthetic_per_real.

  TFDS_DATA_DIR=../shared/tfds python experiments/synthetic_ratio.py \\
      --workdir=RUN [--ratios=1,3,10,30]

For the run's last checkpoint and its own real training images (its
--train_examples, --limit or the whole split), draws ratio x N new images
(every class equally, from the run's `final` key stream) and runs
`augmentation_check.check` on them; prints one JSON line per ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', required=True, help='a finished conditional run')
  parser.add_argument('--ratios', default='1,3,10,30',
                      help='synthetic images per real one, comma-separated')
  args = parser.parse_args()
  from gan_jax import xla_setup
  xla_setup.use_fast_cpu_settings()
  import jax
  import numpy as np
  from gan_jax import augmentation_check, datasets, input_pipeline, sampling
  from gan_jax.config import Config
  state, run_config, epoch = sampling.load_latest_run(Config(workdir=args.workdir), log=print)
  if not run_config.conditional:
    sys.exit('error: the run is unconditional; the check needs requested labels')
  data_dir = input_pipeline.resolve_data_dir(os.environ.get('TFDS_DATA_DIR')
                                             or run_config.data_dir)
  real, _ = input_pipeline.training_split(run_config.dataset, data_dir, run_config.limit,
                                          run_config.train_examples, run_config.seed)
  test = input_pipeline.load_split(run_config.dataset, 'test', data_dir)
  variables = sampling.inference_variables(state)
  key = jax.random.fold_in(sampling.keys(run_config.seed)['final'], 7)
  for ratio in (float(r) for r in args.ratios.split(',')):
    n = augmentation_check.synthetic_count(len(real.images), ratio, 10**7)
    labels = np.arange(n) % datasets.NUM_CLASSES
    images = sampling.generate(state, sampling.sample_noise(key, n, run_config.noise_dim),
                               labels, variables=variables)
    result = augmentation_check.check(run_config.dataset, real.images, real.labels, images,
                                      labels, test.images, test.labels, log=lambda *_: None)
    print(json.dumps({'workdir': args.workdir, 'epoch': epoch, 'ratio': ratio, **result}),
          flush=True)


if __name__ == '__main__':
  main()

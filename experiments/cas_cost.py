"""What the CAS adds to a conditional run: `cas.score` on 10,000 labelled images.

  TFDS_DATA_DIR=../shared/tfds python experiments/cas_cost.py [--n=10000] [--shuffle]

Real training images stand in for generated ones (the cost is the same: two
trainings of the classifier's CNN on n images, the real test split loaded);
--shuffle shuffles their labels, which a CAS must punish.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import xla_setup  # noqa: E402

xla_setup.use_fast_cpu_settings()

import numpy as np  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--n', type=int, default=10_000, help='labelled images to score')
  parser.add_argument('--shuffle', action='store_true', help='shuffle their labels first')
  args = parser.parse_args()
  from gan_jax import cas, input_pipeline
  data_dir = input_pipeline.resolve_data_dir(None)
  # Images after the first n: not the ones the comparison CNN is trained on.
  data = input_pipeline.load_split('mnist', 'train', data_dir, limit=2 * args.n)
  images, labels = data.images[args.n:], data.labels[args.n:]
  if args.shuffle:
    labels = np.random.default_rng(0).permutation(labels)
  t0, cpu0 = time.time(), time.process_time()
  result = cas.score('mnist', images, labels, data_dir)
  print(f'{result} | {time.time() - t0:.1f}s wall, {time.process_time() - cpu0:.1f} CPU-s, '
        f'load average {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  main()

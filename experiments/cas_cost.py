"""What the CAS adds to a conditional run: `cas.score` on 10,000 labelled images.

  TFDS_DATA_DIR=../shared/tfds python experiments/cas_cost.py [--n=10000] [--shuffle]

Real training images stand in for generated ones (the cost is the same: two
trainings of the classifier's CNN on n images, the real test split loaded);
--shuffle shuffles their labels, which a CAS must punish.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import xla_setup  # noqa: E402

xla_setup.use_fast_cpu_settings()

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer('n', 10_000, 'Labelled images to score.')
flags.DEFINE_bool('shuffle', False, 'Shuffle their labels first.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from gan_jax import cas, input_pipeline
  data_dir = input_pipeline.resolve_data_dir(None)
  # Images after the first n: not the ones the comparison CNN is trained on.
  data = input_pipeline.load_split('mnist', 'train', data_dir, limit=2 * FLAGS.n)
  images, labels = data.images[FLAGS.n:], data.labels[FLAGS.n:]
  if FLAGS.shuffle:
    labels = np.random.default_rng(0).permutation(labels)
  t0, cpu0 = time.time(), time.process_time()
  result = cas.score('mnist', images, labels, data_dir)
  print(f'{result} | {time.time() - t0:.1f}s wall, {time.process_time() - cpu0:.1f} CPU-s, '
        f'load average {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  app.run(main)

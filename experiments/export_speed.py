"""Times --mode=export of 60,000 images (CAS off), and each of its parts.

  TFDS_DATA_DIR=../shared/tfds python experiments/export_speed.py \
      --workdir=/tmp/export_bench [--epochs=1] [--conditional] [--num_samples=60000]

Trains a short run in --workdir first when it holds none (its quality does not
change the export's cost), then exports twice into a fresh folder and prints
the wall time of the whole export and of each stage.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import xla_setup  # noqa: E402

xla_setup.use_fast_cpu_settings()

from absl import app, flags  # noqa: E402

flags.DEFINE_string('workdir', '/tmp/export_bench', 'The run to export (trained if missing).')
flags.DEFINE_integer('epochs', 1, 'Epochs of the run trained when --workdir holds none.')
flags.DEFINE_bool('conditional', False, 'Train/export a conditional run.')
flags.DEFINE_integer('num_samples', 60000, 'Images to export.')
FLAGS = flags.FLAGS


def _timed(stages: dict[str, float], name: str, fn):
  """Wraps `fn` so each call adds its wall time to stages[name]."""
  def wrapper(*args, **kwargs):
    t0 = time.time()
    try:
      return fn(*args, **kwargs)
    finally:
      stages[name] = stages.get(name, 0.0) + time.time() - t0
  return wrapper


def main(argv):
  del argv
  from gan_jax import checkpoints, export, trainer
  from gan_jax.config import Config
  config = Config(workdir=FLAGS.workdir, epochs=FLAGS.epochs, save_interval=FLAGS.epochs,
                  conditional=FLAGS.conditional, progress=False,
                  data_dir=os.environ.get('TFDS_DATA_DIR'))
  if not checkpoints.has_checkpoint(FLAGS.workdir):
    trainer.train_and_evaluate(config, log=lambda *_: None)
  stages: dict[str, float] = {}
  for name in ('draw', 'set_quality', 'write_folder', 'install'):
    setattr(export, name, _timed(stages, name, getattr(export, name)))
  dest = os.path.join(FLAGS.workdir, 'bench_export')
  for attempt in (1, 2):
    stages.clear()
    shutil.rmtree(dest, ignore_errors=True)
    t0, cpu0 = time.time(), time.process_time()
    export.export_from_run(config.replace(num_samples=FLAGS.num_samples, export_dir=dest,
                                          cas=False))
    total, cpu = time.time() - t0, time.process_time() - cpu0
    parts = ', '.join(f'{k} {v:.1f}s' for k, v in stages.items())
    print(f'attempt {attempt}: {FLAGS.num_samples:,} images in {total:.1f}s wall, '
          f'{cpu:.1f} CPU-s, load average {os.getloadavg()[0]:.1f} ({parts}; the rest: '
          'loading the run and the classifier)')


if __name__ == '__main__':
  app.run(main)

"""Times --mode=export of 60,000 images (CAS off), and each of its parts.

  TFDS_DATA_DIR=../shared/tfds python experiments/export_speed.py \\
      --workdir=/tmp/export_bench [--epochs=1] [--conditional] [--num_samples=60000]

Trains a short run in --workdir first when it holds none (its quality does not
change the export's cost), then exports twice into a fresh folder and prints
the wall time of the whole export; then times each stage alone (load, draw,
quality figures, files), one after another.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import xla_setup  # noqa: E402

xla_setup.use_fast_cpu_settings()



def _stages(config, log) -> dict[str, float]:
  """Each stage of an export run alone, one after another, through the
  package's own functions (inside `export_from_run` the quality figures
  overlap the files in a thread)."""
  import tempfile
  from gan_jax import classifier_store, datasets, export, input_pipeline, sampling, serialize
  seconds = {}
  t = time.time()
  state, run_config, _ = sampling.load_latest_run(config, log)
  stored = classifier_store.load_or_train(run_config.dataset, config.data_dir, None, log=log)
  seconds['load'] = time.time() - t
  t = time.time()
  drawn = export.draw(state, run_config, config, stored.classifier)
  seconds['draw'] = time.time() - t
  t = time.time()
  test = input_pipeline.load_split(run_config.dataset, 'test', config.data_dir,
                                   limit=export.MEMORISATION_SAMPLE)
  export.set_quality(drawn, stored, run_config, config.data_dir, test.images)
  seconds['set_quality'] = time.time() - t
  t = time.time()
  with tempfile.TemporaryDirectory(dir=config.workdir) as tmp:
    export.write_folder(tmp, drawn, list(datasets.get(run_config.dataset).class_names),
                        serialize.export_generator(state).serialize())
    seconds['write_folder'] = time.time() - t
  return seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='/tmp/export_bench',
                      help='the run to export (trained if missing)')
  parser.add_argument('--epochs', type=int, default=1,
                      help='epochs of the run trained when --workdir holds none')
  parser.add_argument('--conditional', action='store_true', help='train/export a conditional run')
  parser.add_argument('--num_samples', type=int, default=60000, help='images to export')
  args = parser.parse_args()
  from gan_jax import checkpoints, export, trainer
  from gan_jax.config import Config
  config = Config(workdir=args.workdir, epochs=args.epochs, save_interval=args.epochs,
                  conditional=args.conditional, progress=False,
                  data_dir=os.environ.get('TFDS_DATA_DIR'))
  if not checkpoints.has_checkpoint(args.workdir):
    trainer.train_and_evaluate(config, log=lambda *_: None)
  dest = os.path.join(args.workdir, 'bench_export')
  export_config = config.replace(num_samples=args.num_samples, export_dir=dest, cas=False)
  for attempt in (1, 2):
    shutil.rmtree(dest, ignore_errors=True)
    t0, cpu0 = time.time(), time.process_time()
    export.export_from_run(export_config)
    total, cpu = time.time() - t0, time.process_time() - cpu0
    print(f'attempt {attempt}: {args.num_samples:,} images in {total:.1f}s wall, '
          f'{cpu:.1f} CPU-s, load average {os.getloadavg()[0]:.1f}')
  parts = ', '.join(f'{k} {v:.1f}s' for k, v in _stages(export_config, print).items())
  print(f'each stage alone: {parts}')


if __name__ == '__main__':
  main()

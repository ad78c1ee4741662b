"""Precision and recall of each class of a conditional run, beside real data's.

For the run's final checkpoint: for each class k, improved precision and
recall (k = 3 neighbours, the domain classifier's features) of N images
generated for k against N real training images of class k, and, as the
reference, N real test images of class k against the same training images.
The overall figures of a run compare 5,000 images of every class at once; a
class's own shows which classes the generator draws too few kinds of.

Usage:
  TFDS_DATA_DIR=../shared/tfds python experiments/recall_per_class.py --workdir=RUN \
      [--n=1000] [--noise_scale=1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from gan_jax import xla_setup  # pylint: disable=g-import-not-at-top

xla_setup.use_fast_cpu_settings()  # Before jax is imported.

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gan_jax import datasets, evaluate, input_pipeline, quality, sampling  # pylint: disable=g-import-not-at-top
from gan_jax.config import Config  # pylint: disable=g-import-not-at-top


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--n', type=int, default=1000, help='images per class and set')
  parser.add_argument('--noise_scale', type=float, default=1.0)
  args = parser.parse_args()
  state, run_config, epoch = sampling.load_latest_run(Config(workdir=args.workdir),
                                                      log=lambda *_: None)
  if not run_config.conditional:
    sys.exit(f'{args.workdir} holds an unconditional run; this compares the classes '
             'a conditional generator was asked for')
  data_dir = input_pipeline.resolve_data_dir(run_config.data_dir)
  evaluator = evaluate.Evaluator(run_config.replace(data_dir=data_dir), lambda *_: None)
  features = evaluator.classifier.features
  train_split = input_pipeline.load_split(run_config.dataset, 'train', data_dir)
  test_split = input_pipeline.load_split(run_config.dataset, 'test', data_dir)
  key = jax.random.fold_in(sampling.keys(run_config.seed)['eval'], epoch)
  names = datasets.get(run_config.dataset).class_names
  rows = []
  for c in range(datasets.NUM_CLASSES):
    z = sampling.sample_noise(jax.random.fold_in(key, c), args.n, state.noise_dim,
                           args.noise_scale)
    generated = features(sampling.generate(state, z, np.full(args.n, c)))
    real = features(train_split.images[train_split.labels == c][:args.n])
    test = features(test_split.images[test_split.labels == c][:args.n])
    precision, recall = quality.precision_recall(real, generated)
    real_precision, real_recall = quality.precision_recall(real, test)
    rows.append({'class': c, 'name': names[c], 'precision': round(precision, 3),
                 'recall': round(recall, 3), 'real_precision': round(real_precision, 3),
                 'real_recall': round(real_recall, 3)})
    print(json.dumps(rows[-1]), flush=True)
  print(json.dumps({'workdir': args.workdir, 'epoch': epoch, 'n': args.n,
                    'noise_scale': args.noise_scale,
                    **{k: round(float(np.mean([r[k] for r in rows])), 3)
                       for k in ('precision', 'recall', 'real_precision', 'real_recall')}}))


if __name__ == '__main__':
  main()

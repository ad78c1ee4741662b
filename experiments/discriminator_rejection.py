"""Discriminator rejection: a conditional run's images drawn with wider noise,
keeping in each class those its discriminator finds most real.

Wider noise (`--noise_scale`) trades precision for recall; keeping the
images with the highest real/fake logit (in the spirit of discriminator
rejection sampling, Azadi et al. 2019) might buy the precision back. For each
noise scale and kept share this prints, as JSON lines, the precision and
recall (k = 3, classifier features, against 5,000 real training images) of
5,000 kept images, 500 a class, and the domain classifier's agreement with
the requested class.

Usage:
  python experiments/discriminator_rejection.py --workdir=RUN [--scales=1,1.5,2] [--keeps=1,0.7,0.5]
Data from $TFDS_DATA_DIR (or --data_dir); the classifier the run used.
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

from gan_jax import (classifier_store, datasets, feature_cache, input_pipeline,  # pylint: disable=g-import-not-at-top
                     quality, train, trainer)
from gan_jax.config import Config  # pylint: disable=g-import-not-at-top

KEPT = 5000


def realness(state: train.GANState, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 1000) -> np.ndarray:
  """The discriminator's real/fake logit of each (image, label)."""
  d = state.discriminator
  logit = jax.jit(lambda x, y: d.apply_fn({'params': d.params}, x, y, train=False)[0])
  return np.concatenate([np.asarray(logit(images[i:i + batch_size], labels[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


def most_real(logits: np.ndarray, labels: np.ndarray, keep: float) -> np.ndarray:
  """Indices of KEPT images, KEPT / C of each class: the best-scored `keep`
  share of that class's first (KEPT / C) / keep images."""
  per_class = KEPT // datasets.NUM_CLASSES
  chosen = []
  for c in range(datasets.NUM_CLASSES):
    candidates = np.flatnonzero(labels == c)[:int(round(per_class / keep))]
    chosen.append(candidates[np.argsort(-logits[candidates], kind='stable')[:per_class]])
  return np.concatenate(chosen)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--scales', default='1,1.5,2', help='noise scales, comma-separated')
  parser.add_argument('--keeps', default='1,0.7,0.5', help='shares kept, comma-separated')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  scales = [float(s) for s in args.scales.split(',')]
  keeps = [float(k) for k in args.keeps.split(',')]
  state, run_config, epoch = trainer.load_latest_run(Config(workdir=args.workdir))
  if not run_config.conditional:
    sys.exit(f'{args.workdir}: not a conditional run')
  data_dir = input_pipeline.resolve_data_dir(args.data_dir or run_config.data_dir)
  stored = classifier_store.load_or_train(run_config.dataset, data_dir, progress=False,
                                          log=lambda *_: None)
  train_feats, train_labels = feature_cache.training_features(
      stored.classifier, stored.meta['params_sha256'], run_config.dataset, data_dir)
  real = quality.real_features(train_feats, train_labels).sample
  n = -(-int(np.ceil(KEPT / min(keeps))) // datasets.NUM_CLASSES) * datasets.NUM_CLASSES
  labels = np.arange(n) % datasets.NUM_CLASSES
  for scale in scales:
    z = train.sample_noise(jax.random.PRNGKey(args.seed), n, run_config.noise_dim, scale)
    images = train.generate(state, z, labels)
    logits = realness(state, images, labels)
    feats, probs = stored.classifier.features_and_probs(images)
    for keep in keeps:
      kept = most_real(logits, labels, keep)
      precision, recall = quality.precision_recall(real, feats[kept])
      print(json.dumps({'workdir': args.workdir, 'epoch': epoch, 'noise_scale': scale,
                        'kept_share': keep, 'precision': round(precision, 3),
                        'recall': round(recall, 3),
                        'agreement': round(float(np.mean(probs[kept].argmax(1) == labels[kept])),
                                           3)}), flush=True)


if __name__ == '__main__':
  main()

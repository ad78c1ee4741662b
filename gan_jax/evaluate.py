"""A run's evaluations: the quality of new images every `save_interval`
epochs, and the final checks (memorisation, a conditional run's CAS), all
scored by the domain classifier (shipped, or the user's own).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import numpy as np

from gan_jax import datasets, input_pipeline, quality, sampling, train
from gan_jax.config import Config

Log = Callable[[str], None]

# Generated images of the final checks: memorisation, and a conditional run's CAS.
MEMORISATION_IMAGES = 1000
CAS_IMAGES = 10_000


class Evaluator:
  """The domain classifier of a run's dataset, and what it measures."""

  def __init__(self, config: Config, log: Log):
    from gan_jax import classifier_store
    self.config = config
    self.stored = classifier_store.load_or_train(
        config.dataset, config.data_dir, config.classifier_dir,
        retrain=config.retrain_classifier, progress=config.progress, log=log)
    self.classifier = self.stored.classifier
    self.reference_stats = self.stored.reference
    self.reference = self.reference_stats.summary()  # Scalars, for JSON and plots.
    self.real = None  # quality.RealFeatures, once `use_training_data` has run.

  def use_training_data(self, data: input_pipeline.Split) -> None:
    """Classifier features of the real training images: precision, recall and
    per-class FD at every evaluation, the memorisation check at the end."""
    self.train_images, self.train_labels = data.images, data.labels
    self.train_features = self.classifier.features(data.images)
    self.real = quality.real_features(self.train_features, data.labels,
                                      self.classifier.num_classes)

  def quality(self, state: train.GANState, key: jax.Array, n: int,
              variables: dict[str, Any] | None = None) -> dict[str, float]:
    """FD, IS, ... of n new images. A conditional GAN's are asked for every
    class equally and generated one class at a time (single-class batches, as
    ``--mode=sample --label=k`` makes them), and scored for label agreement."""
    z = np.asarray(sampling.sample_noise(key, n, state.noise_dim))
    if not state.num_classes:
      generated, labels = sampling.generate(state, z, variables=variables), None
    else:
      labels = np.sort(np.arange(n) % state.num_classes)
      generated = np.concatenate([
          sampling.generate(state, z[labels == c], labels[labels == c], variables=variables)
          for c in range(state.num_classes)])
    return quality.evaluate(self.classifier, generated, self.reference_stats,
                            requested_labels=labels, real=self.real)

  def final_checks(self, out: str, final: np.ndarray, key: jax.Array,
                   state: train.GANState, variables: dict[str, Any], log: Log
                   ) -> dict[str, Any]:
    """The memorisation check (nearest_train.png in `out`, and its ratio) and,
    for a conditional run unless --nocas, the CAS of CAS_IMAGES images drawn
    from `key`; {} without training features."""
    from gan_jax import cas, memorisation
    config = self.config
    if self.real is None:
      return {}
    n = CAS_IMAGES if config.conditional else MEMORISATION_IMAGES
    requested = (np.arange(n) % self.classifier.num_classes) if config.conditional else None
    generated = sampling.generate(state, sampling.sample_noise(key, n, config.noise_dim), requested,
                               variables=variables)
    test = input_pipeline.load_split(config.dataset, 'test', config.data_dir,
                                     limit=MEMORISATION_IMAGES)
    memorisation.save_nearest_grid(os.path.join(out, 'nearest_train.png'), final,
                                   self.classifier.features(final), self.train_images,
                                   self.train_features)
    checks = memorisation.check(
        self.classifier.features(generated[:MEMORISATION_IMAGES]),
        self.classifier.features(test.images), self.train_features)
    if checks['memorisation_ratio'] is not None:
      log(f'Memorisation ratio {checks["memorisation_ratio"]:.2f} (about 1: no copies of '
          'training images; nearest_train.png shows the nearest ones)')
    if config.train_examples is not None:  # Beside the N images, the whole split's.
      checks.update(self._whole_split_precision_recall(generated))
    if config.conditional and config.cas:
      checks['cas'] = cas.score(config.dataset, generated, requested, config.data_dir, log=log)
      c = checks['cas']
      log(f'CAS {c["cas"]:.2%} on the real test split (the same CNN trained on '
          f'{c["real_images"]:,} real images: {c["cas_real"]:.2%})'
          f'{cas.worst_class_text(c, config.dataset)}')
      checks['augmentation'] = self._augmentation_check(jax.random.fold_in(key, 1), state,
                                                        variables, log)
    return checks

  def _whole_split_precision_recall(self, generated: np.ndarray) -> dict[str, float]:
    """Precision and recall against the whole training split (a run on
    --train_examples measures them against its N images at each evaluation)."""
    from gan_jax import feature_cache
    config = self.config
    features, labels = feature_cache.training_features(
        self.classifier, self.stored.meta['params_sha256'], config.dataset, config.data_dir)
    real = quality.real_features(features, labels, self.classifier.num_classes)
    precision, recall = quality.precision_recall(
        real.sample, self.classifier.features(generated[:quality.REAL_SAMPLE]))
    return {'precision_whole_split': precision, 'recall_whole_split': recall}

  def _augmentation_check(self, key: jax.Array, state: train.GANState,
                          variables: dict[str, Any], log: Log) -> dict[str, Any]:
    """`augmentation_check.check` of `config.synthetic_per_real` new images
    per training image, every class equally."""
    from gan_jax import augmentation_check
    from gan_jax import config as config_lib
    config = self.config
    n = augmentation_check.synthetic_count(len(self.train_images), config.synthetic_per_real,
                                           config_lib.MAX_SYNTHETIC)
    labels = np.arange(n) % self.classifier.num_classes
    images = sampling.generate(state, sampling.sample_noise(key, n, config.noise_dim), labels,
                               variables=variables)
    test = input_pipeline.load_split(config.dataset, 'test', config.data_dir)
    result = augmentation_check.check(config.dataset, self.train_images, self.train_labels,
                                      images, labels, test.images, test.labels, log=log)
    log(f'Augmentation check (real test split): {augmentation_check.text(result)}')
    return result


def quality_text(q: dict[str, Any], reference: dict[str, Any], config: Config) -> str:
  """The quality line: each figure of the evaluation with its label and format
  (`quality.METRICS`), IS beside the real data's, the worst class by name."""
  metrics = quality.METRICS
  parts = []
  for key in ('fd', 'is', 'classes_covered', 'mean_confidence', 'label_agreement',
              'precision', 'recall'):
    if q.get(key) is not None:
      parts.append(metrics[key].text(q[key]))
  parts[1] += f' (real {reference["is"]:.2f})'
  parts[2] += f'/{datasets.get(config.dataset).num_classes}'
  if q.get('worst_class') is not None:
    c = q['worst_class']
    name = datasets.get(config.dataset).class_names[c]
    fd = f'{metrics["fd"].label} {q["fd_per_class"][c]:{metrics["fd_per_class"].fmt}}'
    parts.append(f'{metrics["worst_class"].label} {name} ({fd})')
  return ' | '.join(parts)

"""The augmentation check: do the synthetic images add accuracy to the real
ones a user has?

The domain classifier's CNN and recipe (`classifier.fit`) is trained three
times, each for the same fixed number of steps (so that the sizes of the
sets do not change how long it trains), and tested on the real test split:
(a) on the run's real training images alone, (b) on those plus the
synthetic set, (c) on the real images with random shifts, the classic
augmentation a user would try first, and (d) on the real and synthetic
images with the same shifts. The gains of (b) over (a) and over (c), and of
(d) over (c), are what the synthetic set is worth.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from gan_jax import classifier as classifier_lib
from gan_jax import datasets

Log = Callable[[str], None]

STEPS = 1500  # Training steps of each classifier, whatever the size of its set.
SHIFT = 2     # (c): random translations of up to this many pixels.


def synthetic_count(real_images: int, per_real: float, maximum: int) -> int:
  """How many synthetic images go with `real_images` real ones."""
  return int(min(round(per_real * real_images), maximum))


def _accuracy(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray,
              test_labels: np.ndarray, dataset: str, max_shift: int = 0) -> float:
  config = classifier_lib.TrainConfig(steps=STEPS, max_shift=max_shift)
  params = classifier_lib.fit(images, labels, config, progress=False, log=lambda *_: None,
                              num_classes=datasets.get(dataset).num_classes)
  predicted = classifier_lib.Classifier(params, dataset).predict(test_images)
  return float(np.mean(predicted == np.asarray(test_labels)))


def check(dataset: str, real_images: np.ndarray, real_labels: np.ndarray,
          synthetic_images: np.ndarray, synthetic_labels: np.ndarray,
          test_images: np.ndarray, test_labels: np.ndarray, log: Log = print
          ) -> dict[str, Any]:
  """The four accuracies and the gains (fractions in [0, 1]; gains may be < 0).

  Returns:
    {'real', 'real_plus_synthetic', 'real_shifted', 'real_plus_synthetic_shifted',
    'gain' (b - a), 'gain_over_shifts' (b - c), 'gain_with_shifts' (d - c),
    'real_images', 'synthetic_images', 'test_images', 'steps', 'seconds'}.
  """
  t0 = time.time()
  log(f'Augmentation check: the classifier CNN trained {STEPS} steps on the '
      f'{len(real_images):,} real training images, then with {len(synthetic_images):,} '
      'synthetic ones added, on the real ones with random shifts, and on both with them')
  both_images = np.concatenate([real_images, synthetic_images])
  both_labels = np.concatenate([real_labels, synthetic_labels]).astype(np.int32)
  real = _accuracy(real_images, real_labels, test_images, test_labels, dataset)
  mixed = _accuracy(both_images, both_labels, test_images, test_labels, dataset)
  shifted = _accuracy(real_images, real_labels, test_images, test_labels, dataset, SHIFT)
  mixed_shifted = _accuracy(both_images, both_labels, test_images, test_labels, dataset, SHIFT)
  return {'real': real, 'real_plus_synthetic': mixed, 'real_shifted': shifted,
          'real_plus_synthetic_shifted': mixed_shifted,
          'gain': mixed - real, 'gain_over_shifts': mixed - shifted,
          'gain_with_shifts': mixed_shifted - shifted,
          'real_images': len(real_images), 'synthetic_images': len(synthetic_images),
          'test_images': len(test_images), 'steps': STEPS,
          'seconds': round(time.time() - t0, 1)}


def text(result: dict[str, Any]) -> str:
  """'real 91.2% | + 10,000 synthetic 94.0% (+2.8, +1.1 over shifts) | real with
  shifts 92.9% | both with shifts 94.5% (+1.6)'."""
  return (f'real {result["real"]:.1%} | + {result["synthetic_images"]:,} synthetic '
          f'{result["real_plus_synthetic"]:.1%} ({100 * result["gain"]:+.1f}, '
          f'{100 * result["gain_over_shifts"]:+.1f} over shifts) | real with shifts '
          f'{result["real_shifted"]:.1%} | both with shifts '
          f'{result["real_plus_synthetic_shifted"]:.1%} '
          f'({100 * result["gain_with_shifts"]:+.1f})')

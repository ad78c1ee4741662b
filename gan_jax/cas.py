"""The Classification Accuracy Score (Ravuri & Vinyals 2019).

A set of labelled generated images is as useful as a classifier trained on it:
the domain classifier's CNN (`gan_jax.classifier`) is trained from scratch on
the synthetic set with the shipped classifier's recipe, and its accuracy on the
real test split is the CAS. The same CNN trained on as many real training
images gives the figure to compare with (`cas_real`).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from gan_jax import classifier as classifier_lib
from gan_jax import datasets, input_pipeline

Log = Callable[[str], None]


def accuracy_of_training_on(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray,
                            test_labels: np.ndarray, dataset: str) -> float:
  """Test accuracy of the CNN trained from scratch on (images, labels) with the
  shipped classifier's recipe for `dataset`."""
  config = classifier_lib.default_train_config(dataset)
  params = classifier_lib.fit(images, labels, config, progress=False, log=lambda *_: None)
  clf = classifier_lib.Classifier(params, dataset)
  return clf.accuracy(test_images, test_labels)


def score(dataset: str, images: np.ndarray, labels: np.ndarray, data_dir: str,
          log: Log = print) -> dict[str, Any]:
  """CAS of labelled images (N, 28, 28, 1) in [-1, 1], beside the same CNN
  trained on the first N real training images; both tested on the real test split.

  Returns:
    {'cas', 'cas_real', 'images', 'test_images', 'seconds'}.
  """
  t0 = time.time()
  n = len(images)
  test = input_pipeline.load_split(dataset, 'test', data_dir)
  real = input_pipeline.load_split(dataset, 'train', data_dir, limit=n)
  log(f'CAS: training the classifier CNN on {n:,} generated images, then on {n:,} '
      'real ones')
  cas = accuracy_of_training_on(images, labels, test.images, test.labels, dataset)
  cas_real = accuracy_of_training_on(real.images, real.labels, test.images, test.labels,
                                     dataset)
  return {'cas': cas, 'cas_real': cas_real, 'images': n, 'real_images': len(real.images),
          'test_images': len(test.images), 'seconds': round(time.time() - t0, 1)}

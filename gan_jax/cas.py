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


def predictions_of_training_on(images: np.ndarray, labels: np.ndarray,
                               test_images: np.ndarray, dataset: str) -> np.ndarray:
  """The test images' labels as predicted by the CNN trained from scratch on
  (images, labels) with the shipped classifier's recipe for `dataset`."""
  config = classifier_lib.default_train_config(dataset)
  params = classifier_lib.fit(images, labels, config, progress=False, log=lambda *_: None,
                              num_classes=datasets.get(dataset).num_classes)
  return classifier_lib.Classifier(params, dataset).predict(test_images)


def accuracy_of_training_on(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray,
                            test_labels: np.ndarray, dataset: str) -> float:
  """Test accuracy of the CNN trained from scratch on (images, labels)."""
  predicted = predictions_of_training_on(images, labels, test_images, dataset)
  return float(np.mean(predicted == np.asarray(test_labels)))


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray,
                       num_classes: int = datasets.NUM_CLASSES) -> list[float]:
  """The accuracy on the test images of each class 0 .. num_classes-1."""
  labels = np.asarray(labels)
  return [float(np.mean(predicted[labels == c] == c)) for c in range(num_classes)]


def score(dataset: str, images: np.ndarray, labels: np.ndarray, data_dir: str,
          log: Log = print) -> dict[str, Any]:
  """CAS of labelled images (N, 28, 28, 1) in [-1, 1], beside the same CNN
  trained on the first N real training images; both tested on the real test
  split, overall and per class.

  Returns:
    {'cas', 'cas_real', 'cas_per_class', 'cas_real_per_class', 'worst_class'
    (the class furthest below its real-trained accuracy), 'images',
    'real_images', 'test_images', 'seconds'}.
  """
  t0 = time.time()
  n = len(images)
  test = input_pipeline.load_split(dataset, 'test', data_dir)
  real = input_pipeline.load_split(dataset, 'train', data_dir, limit=n)
  log(f'CAS: training the classifier CNN on {n:,} generated images, then on {n:,} '
      'real ones')
  synthetic = predictions_of_training_on(images, labels, test.images, dataset)
  reference = predictions_of_training_on(real.images, real.labels, test.images, dataset)
  k = datasets.get(dataset).num_classes
  per_class = per_class_accuracy(synthetic, test.labels, k)
  real_per_class = per_class_accuracy(reference, test.labels, k)
  gaps = np.subtract(real_per_class, per_class)
  return {'cas': float(np.mean(synthetic == test.labels)),
          'cas_real': float(np.mean(reference == test.labels)),
          'cas_per_class': per_class, 'cas_real_per_class': real_per_class,
          'worst_class': int(np.argmax(gaps)),
          'images': n, 'real_images': len(real.images),
          'test_images': len(test.images), 'seconds': round(time.time() - t0, 1)}


def worst_class_text(result: dict[str, Any], dataset: str) -> str:
  """', furthest below its real-trained accuracy: Shirt (61.0% against 70.2%)'."""
  k = result['worst_class']
  return (f', furthest below its real-trained accuracy: {datasets.get(dataset).class_names[k]} '
          f'({result["cas_per_class"][k]:.1%} against {result["cas_real_per_class"][k]:.1%})')

"""The Classification Accuracy Score: the classifier CNN trained on a labelled
set and tested on real test images."""

import numpy as np
import pytest

from gan_jax import cas, input_pipeline


@pytest.mark.slow
def test_real_images_score_far_above_chance_and_shuffled_labels_near_it(data_dir):
  train = input_pipeline.load_split('mnist', 'train', data_dir, limit=1000)
  test = input_pipeline.load_split('mnist', 'test', data_dir, limit=1000)
  right = cas.accuracy_of_training_on(train.images, train.labels, test.images, test.labels,
                                      'mnist')
  shuffled = np.random.default_rng(0).permutation(train.labels)
  wrong = cas.accuracy_of_training_on(train.images, shuffled, test.images, test.labels,
                                      'mnist')
  assert right > 0.7, right
  assert 0.03 < wrong < 0.2, wrong


def test_per_class_accuracy_names_each_class():
  labels = np.repeat(np.arange(10), 10)
  predicted = labels.copy()
  predicted[labels == 3] = 0  # Class 3 always wrong, class 7 half wrong.
  predicted[np.flatnonzero(labels == 7)[:5]] = 1
  accuracy = cas.per_class_accuracy(predicted, labels)
  assert accuracy[3] == 0.0 and accuracy[7] == 0.5
  assert [a for c, a in enumerate(accuracy) if c not in (3, 7)] == [1.0] * 8

"""The memorisation check on real MNIST with the shipped classifier: a set made
of training images is flagged, new real images are not."""

import numpy as np
import pytest

from gan_jax import classifier_store, input_pipeline, memorisation


@pytest.mark.slow
def test_copies_of_training_images_are_flagged_and_new_images_are_not(data_dir):
  clf = classifier_store.load('mnist', classifier_store.shipped_dir('mnist'),
                              shipped=True).classifier
  train = input_pipeline.load_split('mnist', 'train', data_dir, limit=4000)
  test = input_pipeline.load_split('mnist', 'test', data_dir, limit=1000)
  train_features = clf.features(train.images[:3000])
  test_features = clf.features(test.images)
  copied = memorisation.check(train_features[:500], test_features[:500], train_features)
  # Training images the 3000 do not hold stand in for a generator that copies nothing.
  fresh = memorisation.check(clf.features(train.images[3000:3500]), test_features[500:],
                             train_features)
  assert copied['memorisation_ratio'] < 0.05, copied
  assert 0.8 < fresh['memorisation_ratio'] < 1.25, fresh
  grid = memorisation.nearest_grid(train.images[:4], train_features[:4], train.images[:3000],
                                   train_features, rows=4)
  assert grid.dtype == np.uint8 and grid.shape[0] > 4 * 28 * 2
  # A training image's nearest training image is itself: the first two cells match.
  np.testing.assert_array_equal(grid[2:58, 2:58], grid[2:58, 60:116])

"""The augmentation check: real alone, real plus synthetic, real with shifts."""

import numpy as np
import pytest

from gan_jax import augmentation_check, classifier, input_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def sets(data_dir):
  real, _ = input_pipeline.training_split('mnist', data_dir, train_examples=300, seed=0)
  test = input_pipeline.load_split('mnist', 'test', data_dir, limit=2000)
  return real, test


def _check(sets, images, labels, monkeypatch):
  real, test = sets
  monkeypatch.setattr(augmentation_check, 'STEPS', 300)  # A minute of training, not three.
  return augmentation_check.check('mnist', real.images, real.labels, images, labels,
                                  test.images, test.labels, log=lambda *_: None)


def test_copies_of_the_real_images_add_about_nothing_and_shuffled_labels_hurt(
    sets, monkeypatch):
  real, _ = sets
  copies = _check(sets, np.tile(real.images, (3, 1, 1, 1)), np.tile(real.labels, 3),
                  monkeypatch)
  assert copies['synthetic_images'] == 900 and copies['steps'] == 300
  assert 0.8 < copies['real'] < 1
  # The same images in the same proportions: what changes is only which
  # batches the fixed steps draw (about a point on 2,000 test images).
  assert abs(copies['gain']) < 0.02, copies
  shuffled = np.random.default_rng(0).permutation(np.tile(real.labels, 3))
  wrong = _check(sets, np.tile(real.images, (3, 1, 1, 1)), shuffled, monkeypatch)
  # Three random labels to each right one: the right class stays the most
  # common label of each image, so the loss is a few points, well beyond the
  # noise of 2,000 test images (a standard deviation of about 0.7 points).
  assert wrong['gain'] < -0.03, wrong
  assert wrong['real'] == copies['real']  # (a) and (c) do not see the synthetic set.
  assert wrong['real_shifted'] == copies['real_shifted']
  assert wrong['gain_over_shifts'] == wrong['real_plus_synthetic'] - wrong['real_shifted']
  assert abs(copies['gain_with_shifts']) < 0.02 and wrong['gain_with_shifts'] < -0.03


def test_the_training_length_does_not_depend_on_the_size_of_the_set():
  config = classifier.TrainConfig(steps=1500)
  assert {classifier.training_steps(n, config) for n in (300, 3300, 60_000)} == {1500}
  # Without `steps`, the recipe's epochs: a bigger set trains longer.
  assert classifier.training_steps(60_000, classifier.TrainConfig(epochs=2)) == 2 * 468


def test_the_synthetic_set_follows_the_ratio_up_to_its_maximum():
  assert augmentation_check.synthetic_count(1000, 10, 60_000) == 10_000
  assert augmentation_check.synthetic_count(60_000, 10, 60_000) == 60_000

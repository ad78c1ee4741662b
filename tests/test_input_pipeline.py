"""Reading MNIST / Fashion-MNIST from the prepared TFDS folder."""

import time

import numpy as np
import pytest

from gan_jax import input_pipeline


@pytest.mark.parametrize('name', ['mnist', 'fashion'])
def test_images_are_scaled_to_minus_one_one_with_labels(data_dir, name):
  split = input_pipeline.load_split(name, 'test', data_dir, limit=500)
  assert split.images.shape == (500, 28, 28, 1) and split.images.dtype == np.float32
  assert split.images.min() == -1.0 and split.images.max() == 1.0
  assert split.labels.shape == (500,) and split.labels.dtype == np.int32
  assert set(np.unique(split.labels)) == set(range(10))


def test_full_train_split_is_read(data_dir):
  split = input_pipeline.load_split('mnist', 'train', data_dir)
  assert len(split.images) == 60000


def test_data_dir_from_environment(monkeypatch, tmp_path):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  assert input_pipeline.resolve_data_dir(None) == str(tmp_path)
  assert input_pipeline.resolve_data_dir('/x/y') == '/x/y'


def test_unprepared_data_offline_fails_fast_with_the_fix(tmp_path, monkeypatch):
  monkeypatch.setattr(input_pipeline, '_online', lambda: False)
  start = time.time()
  with pytest.raises(input_pipeline.DataUnavailableError) as e:
    input_pipeline.load_split('mnist', 'train', str(tmp_path))
  assert time.time() - start < 30
  assert '--data_dir' in str(e.value) and 'TFDS_DATA_DIR' in str(e.value)


def test_data_folder_is_the_flag_else_the_environment_else_tfds_default(monkeypatch, tmp_path):
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setenv('TFDS_DATA_DIR', '/from/env')
  assert input_pipeline.resolve_data_dir('/from/flag') == '/from/flag'
  assert input_pipeline.resolve_data_dir(None) == '/from/env'
  monkeypatch.setenv('TFDS_DATA_DIR', '')  # Empty counts as unset.
  assert input_pipeline.resolve_data_dir(None) == str(tmp_path / 'tensorflow_datasets')
  monkeypatch.delenv('TFDS_DATA_DIR')
  assert input_pipeline.resolve_data_dir(None) == str(tmp_path / 'tensorflow_datasets')


def test_train_examples_are_balanced_fixed_by_the_seed_and_in_file_order():
  labels = np.random.default_rng(0).integers(0, 10, 5000)
  chosen = input_pipeline.balanced_indices(labels, 1000, seed=0)
  assert len(chosen) == 1000 and len(set(chosen.tolist())) == 1000
  assert np.bincount(labels[chosen], minlength=10).tolist() == [100] * 10
  assert np.all(np.diff(chosen) > 0)  # File order.
  np.testing.assert_array_equal(chosen, input_pipeline.balanced_indices(labels, 1000, seed=0))
  other = input_pipeline.balanced_indices(labels, 1000, seed=1)
  assert len(set(chosen.tolist()) & set(other.tolist())) < 500  # Mostly others.
  # A count that does not divide by the classes: the first ones get one more.
  assert np.bincount(labels[input_pipeline.balanced_indices(labels, 23, 0)],
                     minlength=10).tolist() == [3, 3, 3] + [2] * 7


def test_more_train_examples_than_a_class_has_is_refused_with_the_most_possible():
  labels = np.repeat(np.arange(10), 50)
  with pytest.raises(ValueError, match=r'needs 60 images of class 0.*has 50; use at most 500'):
    input_pipeline.balanced_indices(labels, 600, seed=0)
  labels = np.concatenate([np.repeat(np.arange(10), 50), np.zeros(100, int)])  # Class 0: 150.
  with pytest.raises(ValueError, match=r'class 1, .*has 50; use at most 500 \(class 1 has the '
                                       r'fewest, 50\)'):
    input_pipeline.balanced_indices(labels, 1000, seed=0)


def test_the_training_split_of_a_run_on_few_examples(data_dir):
  split, indices = input_pipeline.training_split('mnist', data_dir, train_examples=200, seed=3)
  full = input_pipeline.load_split('mnist', 'train', data_dir)
  np.testing.assert_array_equal(split.images, full.images[indices])
  assert np.bincount(split.labels).tolist() == [20] * 10
  first, none = input_pipeline.training_split('mnist', data_dir, limit=50)
  assert none is None and len(first.images) == 50

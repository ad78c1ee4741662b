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

"""Tests for gan_jax.classifier_store: the shipped classifiers, your own folder,
train-once / retrain, and the checks that refuse a damaged folder."""

import json
import os
import shutil

import numpy as np
import pytest

from gan_jax import classifier as C
from gan_jax import classifier_store as S
from gan_jax import input_pipeline, quality

QUICK = C.TrainConfig(epochs=1, train_limit=1000, test_limit=500)


def _quiet(*_):
  pass


@pytest.fixture(scope='module')
def own(tmp_path_factory, data_dir):
  """A folder holding a quickly trained classifier of one's own."""
  directory = str(tmp_path_factory.mktemp('clf') / 'mnist')
  stored = S.load_or_train('mnist', data_dir, directory, progress=False, log=_quiet,
                           config=QUICK)
  return directory, stored


def _copy(own, tmp_path):
  dst = str(tmp_path / 'copy')
  shutil.copytree(own[0], dst)
  return dst


@pytest.mark.slow
@pytest.mark.parametrize('dataset, minimum', [('mnist', 0.990), ('fashion', 0.910)])
def test_shipped_classifier_accuracy_on_the_full_test_split(dataset, minimum, data_dir):
  stored = S.load_or_train(dataset, data_dir, log=_quiet)
  assert stored.shipped and stored.directory == S.shipped_dir(dataset)
  test = input_pipeline.load_split(dataset, 'test', data_dir)
  assert len(test.images) == 10000
  accuracy = stored.classifier.accuracy(test.images, test.labels)
  assert accuracy >= minimum, accuracy
  # The recorded figure is this one (a prediction or two may flip on another CPU).
  assert abs(accuracy - stored.test_accuracy) <= 3e-4


@pytest.mark.slow
@pytest.mark.parametrize('dataset', ['mnist', 'fashion'])
def test_shipped_reference_statistics_equal_a_recomputation(dataset, data_dir):
  stored = S.load_or_train(dataset, data_dir, log=_quiet)
  again = S.compute_reference(stored.classifier, data_dir)
  # Features are float32 sums of a few hundred terms: their means and
  # covariances agree across CPUs to ~1e-6 relative; 1e-4 leaves room.
  np.testing.assert_allclose(again.mu, stored.reference.mu, rtol=1e-4, atol=1e-5)
  scale = np.abs(stored.reference.sigma).max()
  np.testing.assert_allclose(again.sigma, stored.reference.sigma, rtol=0, atol=1e-4 * scale)
  for key, value in stored.reference.summary().items():
    np.testing.assert_allclose(again.summary()[key], value, rtol=1e-4, err_msg=key)


def test_shipped_classifier_is_the_default_and_names_itself():
  stored = S.load_or_train('mnist', data_dir='/nonexistent', log=_quiet)
  described = stored.describe()
  assert described['shipped'] is True
  assert described['sha256'] == C.params_digest(stored.classifier.params)
  assert len(described['sha256']) == 64
  # Well under a megabyte of weights each.
  size = sum(os.path.getsize(os.path.join(root, f))
             for root, _, names in os.walk(S.shipped_dir('fashion')) for f in names)
  assert size < 1_500_000, size


def test_retrain_never_writes_into_the_package(tmp_path):
  with pytest.raises(S.ClassifierCheckpointError, match='inside the gan_jax package'):
    S.load_or_train('mnist', None, S.shipped_dir('mnist'), retrain=True, log=_quiet)


def test_own_folder_is_saved_complete(own):
  directory, stored = own
  assert not stored.shipped and stored.directory == directory
  for name in (S.META_FILE, S.REFERENCE_JSON, S.REFERENCE_NPZ, S.PARAMS_DIR):
    assert os.path.exists(os.path.join(directory, name)), name
  with open(os.path.join(directory, S.META_FILE)) as f:
    meta = json.load(f)
  assert meta['schema_version'] == S.SCHEMA_VERSION and meta['train_examples'] == 1000
  ref = stored.reference
  assert ref.mu.shape == (128,) and ref.sigma.shape == (128, 128)
  assert ref.num_examples == 10000 and ref.fd_train_samples == S.REFERENCE_TRAIN_SAMPLES
  assert 1.0 <= ref.inception_score <= 10.0


def test_second_call_loads_without_training_or_data(own, monkeypatch):
  directory, stored = own
  mtime = os.stat(os.path.join(directory, S.META_FILE)).st_mtime_ns

  def no_training(*args, **kwargs):
    raise AssertionError('trained or read data again')
  monkeypatch.setattr(C, 'train_classifier', no_training)
  monkeypatch.setattr(input_pipeline, 'load_split', no_training)
  logs = []
  loaded = S.load_or_train('mnist', None, directory, log=logs.append)
  assert 'loaded' in logs[0]
  assert os.stat(os.path.join(directory, S.META_FILE)).st_mtime_ns == mtime
  assert loaded.meta == stored.meta
  images = np.random.default_rng(0).uniform(-1, 1, (7, 28, 28, 1))
  np.testing.assert_allclose(loaded.classifier.predict_proba(images),
                             stored.classifier.predict_proba(images), atol=1e-6)
  np.testing.assert_array_equal(loaded.reference.sigma, stored.reference.sigma)


def test_retrain_trains_again(own, data_dir, tmp_path, monkeypatch):
  directory = _copy(own, tmp_path)
  calls = []
  real_train = C.train_classifier

  def counting_train(*args, **kwargs):
    calls.append(1)
    return real_train(*args, **kwargs)
  monkeypatch.setattr(C, 'train_classifier', counting_train)
  config = C.TrainConfig(epochs=1, train_limit=500, test_limit=500)
  stored = S.load_or_train('mnist', data_dir, directory, retrain=True, progress=False,
                           log=_quiet, config=config)
  assert calls == [1] and stored.meta['train_examples'] == 500
  assert S.load_or_train('mnist', None, directory, log=_quiet).meta == stored.meta
  assert calls == [1]


def test_retrain_without_a_folder_uses_the_user_cache(monkeypatch, tmp_path, data_dir):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert S.default_user_dir('fashion') == os.path.join(
      str(tmp_path), 'gan_jax', 'classifiers', 'fashion_mnist')
  stored = S.load_or_train('mnist', data_dir, retrain=True, progress=False, log=_quiet,
                           config=QUICK)
  assert stored.directory == os.path.join(str(tmp_path), 'gan_jax', 'classifiers', 'mnist')
  assert not stored.shipped


def _assert_checkpoint_error(directory, dataset='mnist'):
  with pytest.raises(S.ClassifierCheckpointError) as e:
    S.load_or_train(dataset, None, directory, log=_quiet)
  assert directory in str(e.value) and '--retrain_classifier' in str(e.value)
  return str(e.value)


def test_truncated_weights_raise(own, tmp_path):
  directory = _copy(own, tmp_path)
  data_files = [os.path.join(root, f)
                for root, _, names in os.walk(os.path.join(directory, S.PARAMS_DIR))
                for f in names]
  biggest = max(data_files, key=os.path.getsize)
  with open(biggest, 'r+b') as f:
    f.truncate(os.path.getsize(biggest) // 2)
  _assert_checkpoint_error(directory)


def test_missing_files_raise(own, tmp_path):
  directory = _copy(own, tmp_path)
  shutil.rmtree(os.path.join(directory, S.PARAMS_DIR))
  assert 'weights folder' in _assert_checkpoint_error(directory)
  directory = _copy(own, tmp_path / 'b')
  os.remove(os.path.join(directory, S.META_FILE))
  assert 'missing' in _assert_checkpoint_error(directory)
  with open(os.path.join(directory, S.META_FILE), 'w') as f:
    f.write('{"schema_ver')  # Truncated JSON.
  _assert_checkpoint_error(directory)
  directory = _copy(own, tmp_path / 'c')
  os.remove(os.path.join(directory, S.REFERENCE_NPZ))
  assert 'reference' in _assert_checkpoint_error(directory)


def test_mismatched_folder_raises(own, tmp_path):
  directory = _copy(own, tmp_path)
  assert "'mnist', not 'fashion_mnist'" in _assert_checkpoint_error(directory, 'fashion')
  meta_path = os.path.join(directory, S.META_FILE)
  with open(meta_path) as f:
    meta = json.load(f)
  meta['model_version'] = 'some-older-model'
  with open(meta_path, 'w') as f:
    json.dump(meta, f)
  assert 'model version' in _assert_checkpoint_error(directory)
  meta['schema_version'] = 1
  with open(meta_path, 'w') as f:
    json.dump(meta, f)
  assert 'schema version' in _assert_checkpoint_error(directory)


def test_reference_figures_follow_from_the_classifier(own, data_dir):
  """compute_reference is what quality.evaluate gives the real test set."""
  stored = own[1]
  test = input_pipeline.load_split('mnist', 'test', data_dir)
  scores = quality.evaluate(stored.classifier, test.images, stored.reference)
  assert scores['fd'] < 1e-6
  assert scores['is'] == pytest.approx(stored.reference.inception_score, rel=1e-9)
  assert scores['classes_covered'] == stored.reference.classes_covered

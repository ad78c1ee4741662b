"""Tests for gan_jax.classifier: shapes, quick training on real data,
train-once / retrain behaviour, checkpoint validation, reference statistics."""

import json
import os
import shutil

import numpy as np
import pytest

from gan_jax import classifier as C
from gan_jax import input_pipeline

# A short run on a slice of MNIST: a few seconds, far above chance (10%).
QUICK = C.TrainConfig(epochs=2, train_limit=2000, test_limit=1000)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  """(classifier_dir, Classifier) trained once for the whole module."""
  clf_dir = str(tmp_path_factory.mktemp('clf') / 'mnist')
  logs = []
  clf = C.load_or_train('mnist', data_dir, clf_dir, progress=False,
                        log=logs.append, config=QUICK)
  assert any('test accuracy' in line for line in logs)
  return clf_dir, clf


def _copy(trained, tmp_path):
  dst = str(tmp_path / 'copy')
  shutil.copytree(trained[0], dst)
  return dst


def test_quick_training_beats_chance(trained):
  clf_dir, clf = trained
  assert clf.accuracy > 0.6, clf.accuracy
  assert clf.dataset == 'mnist' and clf.class_names == [str(i) for i in range(10)]
  with open(os.path.join(clf_dir, C.META_FILE)) as f:
    meta = json.load(f)
  assert meta['dataset'] == 'mnist' and meta['model_version'] == C.MODEL_VERSION
  assert meta['test_accuracy'] == clf.accuracy
  assert meta['dataset_version'] == '3.0.1'
  assert meta['train_examples'] == 2000


def test_shapes_and_padding(trained, data_dir):
  clf = trained[1]
  images = input_pipeline.load_split('mnist', 'test', data_dir, limit=503).images
  probs, feats = clf.predict_proba(images), clf.features(images)
  assert probs.shape == (503, 10) and feats.shape == (503, 128)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
  # A padded small call gives the same numbers as a full batch.
  np.testing.assert_allclose(clf.predict_proba(images[:3]), probs[:3], atol=1e-6)
  np.testing.assert_allclose(clf.features(images[:3, ..., 0]), feats[:3], atol=1e-6)
  assert clf.predict_proba(images[:0]).shape == (0, 10)
  with pytest.raises(ValueError):
    clf.predict_proba(np.zeros((2, 32, 32, 1)))


def test_second_call_loads_without_training(trained, data_dir, monkeypatch):
  clf_dir, clf = trained
  meta_path = os.path.join(clf_dir, C.META_FILE)
  mtime = os.stat(meta_path).st_mtime_ns

  def no_training(*args, **kwargs):
    raise AssertionError('load_or_train trained again')
  monkeypatch.setattr(C, 'train_classifier', no_training)
  logs = []
  loaded = C.load_or_train('mnist', data_dir, clf_dir, log=logs.append)
  assert 'loaded' in logs[0]
  assert os.stat(meta_path).st_mtime_ns == mtime
  assert loaded.accuracy == clf.accuracy
  images = np.random.default_rng(0).uniform(-1, 1, (7, 28, 28, 1))
  np.testing.assert_allclose(loaded.predict_proba(images),
                             clf.predict_proba(images), atol=1e-6)


def test_retrain_trains_again(trained, data_dir, tmp_path, monkeypatch):
  clf_dir = _copy(trained, tmp_path)
  calls = []
  real_train = C.train_classifier

  def counting_train(*args, **kwargs):
    calls.append(1)
    return real_train(*args, **kwargs)
  monkeypatch.setattr(C, 'train_classifier', counting_train)
  config = C.TrainConfig(epochs=1, train_limit=1000, test_limit=500)
  clf = C.load_or_train('mnist', data_dir, clf_dir, retrain=True,
                        progress=False, log=lambda s: None, config=config)
  assert calls == [1]
  with open(os.path.join(clf_dir, C.META_FILE)) as f:
    assert json.load(f)['train_examples'] == 1000
  assert C.load_or_train('mnist', data_dir, clf_dir,
                         log=lambda s: None).accuracy == clf.accuracy
  assert calls == [1]


def _assert_checkpoint_error(clf_dir, dataset='mnist'):
  with pytest.raises(C.ClassifierCheckpointError) as e:
    C.load_or_train(dataset, None, clf_dir, log=lambda s: None)
  assert clf_dir in str(e.value) and '--retrain_classifier' in str(e.value)
  return str(e.value)


def test_truncated_weights_raise(trained, tmp_path):
  clf_dir = _copy(trained, tmp_path)
  data_files = [os.path.join(root, f)
                for root, _, names in os.walk(os.path.join(clf_dir, C.PARAMS_DIR))
                for f in names]
  biggest = max(data_files, key=os.path.getsize)
  with open(biggest, 'r+b') as f:
    f.truncate(os.path.getsize(biggest) // 2)
  _assert_checkpoint_error(clf_dir)


def test_missing_files_raise(trained, tmp_path):
  clf_dir = _copy(trained, tmp_path)
  shutil.rmtree(os.path.join(clf_dir, C.PARAMS_DIR))
  assert 'weights folder' in _assert_checkpoint_error(clf_dir)
  clf_dir = _copy(trained, tmp_path / 'b')
  os.remove(os.path.join(clf_dir, C.META_FILE))
  assert 'missing' in _assert_checkpoint_error(clf_dir)
  with open(os.path.join(clf_dir, C.META_FILE), 'w') as f:
    f.write('{"schema_ver')  # Truncated JSON.
  _assert_checkpoint_error(clf_dir)


def test_mismatched_checkpoint_raises(trained, tmp_path):
  clf_dir = _copy(trained, tmp_path)
  assert "'mnist', not 'fashion_mnist'" in _assert_checkpoint_error(clf_dir, 'fashion')
  meta_path = os.path.join(clf_dir, C.META_FILE)
  with open(meta_path) as f:
    meta = json.load(f)
  meta['model_version'] = 'some-older-model'
  with open(meta_path, 'w') as f:
    json.dump(meta, f)
  assert 'model version' in _assert_checkpoint_error(clf_dir)


def test_reference_is_cached(trained, data_dir, monkeypatch):
  clf_dir, clf = trained
  ref = clf.reference()
  assert ref.mu.shape == (128,) and ref.sigma.shape == (128, 128)
  assert ref.num_examples == 10000 and ref.fd_train_samples == C.REFERENCE_TRAIN_SAMPLES
  assert 1.0 <= ref.inception_score <= 10.0
  assert 0 < ref.fd_train_vs_test < 5
  assert os.path.exists(os.path.join(clf_dir, C.REFERENCE_NPZ))

  def no_data(*args, **kwargs):
    raise AssertionError('reference recomputed instead of read from cache')
  monkeypatch.setattr(input_pipeline, 'load_split', no_data)
  again = C.load_or_train('mnist', data_dir, clf_dir, log=lambda s: None).reference()
  np.testing.assert_allclose(again.sigma, ref.sigma)
  assert again.summary() == ref.summary()


def test_default_classifier_dir(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert C.default_classifier_dir('fashion') == os.path.join(
      str(tmp_path), 'gan_jax', 'classifiers', 'fashion_mnist')
  monkeypatch.delenv('XDG_CACHE_HOME')
  assert C.default_classifier_dir('mnist') == os.path.expanduser(
      '~/.cache/gan_jax/classifiers/mnist')


def test_training_is_deterministic(data_dir):
  config = C.TrainConfig(epochs=1, batch_size=64, train_limit=256, test_limit=100,
                         max_shift=2)
  a = C.train_classifier('fashion', data_dir, config, progress=False, log=lambda s: None)
  b = C.train_classifier('fashion', data_dir, config, progress=False, log=lambda s: None)
  assert a.meta['params_sha256'] == b.meta['params_sha256']
  assert a.accuracy == b.accuracy

"""Tests for gan_jax.classifier: the CNN, its training and batched inference."""

import numpy as np
import pytest

from gan_jax import classifier as C
from gan_jax import input_pipeline

# A short run on a slice of MNIST: a few seconds, far above chance (10%).
QUICK = C.TrainConfig(epochs=2, train_limit=2000, test_limit=1000)


@pytest.fixture(scope='module')
def trained(data_dir):
  logs = []
  clf, meta = C.train_classifier('mnist', data_dir, QUICK, progress=False, log=logs.append)
  assert any('test accuracy' in line for line in logs)
  return clf, meta


def test_quick_training_beats_chance_and_records_it(trained, data_dir):
  clf, meta = trained
  assert meta['test_accuracy'] > 0.6, meta
  assert clf.dataset == 'mnist' and clf.class_names == [str(i) for i in range(10)]
  assert meta['dataset'] == 'mnist' and meta['model_version'] == C.MODEL_VERSION
  assert meta['dataset_version'] == '3.0.1' and meta['train_examples'] == 2000
  assert meta['params_sha256'] == C.params_digest(clf.params)
  test = input_pipeline.load_split('mnist', 'test', data_dir, limit=1000)
  assert clf.accuracy(test.images, test.labels) == meta['test_accuracy']


def test_shapes_and_padding(trained, data_dir):
  clf = trained[0]
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


def test_max_pool_equals_flax(trained):
  import flax.linen as nn
  x = np.random.default_rng(0).normal(size=(2, 8, 6, 3)).astype(np.float32)
  np.testing.assert_array_equal(C._max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))


def test_training_is_deterministic(data_dir):
  config = C.TrainConfig(epochs=1, batch_size=64, train_limit=256, test_limit=100,
                         max_shift=2)
  _, a = C.train_classifier('fashion', data_dir, config, progress=False, log=lambda s: None)
  _, b = C.train_classifier('fashion', data_dir, config, progress=False, log=lambda s: None)
  assert a['params_sha256'] == b['params_sha256']
  assert a['test_accuracy'] == b['test_accuracy']

"""Shared pytest fixtures: the real data and a small domain classifier."""

import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_data_dir() -> str:
  for path in (os.environ.get('TFDS_DATA_DIR'), os.path.join(REPO_ROOT, '..', 'shared', 'tfds')):
    if path and os.path.isdir(os.path.join(path, 'mnist')):
      return os.path.abspath(path)
  return ''


@pytest.fixture(scope='session')
def data_dir() -> str:
  """The shared, read-only TFDS folder with mnist and fashion_mnist (3.0.1)."""
  path = _find_data_dir()
  if not path:
    # Not a skip: the end-to-end tests are part of CI and must run there.
    pytest.fail('real data not found: set TFDS_DATA_DIR or put the prepared TFDS '
                'folder at ../shared/tfds')
  return path


@pytest.fixture(scope='session')
def classifier_dir(tmp_path_factory, data_dir) -> str:
  """A quickly trained MNIST classifier (a slice of the data), for end-to-end runs.

  The full classifier takes minutes; runs in tests only need a working one.
  """
  from gan_jax import classifier
  path = str(tmp_path_factory.mktemp('classifier') / 'mnist')
  config = classifier.TrainConfig(epochs=1, train_limit=3000, test_limit=1000)
  clf = classifier.train_classifier('mnist', data_dir, config, progress=False,
                                    log=lambda *_: None)
  classifier.save_classifier(clf, path)
  return path

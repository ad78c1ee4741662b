"""Shared pytest fixtures: the real data and the shipped MNIST classifier."""

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
def classifier_dir() -> str:
  """The MNIST classifier shipped with the package, as an explicit folder."""
  from gan_jax import classifier_store
  return classifier_store.shipped_dir('mnist')

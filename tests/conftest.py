"""Shared pytest fixtures: the real data, the fake data, the shipped MNIST classifier.

Two tiers of data. `mock_data_dir` fakes TFDS with `tfds.testing.mock_data`
(tests/mock_tfds.py), so most tests need no files. `data_dir` is the real,
prepared TFDS folder (../shared/tfds or $TFDS_DATA_DIR); every test that asks
for it is marked `real_data` here, so a contributor without the data runs
`pytest -m "not real_data"`. CI runs both tiers.
"""

import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_data_dir() -> str:
  for path in (os.environ.get('TFDS_DATA_DIR'), os.path.join(REPO_ROOT, '..', 'shared', 'tfds')):
    if path and os.path.isdir(os.path.join(path, 'mnist')):
      return os.path.abspath(path)
  return ''


def pytest_collection_modifyitems(items):
  for item in items:
    if 'data_dir' in getattr(item, 'fixturenames', ()):
      item.add_marker(pytest.mark.real_data)


@pytest.fixture
def mock_data_dir():
  """A data folder name under which TFDS serves fake examples (tests/mock_tfds.py)."""
  from mock_tfds import fake_datasets
  with fake_datasets():
    yield '/nonexistent/mock_tfds'


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
def trained_run(tmp_path_factory, classifier_dir):
  """A finished 2-epoch run (checkpoints 1 and 2) of the mlp on 256 fake
  examples, trained once per test process; tests copy it before changing it."""
  from gan_jax import trainer
  from gan_jax.config import Config
  from mock_tfds import fake_datasets
  workdir = tmp_path_factory.mktemp('trained') / 'run'
  config = Config(arch='mlp', epochs=2, save_interval=1, batch_size=64, limit=256,
                  eval_samples=100, workdir=str(workdir), data_dir='/nonexistent/mock_tfds',
                  classifier_dir=classifier_dir, progress=False)
  with fake_datasets():
    trainer.train_and_evaluate(config, log=lambda *_: None)
  return workdir


@pytest.fixture(scope='session')
def classifier_dir() -> str:
  """The MNIST classifier shipped with the package, as an explicit folder."""
  from gan_jax import classifier_store
  return classifier_store.shipped_dir('mnist')

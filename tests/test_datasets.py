"""The dataset table: names a user may type, class names, image shape."""

import pytest

from gan_jax import config, datasets


def test_names_and_class_names():
  assert datasets.canonical_name('Fashion') == 'fashion_mnist'
  assert datasets.canonical_name('fashion-mnist') == 'fashion_mnist'
  assert datasets.canonical_name('fashion_mnist') == 'fashion_mnist'
  assert datasets.CLASS_NAMES['fashion_mnist'][9] == 'Ankle boot'
  with pytest.raises(ValueError, match='unknown dataset'):
    datasets.canonical_name('svhn')


def test_every_name_the_pipeline_reads_passes_validation():
  for name in datasets.ALIASES:
    assert config.check('dataset', name) is None, name
  assert config.check('dataset', 'svhn') is not None

"""The mock-data tier: TFDS faked with `tfds.testing.mock_data`, no files needed.

Inside `fake_datasets()` every `tfds.builder(...).as_data_source(split)` (which
is how `gan_jax.input_pipeline` reads) returns `NUM_EXAMPLES` made-up examples
of the dataset's features, whatever the data folder: a 28x28 uint8 image
with a bright bar in a row set by the label (so a classifier can learn it)
over random noise, and the label i % 10. Deterministic, the same for every
split.

  python tests/mock_tfds.py run.py --epochs=1 ...   # run.py on the fake data
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from typing import Iterator
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds

NUM_EXAMPLES = 1280


def fake_example(index: int) -> dict[str, np.ndarray | int]:
  label = index % 10
  image = np.random.default_rng(index).integers(0, 96, (28, 28, 1), dtype=np.uint8)
  image[2 + 2 * label:4 + 2 * label, 4:24] = 255
  return {'image': image, 'label': label}


class _FakeSource:
  """What `as_data_source` returns, as far as gan_jax uses it."""

  def __init__(self, size: int):
    self._size = size

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: int):
    return fake_example(int(index))

  def __getitems__(self, indices):
    return [fake_example(int(i)) for i in indices]


def _as_data_source(builder, split=None, **kwargs):
  del builder, split, kwargs
  return _FakeSource(NUM_EXAMPLES)


@contextlib.contextmanager
def fake_datasets() -> Iterator[None]:
  """TFDS mocked by the library's own `mock_data`; the data counts as prepared."""
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                              as_data_source_fn=_as_data_source), \
       mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared', return_value=True):
    yield


if __name__ == '__main__':
  script, sys.argv = sys.argv[1], sys.argv[1:]
  with fake_datasets():
    runpy.run_path(script, run_name='__main__')

"""Classifier features of a dataset's training split, cached on disk.

--mode=export compares its images with every training image (memorisation)
and with 5,000 of them (precision, recall). Loading and classifying 60,000
images costs more than the rest of a small export. The features depend only
on the classifier's weights and the data, so they are kept in
``$XDG_CACHE_HOME/gan_jax/features/`` (default ``~/.cache``), named after the
classifier's SHA-256 and the data folder, and written atomically. A cache
that cannot be read or written only makes the export slower.
"""

from __future__ import annotations

import hashlib
import io
import os

import numpy as np

from gan_jax import datasets, files, input_pipeline


def cache_path(dataset: str, classifier_sha256: str, data_dir: str) -> str:
  """Where the training features of `dataset` in `data_dir` under this classifier go."""
  name = datasets.get(dataset).key  # A folder's: its content digest.
  key = '|'.join([name, os.path.abspath(data_dir), classifier_sha256,
                  input_pipeline.prepared_version(dataset, data_dir)])
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(cache, 'gan_jax', 'features',
                      f'{name}-train-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz')


def training_features(classifier, classifier_sha256: str, dataset: str, data_dir: str
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Features (N, D) and labels (N,) of every training image: from the cache,
  else computed (and cached)."""
  path = cache_path(dataset, classifier_sha256, data_dir)
  try:
    with np.load(path) as cached:
      features, labels = cached['features'], cached['labels']
    if features.ndim == 2 and labels.shape == (len(features),):
      return features, labels
  except Exception:  # pylint: disable=broad-except  # A damaged cache: BadZipFile, EOFError...
    pass
  split = input_pipeline.load_split(dataset, 'train', data_dir)
  features = classifier.features(split.images)
  buf = io.BytesIO()
  np.savez(buf, features=features, labels=split.labels)
  try:
    files.write_bytes(path, buf.getvalue())
  except OSError:
    pass
  return features, split.labels

"""Input pipeline: MNIST / Fashion-MNIST from tensorflow-datasets as arrays.

The datasets are small (60k images of 28x28), so a whole split is decoded once
into a NumPy array and handed to the training loop, which keeps it in device
memory and shuffles on the device. Reading uses ``tfds.data_source`` on the
array_record files, which needs no TensorFlow.
"""

from __future__ import annotations

import glob
import re
import os
import socket
from typing import NamedTuple

import numpy as np

from gan_jax import datasets, errors
from gan_jax.datasets import IMAGE_SHAPE, canonical_name


class DataUnavailableError(errors.GanJaxError):
  """The dataset is not prepared locally and cannot be downloaded."""


class DataDamagedError(DataUnavailableError):
  """The dataset is there but cannot be read (truncated, corrupt, or no permission)."""


class Split(NamedTuple):
  """A decoded split: images in [-1, 1], shape (N, 28, 28, 1), and labels."""
  images: np.ndarray  # float32
  labels: np.ndarray  # int32


def resolve_data_dir(data_dir: str | None) -> str:
  """The data folder: --data_dir, else $TFDS_DATA_DIR, else TFDS's default.

  The one place this is decided: a run resolves it once and hands the result
  to training, the classifier and its reference statistics alike. An empty
  TFDS_DATA_DIR counts as unset.
  """
  if data_dir:
    return os.path.abspath(os.path.expanduser(data_dir))
  if os.environ.get('TFDS_DATA_DIR'):
    return os.path.abspath(os.path.expanduser(os.environ['TFDS_DATA_DIR']))
  return os.path.expanduser('~/tensorflow_datasets')


def prepared_version(dataset: str, data_dir: str | None) -> str:
  """The TFDS version of the prepared dataset (e.g. '3.0.1'), 'folder', or 'unknown'."""
  if datasets.is_folder(dataset):
    return 'folder'
  import tensorflow_datasets as tfds  # Heavy import, kept out of module load.
  try:
    return str(tfds.builder(canonical_name(dataset),
                            data_dir=resolve_data_dir(data_dir)).version)
  except Exception:  # Only informative metadata: never fail on it.
    return 'unknown'


def _online(host: str = 'storage.googleapis.com', timeout: float = 3.0) -> bool:
  """A quick reachability check, so an offline machine fails fast instead of hanging."""
  try:
    with socket.create_connection((host, 443), timeout=timeout):
      return True
  except OSError:
    return False


def _unavailable_message(name: str, data_dir: str, why: str) -> str:
  return (
      f'dataset {name!r} is not prepared in {data_dir} and {why}. '
      'Point --data_dir (or TFDS_DATA_DIR) at a folder that holds '
      f'{name}/{datasets.get(name).version} in array_record format, or prepare it on a '
      'machine with '
      'internet: pip install tensorflow-cpu importlib_resources && python -c '
      f'"import tensorflow_datasets as tfds; tfds.data_source(\'{name}\', '
      'data_dir=\'DIR\')" and copy DIR here.')


def load_split(dataset: str, split: str = 'train', data_dir: str | None = None,
               limit: int | None = None) -> Split:
  """Loads one split as arrays, images scaled to [-1, 1].

  Args:
    dataset: a name of `datasets.DATASETS` (or an alias), or a folder's path.
    split: 'train' or 'test'.
    data_dir: the TFDS data folder (see `resolve_data_dir`).
    limit: keep only the first `limit` examples (for quick runs and tests).

  Returns:
    A `Split` with float32 images of shape (N, 28, 28, 1) and int32 labels.

  Raises:
    ValueError: unknown dataset name.
    DataUnavailableError: the data is neither prepared locally nor downloadable.
  """
  record = datasets.get(dataset)
  if record.folder is not None:  # --dataset=PATH: read by `image_folder`.
    images = record.folder.images[split][:limit]
    return Split(images=(images.astype(np.float32) / 127.5 - 1.0)[..., None],
                 labels=record.folder.labels[split][:limit])
  import tensorflow_datasets as tfds  # Heavy import, kept out of module load.

  name = canonical_name(dataset)
  data_dir = resolve_data_dir(data_dir)
  if os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise DataUnavailableError(f'data dir {data_dir} is a file, not a folder; '
                               'point --data_dir (or TFDS_DATA_DIR) at a folder')
  _check_readable(name, data_dir)
  builder = _builder(name, data_dir)
  if not builder.is_prepared():
    if not _online():
      raise DataUnavailableError(_unavailable_message(
          name, data_dir, 'this machine cannot reach the TFDS download servers'))
    try:
      import tensorflow  # noqa: F401  TFDS needs it to build from raw files.
    except ImportError:
      raise DataUnavailableError(_unavailable_message(
          name, data_dir, 'preparing it needs TensorFlow (not installed)')) from None
    try:
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(
              file_format='array_record'))
    except Exception as e:  # Any download/build failure: one clear message.
      raise DataUnavailableError(_unavailable_message(
          name, data_dir, f'downloading it failed ({e})')) from e
  try:
    source = builder.as_data_source(split=split)
    n = len(source) if limit is None else min(limit, len(source))
    records = source.__getitems__(list(range(n)))
  except Exception as e:  # Riegeli, array_record, OS errors: one line naming the file.
    raise _damaged(name, split, data_dir, e) from e
  images = np.stack([r['image'] for r in records]).astype(np.float32)
  labels = np.asarray([r['label'] for r in records], dtype=np.int32)
  images = images / 127.5 - 1.0
  return Split(images=images.reshape((n,) + IMAGE_SHAPE), labels=labels)


def balanced_indices(labels: np.ndarray, n: int, seed: int,
                     num_classes: int = datasets.NUM_CLASSES) -> np.ndarray:
  """`n` indices into `labels`, as many of each class as `n` allows (the
  first n mod K classes one more), drawn by `seed`, in file order: the
  training images of a --train_examples run.

  Raises:
    ValueError: a class has fewer examples than its share.
  """
  labels = np.asarray(labels)
  k = num_classes
  rng = np.random.default_rng(seed)  # PCG64: the same draw on every machine.
  members = [np.flatnonzero(labels == c) for c in range(k)]
  fewest = min(range(k), key=lambda c: len(members[c]))
  chosen = []
  for c in range(k):
    share = n // k + (1 if c < n % k else 0)
    if share > len(members[c]):
      raise ValueError(f'--train_examples={n} needs {share} images of class {c}, and the '
                       f'split has {len(members[c])}; use at most {len(members[fewest]) * k} '
                       f'(class {fewest} has the fewest, {len(members[fewest])})')
    chosen.append(rng.permutation(members[c])[:share])
  return np.sort(np.concatenate(chosen))


def training_split(dataset: str, data_dir: str | None, limit: int | None = None,
                   train_examples: int | None = None, seed: int = 0
                   ) -> tuple[Split, np.ndarray | None]:
  """A run's training images: the first `limit`, or `train_examples` of them
  balanced across the classes (`balanced_indices`), or the whole split; and
  the indices chosen (None unless `train_examples`)."""
  if train_examples is None:
    return load_split(dataset, 'train', data_dir, limit), None
  full = load_split(dataset, 'train', data_dir)
  indices = balanced_indices(full.labels, train_examples, seed,
                             datasets.get(dataset).num_classes)
  return Split(images=full.images[indices], labels=full.labels[indices]), indices
def _builder(name: str, data_dir: str):
  """TFDS's builder of the dataset, which reads its metadata (dataset_info.json,
  features.json): damaged metadata is one line naming the files and the fix.

  Raises:
    DataDamagedError: the metadata cannot be read.
  """
  import tensorflow_datasets as tfds
  try:
    return tfds.builder(f'{name}:{datasets.get(name).version}', data_dir=data_dir)
  except Exception as e:  # JSON and protobuf parse errors, OS errors: the metadata.
    folder = os.path.join(data_dir, name, datasets.get(name).version)
    cause = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
    raise DataDamagedError(
        f'the metadata of {name!r} in {folder} (dataset_info.json, features.json) cannot '
        f'be read: {cause}. The files are damaged (e.g. cut short by an interrupted copy) '
        f'or unreadable: copy or prepare the dataset again into {data_dir} (see the '
        'README), and check its permissions') from e


def _check_readable(name: str, data_dir: str) -> None:
  """Tells an unreadable data folder apart from one that is not prepared
  (TFDS sees both as "not prepared")."""
  for path in (data_dir, os.path.join(data_dir, name)):
    if not os.path.isdir(path):
      return
    try:
      os.listdir(path)
    except OSError as e:
      raise DataDamagedError(
          f'cannot read the data folder {path} ({e.strerror}); check its permissions '
          '(the user running gan_jax needs to read it), or point --data_dir at a copy '
          'you can read') from None


def _damaged(name: str, split: str, data_dir: str, e: Exception) -> DataDamagedError:
  paths = sorted(glob.glob(os.path.join(data_dir, name, '*', f'{name}-{split}.*')))
  where = ', '.join(paths) or os.path.join(data_dir, name)
  cause = re.split(r';| \(', (str(e).strip().splitlines() or [type(e).__name__])[0])[0][:160]
  if isinstance(e, OSError) and e.strerror:
    cause = e.strerror
  return DataDamagedError(
      f'the {split} data of {name!r} cannot be read from {where}: {cause}. The file is '
      'damaged (e.g. truncated by an interrupted copy) or unreadable: copy or prepare '
      f'the dataset again into {data_dir} (see the README), and check its permissions')

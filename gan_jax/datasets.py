"""The dataset table: one record per dataset, of the facts of its data.

A new built-in dataset (28x28 grayscale, ten classes, served by TFDS) is one
`register(Dataset(...))` here, with the facts of the data only; --dataset, the
prompts, the domain classifier's training and its shipped folder follow from
it. Its training defaults (network, loss weights) are its presets, in
`gan_jax/presets.py`. A folder of your own images (`--dataset=PATH`,
`gan_jax/image_folder.py`) gets its record from what the folder holds.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

NUM_CLASSES = 10  # Every built-in dataset has ten classes, labelled 0-9.

IMAGE_SHAPE = (28, 28, 1)  # Height, width, channels of every image.


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What gan_jax knows of one dataset.

  Attributes:
    name: the TFDS name, also the folder of its shipped classifier
      (`gan_jax/classifiers/<name>`).
    aliases: what a user may type; the first is the short name prompts offer.
    version: the TFDS version gan_jax reads.
    class_names: one per label 0, 1, ...
    classifier_epochs: the domain classifier's training epochs.
    classifier_steps: instead of epochs, its training steps (a folder's, so
      that its size does not decide its training length).
    folder: the read folder of a `--dataset=PATH` dataset (None: built in).
  """
  name: str
  aliases: tuple[str, ...]
  version: str
  class_names: tuple[str, ...]
  classifier_epochs: int
  classifier_steps: int | None = None
  folder: Any = dataclasses.field(default=None, compare=False, repr=False)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def key(self) -> str:
    """What names its domain classifier: the TFDS name, or for a folder
    'folder-' and its content digest (so a moved copy keeps its classifier)."""
    return self.name if self.folder is None else f'folder-{self.folder.sha256[:16]}'

  @property
  def train_size(self) -> int | None:
    """A folder's training images (None: a built-in dataset's full split)."""
    return None if self.folder is None else len(self.folder.labels['train'])


DATASETS: dict[str, Dataset] = {}
# Every name a user may type (--dataset, the prompts) -> the TFDS dataset name.
ALIASES: dict[str, str] = {}
# The folders read in this process: absolute path -> record (`open_folder`).
FOLDERS: dict[str, Dataset] = {}
# A folder's domain classifier trains this many steps (about the shipped MNIST
# one's 6 epochs), and so does the CNN of its CAS.
FOLDER_CLASSIFIER_STEPS = 3000


def register(dataset: Dataset) -> Dataset:
  """Adds `dataset` to the table (and its names to ALIASES)."""
  if len(dataset.class_names) != NUM_CLASSES:
    raise ValueError(f'{dataset.name}: gan_jax needs {NUM_CLASSES} classes, got '
                     f'{len(dataset.class_names)}')
  DATASETS[dataset.name] = dataset
  for alias in (*dataset.aliases, dataset.name):
    ALIASES[alias] = dataset.name
  return dataset


register(Dataset(
    name='mnist', aliases=('mnist',), version='3.0.1',
    class_names=tuple(str(i) for i in range(10)), classifier_epochs=6))
register(Dataset(
    name='fashion_mnist', aliases=('fashion', 'fashion_mnist', 'fashion-mnist'),
    version='3.0.1',
    class_names=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                 'Sneaker', 'Bag', 'Ankle boot'),
    classifier_epochs=10))


DEFAULT = 'mnist'  # --dataset's default.


def short_names() -> list[str]:
  """Each dataset's short name (its first alias), in table order."""
  return [d.aliases[0] for d in DATASETS.values()]


def is_folder(dataset: str) -> bool:
  """Whether --dataset names a folder of images rather than a built-in dataset."""
  from gan_jax import image_folder
  return dataset.strip().lower() not in ALIASES and image_folder.is_path(dataset)


def canonical_name(dataset: str) -> str:
  """Returns the TFDS name for a user-facing dataset name, or a folder's
  absolute path.

  Raises:
    ValueError: for an unknown name that is no folder's path.
  """
  try:
    return ALIASES[dataset.strip().lower()]
  except KeyError:
    if is_folder(dataset):
      return os.path.abspath(os.path.expanduser(dataset))
    raise ValueError(f'unknown dataset {dataset!r}; use one of: '
                     f'{", ".join(short_names())}, or the path of a folder of labelled '
                     'images (PATH/<class name>/*.png)') from None


def open_folder(path: str, skip_bad: bool = False) -> Dataset:
  """Reads a folder of labelled images (`image_folder.read`) into a record,
  kept for this process (`FOLDERS`), and returns it.

  Raises:
    image_folder.FolderError: the folder cannot be a dataset.
  """
  from gan_jax import image_folder
  folder = image_folder.read(path, skip_bad)
  record = Dataset(name=folder.path, aliases=(), version='folder',
                   class_names=folder.class_names, classifier_epochs=1,
                   classifier_steps=FOLDER_CLASSIFIER_STEPS, folder=folder)
  FOLDERS[folder.path] = record
  return record


def get(dataset: str) -> Dataset:
  """The record of a dataset, by any of its names or a folder's path (read on
  first use, `open_folder`). Raises ValueError if unknown."""
  name = canonical_name(dataset)
  if name in DATASETS:
    return DATASETS[name]
  return FOLDERS.get(name) or open_folder(name)

"""The dataset table: one record per dataset, of the facts of its data.

A new dataset (28x28 grayscale, ten classes, served by TFDS) is one
`register(Dataset(...))` here, with the facts of the data only; --dataset, the
prompts, the domain classifier's training and its shipped folder follow from
it. Its training defaults (network, loss weights) are its presets, in
`gan_jax/presets.py`.
"""

from __future__ import annotations

import dataclasses

NUM_CLASSES = 10  # Every dataset has ten classes, labelled 0-9.

IMAGE_SHAPE = (28, 28, 1)  # Height, width, channels of every image.


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What gan_jax knows of one dataset.

  Attributes:
    name: the TFDS name, also the folder of its shipped classifier
      (`gan_jax/classifiers/<name>`).
    aliases: what a user may type; the first is the short name prompts offer.
    version: the TFDS version gan_jax reads.
    class_names: one per label 0-9.
    classifier_epochs: the domain classifier's training epochs.
  """
  name: str
  aliases: tuple[str, ...]
  version: str
  class_names: tuple[str, ...]
  classifier_epochs: int


DATASETS: dict[str, Dataset] = {}
# Every name a user may type (--dataset, the prompts) -> the TFDS dataset name.
ALIASES: dict[str, str] = {}


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


def canonical_name(dataset: str) -> str:
  """Returns the TFDS name for a user-facing dataset name.

  Raises:
    ValueError: for an unknown name.
  """
  try:
    return ALIASES[dataset.strip().lower()]
  except KeyError:
    raise ValueError(f'unknown dataset {dataset!r}; use one of: '
                     f'{", ".join(short_names())}') from None


def get(dataset: str) -> Dataset:
  """The record of a dataset, by any of its names (ValueError if unknown)."""
  return DATASETS[canonical_name(dataset)]

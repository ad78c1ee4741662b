"""The facts about the two datasets, in one place: names, aliases, classes, shape."""

from __future__ import annotations

# Every name a user may type (--dataset, the prompts) -> the TFDS dataset name.
ALIASES = {
    'mnist': 'mnist',
    'fashion': 'fashion_mnist',
    'fashion_mnist': 'fashion_mnist',
    'fashion-mnist': 'fashion_mnist',
}

CLASS_NAMES = {
    'mnist': [str(i) for i in range(10)],
    'fashion_mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                      'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
}

NUM_CLASSES = 10  # Both datasets have ten classes, labelled 0-9.

IMAGE_SHAPE = (28, 28, 1)  # Height, width, channels of every image.


def canonical_name(dataset: str) -> str:
  """Returns the TFDS name for a user-facing dataset name.

  Raises:
    ValueError: for an unknown name.
  """
  try:
    return ALIASES[dataset.strip().lower()]
  except KeyError:
    raise ValueError(
        f'unknown dataset {dataset!r}; use one of: mnist, fashion '
        '(or fashion_mnist)') from None

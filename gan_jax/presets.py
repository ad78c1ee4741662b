"""The presets: per dataset and --conditional, the training defaults that differ.

One table, `PRESETS`, keyed by (TFDS dataset name, conditional): the network,
the mode-seeking, class-loss and reconstruction weights, and the batch of the
standing BatchNorm statistics, each entry with why and the docs/quality.md
section that measured it. `config.resolve` fills an unset flag from it, the
flags' help lines and the README's flag table show it (a test keeps the
README equal), and training reads its standing batch.
"""

from __future__ import annotations

import dataclasses

from gan_jax import datasets

# The Config fields a preset fills when they are unset (None).
FIELDS = ('arch', 'mode_seeking', 'class_loss_weight', 'reconstruction')

# The images per batch of the standing statistics of a conditional generator:
# 500 (a class mix like an evaluation batch's); an unconditional one uses the
# training batch size (the variance of a batch of B is (B-1)/B of the
# population's, and it learned with that). Each the better of those measured
# (docs/quality.md, "Sampling statistics").
CONDITIONAL_STANDING_BATCH = 500


@dataclasses.dataclass(frozen=True)
class Preset:
  """The training defaults of one (dataset, conditional).

  Attributes:
    dataset: the TFDS name (`datasets.Dataset.name`).
    conditional: for --conditional runs or not.
    arch, mode_seeking, class_loss_weight, reconstruction: what the flag of
      that name defaults to (class_loss_weight 0 when not conditional).
    standing_batch: the batch of the standing BatchNorm statistics; None: the
      training batch size (--batch_size).
    why: in a line, what the values gain.
    section: the heading of docs/quality.md that measured them.
  """
  dataset: str
  conditional: bool
  arch: str
  mode_seeking: float
  class_loss_weight: float
  reconstruction: float
  standing_batch: int | None
  why: str
  section: str

  @property
  def name(self) -> str:
    """'mnist', 'fashion-conditional': the dataset's short name, and whether conditional."""
    short = datasets.DATASETS[self.dataset].aliases[0]
    return f'{short}-conditional' if self.conditional else short


PRESETS: dict[tuple[str, bool], Preset] = {}


def register(preset: Preset) -> Preset:
  """Adds `preset` to the table (ValueError for an unknown dataset or a class
  loss on an unconditional preset)."""
  if preset.dataset not in datasets.DATASETS:
    raise ValueError(f'preset for unknown dataset {preset.dataset!r}; register it in '
                     'gan_jax/datasets.py first')
  if not preset.conditional and preset.class_loss_weight:
    raise ValueError(f'{preset.name}: an unconditional preset has class_loss_weight 0')
  PRESETS[(preset.dataset, preset.conditional)] = preset
  return preset


def get(dataset: str, conditional: bool) -> Preset:
  """The preset of a dataset (by any of its names, or a folder's path: then
  FOLDER's) with or without --conditional.

  Raises:
    ValueError: for an unknown dataset, or one without that preset.
  """
  name = FOLDER if datasets.is_folder(dataset) else datasets.canonical_name(dataset)
  try:
    return PRESETS[(name, bool(conditional))]
  except KeyError:
    short = datasets.DATASETS[name].aliases[0]
    missing = f'{short}-conditional' if conditional else short
    raise ValueError(f'no preset {missing!r} (dataset {name!r}, conditional='
                     f'{bool(conditional)}); add one to gan_jax/presets.py') from None


# A folder of your own images (--dataset=PATH) trains with this dataset's
# presets: Fashion-MNIST's, whose larger discriminator and variety terms were
# chosen on the less uniform of the two datasets.
FOLDER = 'fashion_mnist'


def _value(value: float | str) -> str:
  return f'{value:g}' if isinstance(value, float) else str(value)


def describe(field: str, conditional: bool | None = None) -> str:
  """A field's default per dataset, as the flag help and the README show it:
  'mnist 0 (--conditional 1), fashion 1 (--conditional 0.3)', the conditional
  value only where it differs; with `conditional`, only that kind of run's."""
  parts = []
  for dataset in datasets.DATASETS.values():
    short = dataset.aliases[0]
    if conditional is not None:
      parts.append(f'{short} {_value(getattr(get(dataset.name, conditional), field))}')
      continue
    plain = _value(getattr(get(dataset.name, False), field))
    with_labels = _value(getattr(get(dataset.name, True), field))
    parts.append(f'{short} {plain}' if plain == with_labels
                 else f'{short} {plain} (--conditional {with_labels})')
  return ', '.join(parts)


register(Preset(
    dataset='mnist', conditional=False, arch='mlp_bn', mode_seeking=0.0,
    class_loss_weight=0.0, reconstruction=0.0, standing_batch=None,
    why='BatchNorm in the generator: the lowest FD of the sweep, and the FD target met',
    section='The 10-epoch sweep on MNIST'))
register(Preset(
    dataset='mnist', conditional=True, arch='mlp_bn', mode_seeking=1.0,
    class_loss_weight=1.0, reconstruction=0.0, standing_batch=CONDITIONAL_STANDING_BATCH,
    why='mode seeking within each class: CAS gap under 1 point, for a higher FD',
    section='Mode seeking in conditional runs'))
register(Preset(
    dataset='fashion_mnist', conditional=False, arch='mlp_wide', mode_seeking=1.0,
    class_loss_weight=0.0, reconstruction=0.0, standing_batch=None,
    why='a larger discriminator and mode seeking: almost twice the recall',
    section='Recall on Fashion-MNIST'))
register(Preset(
    dataset='fashion_mnist', conditional=True, arch='mlp_wide', mode_seeking=0.3,
    class_loss_weight=0.5, reconstruction=10.0, standing_batch=CONDITIONAL_STANDING_BATCH,
    why='the reconstruction term: more recall at the same FD; mode seeking 0.3 and class '
        'loss 0.5 narrow the CAS gap ("Mode seeking in conditional runs")',
    section='Other candidates on conditional Fashion-MNIST'))


@dataclasses.dataclass(frozen=True)
class Scarce:
  """The defaults of a run on few labelled images (--train_examples=N, or a
  folder of fewer than `epoch_images`), any dataset.

  Attributes:
    epoch_images: an epoch shows the networks about this many images: as many
      passes over the N as make it (ceil(epoch_images / N)), so that epoch
      lines, evaluations and checkpoints keep a full-split epoch's pace.
    epochs, save_interval: what --epochs and --save_interval default to.
    augment: the discriminator's differentiable augmentation (`augment.parse`).
    why, section: what they gain, and the heading of docs/scarce-data.md
      that measured them.
  """
  epoch_images: int
  epochs: int
  save_interval: int
  augment: str
  why: str
  section: str


SCARCE = Scarce(
    epoch_images=60_000, epochs=10, save_interval=2, augment='translation,cutout',
    why='a discriminator that sees 1,000 images learns them by heart; augmented '
        'it does not, and ten full-split epochs of images fit in 15 minutes',
    section='Training length and augmentation')


def passes_per_epoch(scarce: bool, n: int) -> int:
  """Passes over the `n` training images that make one epoch: one, or on few
  images (`config.is_scarce`) as many as show about SCARCE.epoch_images."""
  return max(1, -(-SCARCE.epoch_images // n)) if scarce else 1

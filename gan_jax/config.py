"""Run configuration: one frozen dataclass whose fields are the settings.

Each field declares its default, its flag's help line, the rule a value must
obey, whether a resume must match it, and its `--interactive` prompt;
`gan_jax.cli` makes the flags from them, the prompts, `validate` and the
resume check read them. The package never reads flags.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from gan_jax import datasets, presets

ARCHS = ('mlp_bn', 'mlp', 'mlp_wide', 'dcgan')
DTYPES = ('float32', 'bfloat16')
MODES = ('train', 'sample', 'export')
# The adversarial losses (their formulas: train.LOSSES, which a test keeps equal).
LOSSES = ('ns', 'hinge', 'ls')
MAX_NOISE_SCALE = 10.0  # --noise_scale's upper bound (training's noise has scale 1).
DEFAULT_EPOCHS = 30         # --epochs on the full training split.
DEFAULT_SAVE_INTERVAL = 5   # --save_interval likewise (at most --epochs).
SYNTHETIC_PER_REAL = 1.0    # --synthetic_per_real: the least harmful measured (scarce-data.md).
MAX_SYNTHETIC = 60_000      # The augmentation check's synthetic images, at most.
# The k of precision and recall's k-NN balls (quality.PR_NEIGHBOURS; a test keeps
# them equal): every evaluation needs more than k real and k generated images.
PR_NEIGHBOURS = 3
MIN_EVAL_IMAGES = PR_NEIGHBOURS + 1


def _positive_int(value: Any, maximum: int | None = None) -> str | None:
  if isinstance(value, bool) or not isinstance(value, int):
    return f'must be a whole number, got {value!r}'
  if value < 1:
    return f'must be a positive whole number (>= 1), got {value}'
  if maximum is not None and value > maximum:
    return f'must be at most {maximum:,}, got {value:,}'
  return None


def _int_at_most(maximum: int) -> Callable[[Any], str | None]:
  return lambda value: _positive_int(value, maximum)


def _int_at_least(minimum: int, maximum: int) -> Callable[[Any], str | None]:
  def check(value: Any) -> str | None:
    reason = _positive_int(value, maximum)
    if reason is None and value < minimum:
      return f'must be at least {minimum} (an image of each class), got {value}'
    return reason
  return check


def _images_to_evaluate(what: str, maximum: int | None = None
                        ) -> Callable[[Any], str | None]:
  """A rule for a count of images an evaluation scores: at least `MIN_EVAL_IMAGES`."""
  def check(value: Any) -> str | None:
    reason = _positive_int(value, maximum)
    if reason is None and value < MIN_EVAL_IMAGES:
      reason = (f'must be at least {MIN_EVAL_IMAGES}, got {value}: each evaluation\'s '
                f'precision and recall (k-NN with k={PR_NEIGHBOURS}) need {MIN_EVAL_IMAGES} '
                f'{what}')
    return reason
  return check


def _parsed_by(parse: Callable[[str], Any], expected: str) -> Callable[[Any], str | None]:
  """A rule for a string that `parse` accepts: its ValueError is the reason."""
  def check(value: Any) -> str | None:
    if not isinstance(value, str):
      return f'must be {expected}, got {value!r}'
    try:
      parse(value)
    except ValueError as e:
      return str(e)
    return None
  return check


def _augment_policy(value: str) -> None:
  from gan_jax import augment  # jax only once a policy is checked.
  augment.parse(value)


def _pretrained_name(value: str) -> None:
  from gan_jax import pretrained
  try:
    pretrained.check_name(value)
  except pretrained.PretrainedError as e:
    raise ValueError(str(e)) from None


def _non_negative_int(value: Any) -> str | None:
  if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
    return f'must be a whole number in [0, 2**32), got {value!r}'
  return None


def _above_zero_to(upper: float, example: str) -> Callable[[Any], str | None]:
  """A rule for a finite number in (0, upper]."""
  def check(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return f'must be a number, got {value!r}'
    if not math.isfinite(value) or not 0 < value <= upper:
      return f'must be a number in (0, {upper:g}], e.g. {example}; got {value}'
    return None
  return check


def _in_zero_to(upper: float, example: str | None = None
                ) -> Callable[[Any], str | None]:
  """A rule for a number in [0, upper)."""
  hint = f', e.g. {example};' if example else ','

  def check(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return f'must be a number, got {value!r}'
    if not 0 <= value < upper:
      return f'must be in [0, {upper}){hint} got {value}'
    return None
  return check


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
  def check(value: Any) -> str | None:
    if value not in options:
      return f'must be one of {", ".join(options)}; got {value!r}'
    return None
  return check


def _setting(default: Any, help: str, rule: Callable[[Any], str | None] | None = None, *,
             resume: bool = False, prompt: str | None = None,
             flag_default: Any = dataclasses.MISSING) -> Any:
  """A `Config` field with what every place that shows or checks it needs.

  Args:
    default: the library's default (and the flag's, unless `flag_default`).
    help: the flag's help line (`--help`).
    rule: returns why a value is refused, or None (flags, prompts, `validate`).
    resume: a run resumed from a checkpoint must have the same value.
    prompt: the question `--interactive` asks for it (only the lab parameters).
    flag_default: the flag's default where it differs (None: decided later).
  """
  return dataclasses.field(default=default, metadata={
      'help': help, 'rule': rule, 'resume': resume, 'prompt': prompt,
      'flag_default': default if flag_default is dataclasses.MISSING else flag_default})


def _optional(rule: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
  return lambda value: None if value is None else rule(value)


def _label(value: Any) -> str | None:
  """A class number (its upper bound, the dataset's class count: `validate`)."""
  if value is None or (not isinstance(value, bool) and isinstance(value, int) and value >= 0):
    return None
  return f'must be a class number (0, 1, ...), got {value!r}'


def _dataset_help() -> str:
  short = datasets.short_names()
  others = [a for a in datasets.ALIASES if a not in short]
  return (f'Dataset: {" or ".join(short)} (also accepted: {", ".join(others)}), or the path '
          'of a folder of your own labelled images, PATH/<class name>/*.png (or PATH/train/'
          '<class>/... and PATH/test/<class>/...; docs/own-images.md).')


def _preset_help(text: str, field: str, conditional: bool | None = None) -> str:
  """`text` and the field's default per dataset, from the presets table."""
  return f'{text} Default per dataset: {presets.describe(field, conditional)}.'


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a run needs, one `_setting` per field: its default, flag help,
  rule, whether a resume must match it, and its prompt. A new setting is one
  field here plus the code that uses it; `gan_jax.cli` makes its flag."""
  dataset: str = _setting(
      datasets.DEFAULT, _dataset_help(),
      _parsed_by(datasets.canonical_name, 'a name or a folder path'), resume=True,
      prompt='Dataset')
  skip_bad_images: bool = _setting(
      False, 'With --dataset=PATH: train without the files of the folder that are not '
      'readable images (named at the start) instead of stopping at them.')
  arch: str | None = _setting(  # None: the preset's (presets.py).
      None, _preset_help(
          'Network: mlp_bn (fully connected, BatchNorm in the generator), mlp (the same '
          'without BatchNorm, as the Keras/PyTorch labs), mlp_wide (mlp with a larger '
          'discriminator, 1024-512-256), or dcgan (the TF DCGAN tutorial net, ~24x the '
          'compute per image; for GPUs/TPUs).', 'arch'),
      _optional(_choice(ARCHS)), resume=True)
  conditional: bool = _setting(
      False, 'Train a class-conditional GAN: the generator takes a label, the sample grids '
      'show one class per row, and the quality line adds the label agreement (see --label).',
      resume=True)
  epochs: int | None = _setting(  # None: `training_length`.
      None, f'Number of training epochs (>= 1); default {DEFAULT_EPOCHS}, or '
      f'{presets.SCARCE.epochs} with --train_examples=N, whose epoch is as many passes over '
      f'the N images as make about {presets.SCARCE.epoch_images:,}.',
      # Epochs may be huge (the ETA shows what that means).
      _optional(_int_at_most(10**9)), prompt='Epochs')
  batch_size: int = _setting(32, 'Global batch size; must divide by the number of devices.',
                             _int_at_most(65536), resume=True,
                             prompt='Batch size')
  noise_dim: int = _setting(100, 'Size of the generator input noise.',
                            _int_at_most(4096), resume=True,
                            prompt='Noise dimension')
  learning_rate: float = _setting(4e-4, 'Adam learning rate of both networks.',
                                  _above_zero_to(1, example='0.0002'), resume=True,
                                  prompt='Learning rate')
  beta1: float = _setting(0.5, 'Adam beta1 of both networks, in [0, 1).', _in_zero_to(1),
                          resume=True)
  ema_decay: float = _setting(
      0.999, 'Decay of the moving average of the generator weights that samples and '
      'evaluations use, in [0, 1); 0: sample with the raw weights.', _in_zero_to(1),
      resume=True)
  label_smoothing: float = _setting(
      0.1, "One-sided label smoothing: the discriminator's target for real images is 1 "
      'minus this, in [0, 0.5) (--loss=ns or ls; the hinge loss has no target).',
      _in_zero_to(0.5, example='0.1'), resume=True)
  loss: str = _setting('ns', 'The adversarial loss: ns (non-saturating BCE), hinge, or ls '
                       '(least squares).', _choice(LOSSES), resume=True)
  class_loss_weight: float | None = _setting(  # None: the preset's (presets.py).
      None, _preset_help(
          "Conditional runs: weight of the auxiliary classifier's loss (AC-GAN), which "
          'teaches the discriminator the classes of real images and pushes the generator '
          'towards images of the requested class; in [0, 100), 0: off.', 'class_loss_weight',
          conditional=True),
      _optional(_in_zero_to(100, example='1.0')), resume=True)
  mode_seeking: float | None = _setting(  # None: the preset's (presets.py).
      None, _preset_help(
          "Weight of the mode-seeking term in the generator's loss (Mao et al. 2019), which "
          'rewards different images for different noise: more variety (recall); in '
          '[0, 100), 0: off.', 'mode_seeking'),
      _optional(_in_zero_to(100, example='1.0')), resume=True)
  reconstruction: float | None = _setting(  # None: the preset's (presets.py).
      None, _preset_help(
          "Weight of the reconstruction term in the generator's loss (MDGAN's manifold step, "
          'Che et al. 2017): an encoder maps each real image to noise and the generator '
          'learns to draw it back, so that every real image has noise that draws it: more '
          'variety (recall); in [0, 100), 0: off.', 'reconstruction'),
      _optional(_in_zero_to(100, example='10')), resume=True)
  save_interval: int | None = _setting(  # None: `training_length`.
      None, 'Every N epochs: sample grid, quality evaluation, checkpoint, plots (and always '
      f'at the last epoch). At most --epochs; default {DEFAULT_SAVE_INTERVAL}, or '
      f'{presets.SCARCE.save_interval} with --train_examples (at most --epochs).',
      _optional(_int_at_most(10**9)), prompt='Save images every N epochs')
  seed: int = _setting(0, 'Random seed; a run is reproducible given the seed.',
                       _non_negative_int, resume=True)
  dtype: str = _setting(
      'float32', 'Compute dtype: float32 or bfloat16 (mixed precision: bfloat16 compute, '
      'float32 parameters and losses). Default: bfloat16 on GPU/TPU, float32 on CPU.',
      _choice(DTYPES), resume=True, flag_default=None)
  workdir: str = _setting('.', 'Folder for every output and checkpoint; running again in '
                          'it resumes.')
  data_dir: str | None = _setting(  # None: $TFDS_DATA_DIR, else TFDS's default.
      None, 'TFDS data folder; default $TFDS_DATA_DIR, else ~/tensorflow_datasets.')
  limit: int | None = _setting(None, 'Train on the first N training examples only (quick '
                               'experiments); at least 4 and --batch_size.',
                               _optional(_images_to_evaluate('real images')), resume=True)
  train_examples: int | None = _setting(
      None, 'Train on N labelled training images, balanced across the classes and chosen by '
      '--seed (their indices go into run.json): the scarce-data use, with its own defaults '
      'for --epochs and --augment (docs/scarce-data.md).',
      _optional(_int_at_least(2, maximum=1_000_000)), resume=True)
  augment: str | None = _setting(  # None: presets.SCARCE's with --train_examples, else none.
      None, "The discriminator's differentiable augmentation of real and generated images "
      '(DiffAugment): a comma-separated list of translation, cutout, or none. Default: '
      f'{presets.SCARCE.augment} with --train_examples, else none.',
      _optional(_parsed_by(_augment_policy, 'a comma-separated list of names')),
      resume=True)
  synthetic_per_real: float = _setting(
      SYNTHETIC_PER_REAL, 'The augmentation check (with the CAS): synthetic images added '
      'per real training image (at most ' f'{MAX_SYNTHETIC:,} in all), in (0, 100].',
      _above_zero_to(100, example='10'))
  eval_samples: int = _setting(5000, 'Generated images per quality evaluation (FD, IS); at '
                               'least 4.', _images_to_evaluate('generated images', 100_000),
                               resume=True)
  classifier_dir: str | None = _setting(  # None: the classifier shipped with gan_jax.
      None, 'A folder for your own domain classifier: loaded if it holds one, else trained '
      'and saved there. Default: the classifier shipped with gan_jax, so FD and IS compare '
      'across machines.')
  retrain_classifier: bool = _setting(
      False, 'Train your own domain classifier into --classifier_dir (default '
      '~/.cache/gan_jax/classifiers/<dataset>).')
  keep_checkpoints: int = _setting(3, 'Checkpoints to keep.',
                                   _int_at_most(1000))
  overwrite: bool = _setting(False, 'Delete an earlier run in --workdir and start over '
                             '(only the files gan_jax wrote; anything else stays); with '
                             '--mode=sample or export: replace an earlier sample or export.')
  tensorboard: bool = _setting(False, 'Also log scalars and sample grids to '
                               'WORKDIR/tensorboard (needs tensorboardX).')
  progress: bool = _setting(True, 'Show progress bars (only on a terminal).')
  steps_per_chunk: int = _setting(0, 'Train steps per device loop call; 0: about a tenth '
                                  'of an epoch.', _non_negative_int)
  # Sample mode.
  num_samples: int = _setting(100, 'Images to write in --mode=sample.',
                              _int_at_most(1_000_000))
  sample_dir: str | None = _setting(None, 'Where --mode=sample writes; default '
                                    'WORKDIR/samples.')
  label: int | None = _setting(  # The class to sample (conditional runs only).
      None, 'With --mode=sample on a --conditional run: the class to generate, 0-9 '
      '(a folder\'s: 0 for its first class in sorted order; default: every class in turn).',
      _label)
  noise_scale: float = _setting(
      1.0, 'With --mode=sample or --mode=export: the standard deviation of the noise the '
      'generator is given (training uses 1). Above 1 draws more varied images that look '
      'less real, below 1 the reverse (like the truncation trick); see docs/export.md.',
      _above_zero_to(MAX_NOISE_SCALE, example='1.25'))
  pretrained: str | None = _setting(
      None, 'With --mode=sample or --mode=export: draw from a generator shipped with '
      'gan_jax instead of a run in --workdir, no training needed: one of mnist, '
      'mnist-conditional, fashion, fashion-conditional (docs/pretrained.md).',
      _optional(_parsed_by(_pretrained_name, 'a name')))
  # Export mode (gan_jax.export).
  export_dir: str | None = _setting(
      None, 'Where --mode=export writes; default WORKDIR/export. An existing non-empty '
      'folder needs --overwrite, which replaces only an earlier export.')
  min_confidence: float = _setting(
      0.0, 'With --mode=export on an unconditional run: drop images whose classifier label '
      'is less sure than this, in [0, 1) (drawing more until --num_samples are kept).',
      _in_zero_to(1, example='0.9'))
  cas: bool = _setting(
      True, 'Measure the Classification Accuracy Score (a classifier trained on generated '
      'images, tested on real ones): with --mode=export on the exported images, in '
      'training at the end of a --conditional run; --nocas skips it.')

  def replace(self, **changes: Any) -> 'Config':
    return dataclasses.replace(self, **changes)


FIELDS = dataclasses.fields(Config)
# Per-field rules: each returns None when the value is fine, else the reason.
RULES: dict[str, Callable[[Any], str | None]] = {
    f.name: f.metadata['rule'] for f in FIELDS if f.metadata['rule']}
# What a resumed run must share with its checkpoint.
RESUME_FIELDS = tuple(f.name for f in FIELDS if f.metadata['resume'])
# The lab parameters --interactive asks for, in order: field -> question.
PROMPTS = {f.name: f.metadata['prompt'] for f in FIELDS if f.metadata['prompt']}


def is_scarce(config: Config) -> bool:
  """Few training images, with `presets.SCARCE`'s defaults: --train_examples,
  or a folder with fewer training images than SCARCE.epoch_images (unless
  --limit asks for a quick run, one pass per epoch)."""
  if config.train_examples is not None:
    return True
  size = datasets.get(config.dataset).train_size
  return config.limit is None and size is not None and size < presets.SCARCE.epoch_images


def training_length(config: Config) -> tuple[int, int]:
  """(epochs, save_interval), the unset ones by their rule: DEFAULT_EPOCHS
  and DEFAULT_SAVE_INTERVAL, or on few images (`is_scarce`) `presets.SCARCE`'s;
  the save interval's default at most the epochs."""
  scarce = is_scarce(config)
  epochs = config.epochs
  if epochs is None:
    epochs = presets.SCARCE.epochs if scarce else DEFAULT_EPOCHS
  interval = config.save_interval
  if interval is None:
    interval = min(presets.SCARCE.save_interval if scarce else DEFAULT_SAVE_INTERVAL, epochs)
  return epochs, interval


def resolve(config: Config) -> Config:
  """`config` with what its other fields decide filled in: an unset arch,
  mode-seeking, class-loss or reconstruction weight becomes its preset's
  (`presets.get(dataset, conditional)`), a folder is named by its absolute
  path, an unconditional run has no class
  loss, the training length follows `training_length`, and an unset
  augmentation is `presets.SCARCE`'s on few images (`is_scarce`), else none."""
  if datasets.is_folder(config.dataset):  # One spelling of the folder, whatever the cwd.
    config = config.replace(dataset=datasets.canonical_name(config.dataset))
  preset = presets.get(config.dataset, config.conditional)
  config = config.replace(**{field: getattr(preset, field) for field in presets.FIELDS
                             if getattr(config, field) is None})
  if not config.conditional:
    config = config.replace(class_loss_weight=0.0)
  epochs, save_interval = training_length(config)
  config = config.replace(epochs=epochs, save_interval=save_interval)
  if config.augment is None:
    config = config.replace(augment=presets.SCARCE.augment if is_scarce(config) else 'none')
  return config


def _check_dataset(config: Config) -> None:
  """A folder is read whole here (`datasets.open_folder`: a bad one raises
  `image_folder.FolderError`); then the settings its classes and size bound."""
  if datasets.is_folder(config.dataset):
    datasets.open_folder(config.dataset, config.skip_bad_images)
  elif config.skip_bad_images:
    raise ValueError(f'--skip_bad_images is a setting of --dataset=PATH (a folder of your '
                     f'images); {config.dataset} has none to skip: drop it')
  record = datasets.get(config.dataset)
  if config.label is not None and config.label >= record.num_classes:
    raise ValueError(f'--label: must be a class number from 0 to {record.num_classes - 1} '
                     f'({record.num_classes} classes), got {config.label}')
  if config.train_examples is not None and config.train_examples < record.num_classes:
    raise ValueError(f'--train_examples: must be at least {record.num_classes} (an image '
                     f'of each class), got {config.train_examples}')
  if record.train_size is not None and config.batch_size > record.train_size:
    raise ValueError(f'--batch_size={config.batch_size} is larger than the '
                     f'{record.train_size} training images of {record.name}: an epoch needs '
                     f'one whole batch; use --batch_size={record.train_size} or less')


def check(field: str, value: Any) -> str | None:
  """Returns why `value` is not allowed for `field`, or None if it is."""
  rule = RULES.get(field)
  return rule(value) if rule else None


def validate(config: Config) -> None:
  """Checks every field and the rules that tie fields together.

  Raises:
    ValueError: naming the first bad field, its value and what is allowed.
  """
  for field, rule in RULES.items():
    reason = rule(getattr(config, field))
    if reason:
      raise ValueError(f'--{field}: {reason}')
  _check_dataset(config)
  epochs, save_interval = training_length(config)
  if save_interval > epochs:
    raise ValueError(
        f'--save_interval={save_interval} is larger than '
        f'--epochs={epochs}; use a value between 1 and {epochs}')
  if config.limit is not None and config.batch_size > config.limit:
    raise ValueError(
        f'--batch_size={config.batch_size} is larger than the {config.limit} training '
        f'examples of --limit={config.limit}: an epoch needs one whole batch; use '
        f'--batch_size={config.limit} or less, or --limit={config.batch_size} or more')
  if config.train_examples is not None and config.limit is not None:
    raise ValueError(f'--train_examples={config.train_examples} and --limit={config.limit} '
                     'both choose the training images; give one of them')
  if config.train_examples is not None and config.batch_size > config.train_examples:
    raise ValueError(
        f'--batch_size={config.batch_size} is larger than --train_examples='
        f'{config.train_examples}: a batch would repeat images; use --batch_size='
        f'{config.train_examples} or less')

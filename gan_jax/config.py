"""Run configuration: one frozen dataclass, and the rules a value must obey.

`run.py` turns absl flags into a `Config`; the package never reads flags. The
rules live here so that the flag validators, the interactive prompts and the
library share them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from gan_jax import datasets

ARCHS = ('mlp_bn', 'mlp', 'dcgan')
DTYPES = ('float32', 'bfloat16')
MODES = ('train', 'sample', 'export')
# The adversarial losses (their formulas: train.LOSSES, which a test keeps equal).
LOSSES = ('ns', 'hinge', 'ls')


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a run needs. Defaults are the CLI defaults."""
  dataset: str = 'mnist'
  arch: str | None = None            # None: the dataset's default_arch.
  conditional: bool = False          # Generate images of a requested class.
  epochs: int = 30
  batch_size: int = 32
  noise_dim: int = 100
  learning_rate: float = 4e-4
  beta1: float = 0.5
  ema_decay: float = 0.999          # Generator weight EMA for samples; 0 = off.
  label_smoothing: float = 0.1      # D's target for real images is 1 - this (ns, ls).
  loss: str = 'ns'                  # The adversarial loss: a key of train.LOSSES.
  class_loss_weight: float = 1.0    # AC-GAN class loss (conditional runs); 0 = off.
  save_interval: int = 5
  seed: int = 0
  dtype: str = 'float32'
  workdir: str = '.'
  data_dir: str | None = None       # None: $TFDS_DATA_DIR, else TFDS's default.
  limit: int | None = None          # Train on the first N examples only.
  eval_samples: int = 5000           # Images generated per quality evaluation.
  classifier_dir: str | None = None  # None: the classifier shipped with gan_jax.
  retrain_classifier: bool = False
  keep_checkpoints: int = 3
  overwrite: bool = False
  tensorboard: bool = False
  progress: bool = True              # Progress bars (only shown on a terminal).
  steps_per_chunk: int = 0           # Steps per device loop call; 0 = auto.
  # Sample mode.
  num_samples: int = 100
  sample_dir: str | None = None
  label: int | None = None           # The class to sample (conditional runs only).
  # Export mode (gan_jax.export).
  export_dir: str | None = None      # None: WORKDIR/export.
  min_confidence: float = 0.0        # Unconditional runs: drop images the classifier is less sure of.
  cas: bool = True                   # Measure the Classification Accuracy Score.

  def replace(self, **changes: Any) -> 'Config':
    return dataclasses.replace(self, **changes)


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


def _non_negative_int(value: Any) -> str | None:
  if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
    return f'must be a whole number in [0, 2**32), got {value!r}'
  return None


def _learning_rate(value: Any) -> str | None:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return f'must be a number, got {value!r}'
  if not math.isfinite(value) or not 0 < value <= 1:
    return f'must be a number in (0, 1], e.g. 0.0002; got {value}'
  return None


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


# Per-field rules: each returns None when the value is fine, else the reason.
RULES: dict[str, Callable[[Any], str | None]] = {
    'dataset': lambda value: _choice(tuple(datasets.ALIASES))(value),
    'arch': lambda value: None if value is None else _choice(ARCHS)(value),
    # Upper bounds keep a typo from asking for terabytes; epochs may be huge
    # (the ETA shows what that means).
    'epochs': _int_at_most(10**9),
    'batch_size': _int_at_most(65536),
    'noise_dim': _int_at_most(4096),
    'learning_rate': _learning_rate,
    'beta1': _in_zero_to(1),
    'ema_decay': _in_zero_to(1),
    'label_smoothing': _in_zero_to(0.5, example='0.1'),
    'loss': _choice(LOSSES),
    'class_loss_weight': _in_zero_to(100, example='1.0'),
    'save_interval': _int_at_most(10**9),
    'seed': _non_negative_int,
    'dtype': _choice(DTYPES),
    'eval_samples': _int_at_most(100_000),
    'keep_checkpoints': _int_at_most(1000),
    'num_samples': _int_at_most(1_000_000),
    'steps_per_chunk': _non_negative_int,
    'min_confidence': _in_zero_to(1, example='0.9'),
}


def resolve(config: Config) -> Config:
  """`config` with what its other fields decide filled in: an unset arch
  becomes the dataset's default, and an unconditional run has no class loss."""
  if config.arch is None:
    config = config.replace(arch=datasets.get(config.dataset).default_arch)
  if not config.conditional and config.class_loss_weight:
    config = config.replace(class_loss_weight=0.0)
  return config


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
  if config.limit is not None:
    reason = _positive_int(config.limit)
    if reason:
      raise ValueError(f'--limit: {reason}')
  if config.label is not None and (isinstance(config.label, bool) or not isinstance(
      config.label, int) or not 0 <= config.label < datasets.NUM_CLASSES):
    raise ValueError(f'--label: must be a class number from 0 to '
                     f'{datasets.NUM_CLASSES - 1}, got {config.label!r}')
  if config.save_interval > config.epochs:
    raise ValueError(
        f'--save_interval={config.save_interval} is larger than '
        f'--epochs={config.epochs}; use a value between 1 and {config.epochs}')

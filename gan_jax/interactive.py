"""Interactive prompts for the six lab parameters.

Each answer is checked with the same rules as the command-line flags
(`config.check`) and re-asked with the reason until it is valid. `input_fn` and
`print_fn` are parameters so tests (and other front ends) can script them.
"""

from __future__ import annotations

from typing import Any, Callable

from gan_jax import config as config_lib, datasets
from gan_jax.config import Config

# Answers accepted for the dataset question: a number, or any name --dataset
# takes, each mapped to the dataset's first (short) name: mnist or fashion.
def _dataset_answers() -> dict[str, str]:
  short = {d.name: d.aliases[0] for d in datasets.DATASETS.values()}
  return {**{str(i): name for i, name in enumerate(short.values(), 1)},
          **{alias: short[name] for alias, name in datasets.ALIASES.items()}}


def _dataset_choices() -> str:
  return ', '.join(f'{i} = {name}' for i, name in enumerate(datasets.short_names(), 1))


def _parse_dataset(text: str) -> tuple[Any, str | None]:
  value = _dataset_answers().get(text.lower())
  if value is None:
    choices = ' or '.join(f'{i} ({name})' for i, name in enumerate(datasets.short_names(), 1))
    return None, f'must be {choices}; got {text!r}'
  return value, None


def _parse_int(text: str) -> tuple[Any, str | None]:
  try:
    return int(text), None
  except ValueError:
    return None, f'must be a whole number, got {text!r}'


def _parse_float(text: str) -> tuple[Any, str | None]:
  try:
    return float(text), None
  except ValueError:
    return None, f'must be a number (e.g. 0.0002 or 2e-4), got {text!r}'


def _ask(field: str, question: str, default: Any,
         parse: Callable[[str], tuple[Any, str | None]],
         input_fn: Callable[[str], str], print_fn: Callable[..., None],
         extra_check: Callable[[Any], str | None] | None = None) -> Any:
  """Asks until the answer (or the default, on an empty answer) is valid."""
  while True:
    try:
      answer = input_fn(f'{question} [{default}]: ')
    except EOFError:
      # A closed stdin (piped input ran out) must not end in a traceback.
      print_fn('')  # End the unanswered prompt's line.
      raise SystemExit(
          f'No answer for {field}: input ended (EOF). Run interactively, '
          f'or pass the parameters as flags instead.') from None
    answer = answer.strip()
    if not answer:
      value, reason = default, None
    else:
      value, reason = parse(answer)
    if reason is None:
      reason = config_lib.check(field, value)
    if reason is None and extra_check is not None:
      reason = extra_check(value)
    if reason is None:
      return value
    print_fn(f'  Invalid {field}: {reason}. Please try again.')


def ask_lab_parameters(defaults: Config, input_fn: Callable[[str], str] = input,
                       print_fn: Callable[..., None] = print) -> dict[str, Any]:
  """Asks for dataset, epochs, batch size, noise size, learning rate and
  save interval, in that order.

  An empty answer takes the default in brackets; an invalid one is re-asked
  with the reason. The save interval's default is capped at the chosen epochs.
  Input that ends (EOF) before all answers are given raises SystemExit.

  Args:
    defaults: the values offered as defaults.
    input_fn: reads one answer given a prompt (like `input`).
    print_fn: shows messages (like `print`).

  Returns:
    Those six Config fields and their values, for `Config.replace`.
  """
  print_fn('Lab parameters (press Enter to keep the default in brackets).')
  ask = lambda *args, **kw: _ask(*args, input_fn=input_fn, print_fn=print_fn, **kw)
  values: dict[str, Any] = {}
  values['dataset'] = ask('dataset', f'Dataset: {_dataset_choices()}',
                          defaults.dataset, _parse_dataset)
  values['epochs'] = ask('epochs', 'Epochs', defaults.epochs, _parse_int)
  values['batch_size'] = ask('batch_size', 'Batch size', defaults.batch_size,
                             _parse_int)
  values['noise_dim'] = ask('noise_dim', 'Noise dimension', defaults.noise_dim,
                            _parse_int)
  values['learning_rate'] = ask('learning_rate', 'Learning rate',
                                defaults.learning_rate, _parse_float)
  epochs = values['epochs']

  def within_epochs(value: int) -> str | None:
    if value > epochs:
      return f'must be at most the number of epochs ({epochs}), got {value}'
    return None

  values['save_interval'] = ask(
      'save_interval', 'Save images every N epochs',
      min(defaults.save_interval, epochs), _parse_int, extra_check=within_epochs)
  return values

"""Interactive prompts for the six lab parameters.

Each answer is checked with the same rules as the command-line flags
(`config.check`) and re-asked with the reason, up to `MAX_TRIES` times in a
row; input that ends, or as many bad answers, is one `PromptError` line
(exit 2). A long answer is quoted by its first `QUOTED` characters only.
`input_fn` and `print_fn` are parameters so tests (and other front ends) can
script them.
"""

from __future__ import annotations

from typing import Any, Callable

from gan_jax import config as config_lib, datasets, errors
from gan_jax.config import Config

MAX_TRIES = 5   # Bad answers in a row to one question before giving up.
QUOTED = 40     # Characters of an answer quoted back in a reason.


class PromptError(errors.GanJaxError):
  """No valid answer: input ended, or too many bad answers in a row (exit 2)."""


def _quote(text: str) -> str:
  """`text` as a reason quotes it: repr'd, cut to `QUOTED` characters."""
  if len(text) <= QUOTED:
    return repr(text)
  return f'{text[:QUOTED]!r}... ({len(text):,} characters)'


def _dataset_answers() -> dict[str, str]:
  """Answers to the dataset question: a number, or any name --dataset takes,
  each mapped to the dataset's first (short) name."""
  return {**{str(i): name for i, name in enumerate(datasets.short_names(), 1)},
          **{alias: datasets.get(alias).aliases[0] for alias in datasets.ALIASES}}


def _dataset_choices() -> str:
  return ', '.join(f'{i} = {name}' for i, name in enumerate(datasets.short_names(), 1))


def _parse_dataset(text: str) -> tuple[Any, str | None]:
  value = _dataset_answers().get(text.lower())
  if value is None:
    choices = ' or '.join(f'{i} ({name})' for i, name in enumerate(datasets.short_names(), 1))
    return None, f'must be {choices}; got {_quote(text)}'
  return value, None


def _parse_int(text: str) -> tuple[Any, str | None]:
  try:
    return int(text), None
  except ValueError:
    return None, f'must be a whole number, got {_quote(text)}'


def _parse_float(text: str) -> tuple[Any, str | None]:
  try:
    return float(text), None
  except ValueError:
    return None, f'must be a number (e.g. 0.0002 or 2e-4), got {_quote(text)}'


def _parser(field: str) -> Callable[[str], tuple[Any, str | None]]:
  """How an answer for `field` is read: a dataset by number or name, else by type."""
  if field == 'dataset':
    return _parse_dataset
  kind = {f.name: f.type for f in config_lib.FIELDS}[field].split(' | ')[0]  # 'int | None'
  return {'int': _parse_int, 'float': _parse_float}[kind]


def _ask(field: str, question: str, default: Any,
         parse: Callable[[str], tuple[Any, str | None]],
         input_fn: Callable[[str], str], print_fn: Callable[..., None],
         extra_check: Callable[[Any], str | None] | None = None) -> Any:
  """Asks until the answer (or the default, on an empty answer) is valid.

  Raises:
    PromptError: input ended, or `MAX_TRIES` bad answers in a row.
  """
  for _ in range(MAX_TRIES):
    try:
      answer = input_fn(f'{question} [{default}]: ')
    except EOFError:
      # A closed stdin (piped input ran out) must not end in a traceback.
      print_fn('')  # End the unanswered prompt's line.
      raise PromptError(
          f'--interactive: no answer for {field}: input ended (EOF); nothing was started; '
          'run it in a terminal, or pass the parameters as flags instead') from None
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
  raise PromptError(
      f'--interactive: no valid answer for {field} in {MAX_TRIES} tries (the last: '
      f'{reason}); nothing was started; pass the parameters as flags instead '
      f'(--{field}=...)')


def _question(field: str, question: str) -> str:
  return f'{question}: {_dataset_choices()}' if field == 'dataset' else question


def ask_lab_parameters(defaults: Config, input_fn: Callable[[str], str] = input,
                       print_fn: Callable[..., None] = print) -> dict[str, Any]:
  """Asks for the lab parameters of `config.PROMPTS` (dataset, epochs, batch
  size, noise size, learning rate, save interval), in that order.

  An empty answer takes the default in brackets; an invalid one is re-asked
  with the reason. The save interval's default is capped at the chosen epochs.
  Input that ends (EOF), or `MAX_TRIES` bad answers in a row: `PromptError`.

  Args:
    defaults: the values offered as defaults.
    input_fn: reads one answer given a prompt (like `input`).
    print_fn: shows messages (like `print`).

  Returns:
    Those six Config fields and their values, for `Config.replace`.
  """
  print_fn('Lab parameters (press Enter to keep the default in brackets).')
  values: dict[str, Any] = {}
  for field, question in config_lib.PROMPTS.items():
    default, extra_check = getattr(defaults, field), None
    if field == 'epochs':
      default = config_lib.training_length(defaults)[0]
    if field == 'save_interval':  # At most the epochs just chosen.
      epochs = values['epochs']
      default = min(config_lib.training_length(defaults.replace(epochs=epochs))[1], epochs)
      extra_check = lambda value, epochs=epochs: (
          f'must be at most the number of epochs ({epochs}), got {value}'
          if value > epochs else None)
    values[field] = _ask(field, _question(field, question), default, _parser(field),
                         input_fn=input_fn, print_fn=print_fn, extra_check=extra_check)
  return values

"""Tests for gan_jax.interactive with scripted answers."""

from __future__ import annotations

import pytest

from gan_jax import errors
from gan_jax.config import Config
from gan_jax.interactive import MAX_TRIES, PromptError, ask_lab_parameters


class Script:
  """Feeds answers to `input_fn`, recording prompts; EOF when they run out."""

  def __init__(self, *answers: str):
    self.answers = list(answers)
    self.prompts: list[str] = []
    self.printed: list[str] = []

  def input(self, prompt: str) -> str:
    self.prompts.append(prompt)
    if not self.answers:
      raise EOFError
    return self.answers.pop(0)

  def print(self, *args) -> None:
    self.printed.append(' '.join(str(a) for a in args))

  def ask(self, defaults: Config = Config()) -> dict:
    return ask_lab_parameters(defaults, input_fn=self.input, print_fn=self.print)


def test_empty_answers_take_defaults():
  script = Script('', '', '', '', '', '')
  assert script.ask() == {'dataset': 'mnist', 'epochs': 30, 'batch_size': 32,
                          'noise_dim': 100, 'learning_rate': 4e-4,
                          'save_interval': 5}
  assert len(script.prompts) == 6
  # Each prompt shows its default.
  for prompt, default in zip(script.prompts, ('mnist', 30, 32, 100, 0.0004, 5)):
    assert f'[{default}]' in prompt
  assert script.answers == []


def test_answers_in_order_and_fashion_choice():
  script = Script('2', '12', '64', '32', '1e-3', '4')
  values = script.ask()
  assert values == {'dataset': 'fashion', 'epochs': 12, 'batch_size': 64,
                    'noise_dim': 32, 'learning_rate': 1e-3, 'save_interval': 4}
  assert isinstance(values['epochs'], int)
  assert isinstance(values['learning_rate'], float)
  assert Config().replace(**values).dataset == 'fashion'
  assert ['Dataset' in script.prompts[0], 'Epochs' in script.prompts[1],
          'Batch' in script.prompts[2], 'Noise' in script.prompts[3],
          'Learning' in script.prompts[4], 'Save' in script.prompts[5]] == [True] * 6


@pytest.mark.parametrize('answer,expected', [
    ('1', 'mnist'), ('MNIST', 'mnist'), (' fashion ', 'fashion'),
    ('Fashion_MNIST', 'fashion')])
def test_dataset_spellings(answer, expected):
  assert Script(answer, '', '', '', '', '').ask()['dataset'] == expected


def test_bad_values_are_reasked_with_reason():
  script = Script('3', 'mnist',          # Unknown dataset.
                  'ten', '0', '-4', '10',  # Not a number, zero, negative.
                  '1.5', '16',             # Not whole.
                  '', 'abc', 'nan', '0', '0.001',
                  '11', '')               # > epochs; then default 5 <= 10.
  values = script.ask()
  assert values == {'dataset': 'mnist', 'epochs': 10, 'batch_size': 16,
                    'noise_dim': 100, 'learning_rate': 0.001, 'save_interval': 5}
  errors = [line for line in script.printed if 'Invalid' in line]
  assert len(errors) == 9
  text = '\n'.join(errors)
  assert "Invalid dataset: must be 1 (mnist) or 2 (fashion); got '3'" in text
  assert "Invalid epochs: must be a whole number, got 'ten'" in text
  assert 'Invalid epochs: must be a positive whole number (>= 1), got 0' in text
  assert "Invalid batch_size: must be a whole number, got '1.5'" in text
  assert 'Invalid learning_rate: must be a number in (0, 1], e.g. 0.0002; got nan' in text
  assert 'Invalid save_interval: must be at most the number of epochs (10), got 11' in text


def test_save_interval_default_capped_at_epochs():
  script = Script('', '3', '', '', '', '')
  assert script.ask()['save_interval'] == 3
  assert '[3]' in script.prompts[-1]


def test_eof_is_one_error_with_exit_2():
  script = Script('2', '5')  # Input ends at the batch size question.
  with pytest.raises(PromptError) as exc:
    script.ask()
  assert str(exc.value) == ('--interactive: no answer for batch_size: input ended (EOF); '
                            'nothing was started; run it in a terminal, or pass the '
                            'parameters as flags instead')
  assert exc.value.exit_code == 2 and isinstance(exc.value, errors.GanJaxError)
  assert exc.value.__context__ is None or exc.value.__suppress_context__


def test_five_bad_answers_in_a_row_give_up_and_a_long_one_is_quoted_short():
  long = 'y' * 5_000_000
  script = Script('y', 'yes', long, '7', 'y', 'never asked')
  with pytest.raises(PromptError) as exc:
    script.ask()
  assert len(script.prompts) == MAX_TRIES == 5 and script.answers == ['never asked']
  message = str(exc.value)
  assert message.startswith('--interactive: no valid answer for dataset in 5 tries (the last: '
                            "must be 1 (mnist) or 2 (fashion); got 'y')")
  assert message.endswith('pass the parameters as flags instead (--dataset=...)')
  quoted, = [line for line in script.printed if '5,000,000 characters' in line]
  assert len(quoted) < 200 and f"got '{'y' * 40}'... (5,000,000 characters)" in quoted
  assert sum(len(line) for line in script.printed) < 2000
  # Good answers in between start the count again.
  again = Script('x', 'x', 'x', 'x', '1', 'x', 'x', 'x', 'x', '3', '', '', '', '')
  assert again.ask()['epochs'] == 3

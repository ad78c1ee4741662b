"""What a run reports: the epoch line, durations, and the silent writer of
every process but 0."""

import pytest

from gan_jax import report
from gan_jax.config import Config


def test_epoch_line_format():
  line = report.format_epoch_line(10, 50, {'d_loss': 0.531, 'd_acc': 0.78125, 'g_loss': 1.2449})
  assert line == 'Epoch 10/50 | D_loss: 0.53 | D_acc: 78.12% | G_loss: 1.24'
  assert report.format_epoch_line(1, 2, {'d_loss': 1, 'd_acc': 1, 'g_loss': 0},
                                   ('3.0s',)).endswith(' | 3.0s')


def test_durations_read_as_a_person_writes_them():
  assert [report.format_duration(s) for s in (42, 185, 7380, 41 * 86400 + 7200)] == [
      '42s', '3m05s', '2h03m', '41d02h']


def test_the_silent_writer_reports_nothing_and_knows_only_the_reporters_calls():
  silent = report.Silent()
  assert silent.evaluate(3, None, None) == {} and silent.final(None, [], None, 1.0, []) == {}
  silent.write('not shown')  # No output, no error.
  with pytest.raises(AttributeError):
    silent.no_such_report()


def test_process_zero_gets_the_reporter():
  assert isinstance(report.make(Config(), print), report.Reporter)

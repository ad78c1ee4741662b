"""Atomic writes: a failed write leaves the old file and no temporary file."""

import os

import pytest

from gan_jax import files


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
  path = tmp_path / 'report.json'
  files.write_json(str(path), {'a': 1})

  def broken_replace(src, dst):
    raise OSError('disk full')

  monkeypatch.setattr(os, 'replace', broken_replace)
  with pytest.raises(OSError):
    files.write_json(str(path), {'a': 2})
  monkeypatch.undo()
  assert path.read_text().strip().startswith('{') and '"a": 1' in path.read_text()
  assert [p.name for p in tmp_path.iterdir()] == ['report.json']


def test_jsonl_round_trip_and_file_mode(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  files.write_jsonl(path, [{'epoch': 1}])
  files.write_jsonl(path, [{'epoch': 1}, {'epoch': 2}])
  assert files.read_jsonl(path) == [{'epoch': 1}, {'epoch': 2}]
  assert os.stat(path).st_mode & 0o044  # Readable by others, unlike mkstemp's 0600.


def test_append_jsonl_adds_a_line_and_a_failed_append_leaves_whole_lines(tmp_path, monkeypatch):
  path = str(tmp_path / 'metrics.jsonl')
  files.write_jsonl(path, [{'epoch': 1}])
  inode = os.stat(path).st_ino
  files.append_jsonl(path, {'epoch': 2})
  assert files.read_jsonl(path) == [{'epoch': 1}, {'epoch': 2}]
  assert os.stat(path).st_ino == inode  # Appended to, not replaced.

  def disk_full(fd):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(os, 'fsync', disk_full)
  with pytest.raises(OSError):
    files.append_jsonl(path, {'epoch': 3, 'pad': 'x' * 10_000})
  monkeypatch.undo()
  assert files.read_jsonl(path) == [{'epoch': 1}, {'epoch': 2}]


def test_a_damaged_record_names_no_path(tmp_path):
  (tmp_path / files.RECORD).write_bytes(b'metrics.jsonl\n\xff\xfe\x00garbage\nplots/losses.png\n')
  recorded = files.recorded(str(tmp_path))
  assert {'metrics.jsonl', 'plots/losses.png'} <= recorded and len(recorded) == 3

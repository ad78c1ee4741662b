"""Tests for gan_jax.tensorboard: events land on disk and read back."""

from __future__ import annotations

import builtins
import glob
import os
import struct

import numpy as np
import pytest

import tensorboardX  # noqa: F401  A requirement: these tests must run, never skip.

from gan_jax import tensorboard


def _read_events(logdir: str) -> list:
  """Parses the TFRecord-framed Event protos of every event file in `logdir`.

  Framing: uint64 length, uint32 crc, payload, uint32 crc (CRCs not checked).
  tensorboard's own reader would pull in the tensorboard package; this does not.
  """
  from tensorboardX.proto import event_pb2
  events = []
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack('<Q', data[pos:pos + 8])
      payload = data[pos + 12:pos + 12 + length]
      assert len(payload) == length, 'truncated record'
      events.append(event_pb2.Event.FromString(payload))
      pos += 12 + length + 4
  return events


def _event_files(logdir: str) -> list[str]:
  return glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))


def test_scalars_and_image_round_trip(tmp_path):
  logdir = str(tmp_path / 'tb')
  with tensorboard.TensorBoardWriter(logdir) as writer:
    writer.scalars(1, {'d_loss': 0.5, 'g_loss': 2.0, 'epoch': 1, 'note': 'x',
                       'fd': None, 'flag': True})
    writer.flush()
    assert len(_event_files(logdir)) == 1
    writer.scalars(2, {'d_loss': 0.25, 'is': np.float32(7.5)})
    writer.image(2, 'samples', np.arange(64, dtype=np.uint8).reshape(8, 8))
    writer.image(3, 'samples', np.zeros((8, 8, 1), np.uint8))
  # Leaving the block closes the writer, which writes every queued event
  # (tensorboardX writes from a background thread, so flush() alone may lag).
  writer.close()  # A second close is harmless.

  scalars = {}
  images = []
  for event in _read_events(logdir):
    for value in event.summary.value:
      if value.HasField('image'):
        images.append((event.step, value.tag, value.image.height, value.image.width))
      else:
        scalars[(event.step, value.tag)] = value.simple_value
  assert scalars == {(1, 'd_loss'): 0.5, (1, 'g_loss'): 2.0, (1, 'epoch'): 1.0,
                     (2, 'd_loss'): 0.25, (2, 'is'): 7.5}
  assert images == [(2, 'samples', 8, 8), (3, 'samples', 8, 8)]


def test_image_rejects_bad_input(tmp_path):
  with tensorboard.TensorBoardWriter(str(tmp_path)) as writer:
    with pytest.raises(ValueError, match='uint8'):
      writer.image(0, 'x', np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match='shape'):
      writer.image(0, 'x', np.zeros((2, 4, 4), np.uint8))


def test_missing_package_says_what_to_install(tmp_path, monkeypatch):
  real_import = builtins.__import__

  def fake_import(name, *args, **kwargs):
    if name.startswith('tensorboardX'):
      raise ImportError('No module named tensorboardX')
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, '__import__', fake_import)
  with pytest.raises(ImportError, match='pip install tensorboardX'):
    tensorboard.TensorBoardWriter(str(tmp_path))

"""Optional TensorBoard logging (`--tensorboard`).

Uses `tensorboardX`, which writes TensorBoard event files with only numpy and
protobuf: no TensorFlow needed. It is imported when a writer is created, so
runs without `--tensorboard` never need it installed.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from gan_jax import files

_INSTALL_HINT = ('--tensorboard needs the tensorboardX package: '
                 'pip install tensorboardX  (or run without --tensorboard)')


class TensorBoardWriter:
  """Writes scalars and grayscale images to TensorBoard event files.

  Usable as a context manager; `close()` flushes everything to disk.
  """

  def __init__(self, logdir: str, flush_secs: int = 30):
    """Opens an event file in `logdir`.

    Args:
      logdir: folder for the event files (created if missing).
      flush_secs: how often pending events are flushed in the background.

    Raises:
      ImportError: tensorboardX is not installed, saying how to install it.
    """
    try:
      from tensorboardX import SummaryWriter  # Lazy: an optional dependency.
    except ImportError as e:
      raise ImportError(_INSTALL_HINT) from e
    self.logdir = logdir
    before = set(os.listdir(logdir)) if os.path.isdir(logdir) else set()
    self._writer = SummaryWriter(logdir=logdir, flush_secs=flush_secs)
    for name in sorted(set(os.listdir(logdir)) - before):  # Its event file.
      files.note(os.path.join(logdir, name))

  def scalars(self, step: int, values: Mapping[str, Any]) -> None:
    """Logs each numeric entry of `values` under its key at `step`.

    Non-numeric values (None, strings, lists) are skipped, so a metrics record
    can be passed as-is.
    """
    for tag, value in values.items():
      if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        continue
      self._writer.add_scalar(tag, float(value), global_step=int(step))

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """Logs a uint8 image: (H, W), (H, W, 1) grayscale or (H, W, 3) RGB.

    Raises:
      ValueError: if the array is not uint8 or not one of those shapes.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
      raise ValueError(f'image must be uint8, got {image.dtype}')
    if image.ndim == 3 and image.shape[-1] == 1:
      image = image[..., 0]
    if image.ndim == 2:
      formats = 'HW'
    elif image.ndim == 3 and image.shape[-1] == 3:
      formats = 'HWC'
    else:
      raise ValueError(f'image must be (H, W), (H, W, 1) or (H, W, 3), '
                       f'got shape {image.shape}')
    self._writer.add_image(tag, image, global_step=int(step), dataformats=formats)

  def flush(self) -> None:
    """Flushes the event file.

    tensorboardX writes events from a background thread, so events logged
    just before may still be queued; `close()` writes all of them.
    """
    self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the event file; safe to call twice."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def __enter__(self) -> 'TensorBoardWriter':
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

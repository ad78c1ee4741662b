"""Atomic file output: every PNG, JSON and CSV is written to a temporary file
in the same folder and renamed into place, so a kill never leaves a truncated
file behind. Inside `recording_outputs(workdir)` each path written is first
noted in the workdir's record (`RECORD`), so --overwrite removes only those."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from typing import Any, Iterator

import numpy as np
from PIL import Image

_UMASK = os.umask(0)
os.umask(_UMASK)

# What gan_jax wrote in a workdir: one path per line, relative to the workdir.
RECORD = '.gan_jax-outputs'
_recording: list[tuple[str, set[str]]] = []  # (workdir, paths noted) while recording


@contextlib.contextmanager
def recording_outputs(workdir: str) -> Iterator[None]:
  """Within it, `write_bytes` notes each path under `workdir` in its record."""
  _recording.append((os.path.abspath(workdir), set()))
  try:
    yield
  finally:
    _recording.pop()


def record(workdir: str, path: str) -> None:
  """Notes `path` in `workdir`'s record (before writing it: a cut-short write
  leaves a record of a missing file, never an unrecorded one)."""
  workdir = os.path.abspath(workdir)
  rel = os.path.relpath(os.path.abspath(path), workdir)
  if rel.startswith(os.pardir) or rel == RECORD:
    return
  noted = next((n for w, n in _recording if w == workdir), None)
  if noted is not None and rel in noted:
    return
  with open(os.path.join(workdir, RECORD), 'a', encoding='utf-8') as f:
    f.write(rel + '\n')
  if noted is not None:
    noted.add(rel)


def recorded(workdir: str) -> set[str] | None:
  """The paths `workdir`'s record holds (relative), or None without a record
  (a damaged line names no path of gan_jax's: what it named is kept)."""
  try:
    with open(os.path.join(workdir, RECORD), encoding='utf-8', errors='replace') as f:
      return {line.rstrip('\n') for line in f if line.strip()}
  except FileNotFoundError:
    return None


def note(path: str) -> None:
  """Notes `path` in the record of the workdir being recorded, if any."""
  if _recording:
    record(_recording[-1][0], path)


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (temporary file + rename)."""
  note(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.basename(path))
  try:
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode.
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def make_temp_dir(parent: str, prefix: str) -> str:
  """A new folder in `parent` named `prefix` + 8 random characters, with the
  usual mode of a folder (mkdtemp makes 0700): the temporary form of a folder
  that is renamed into place once complete."""
  path = tempfile.mkdtemp(dir=parent, prefix=prefix)
  os.chmod(path, 0o777 & ~_UMASK)
  return path


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  write_bytes(path, text.encode('utf-8'))


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON to `path` atomically."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=False) + '\n')


def write_jsonl(path: str, records: list[dict[str, Any]]) -> None:
  """Writes one JSON object per line, atomically (the whole file each time)."""
  write_text(path, ''.join(json.dumps(r) + '\n' for r in records))


def append_jsonl(path: str, record: dict[str, Any]) -> None:
  """Appends one JSON object as a line, flushed to disk; a failed append
  (disk full) is cut back off, so the file only ever holds whole lines."""
  note(path)
  with open(path, 'ab') as f:
    size = f.tell()
    try:
      f.write((json.dumps(record) + '\n').encode('utf-8'))
      f.flush()
      os.fsync(f.fileno())
    except BaseException:
      f.truncate(size)
      raise


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """Reads a JSON-lines file; a missing file reads as an empty list."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def save_png(path: str, image: np.ndarray) -> None:
  """Saves a uint8 (H, W) or (H, W, 1) grayscale, or (H, W, 3) RGB, array as PNG atomically."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  buf = io.BytesIO()
  # Pillow writes the same bytes for the same pixels: reproducible outputs.
  Image.fromarray(image).save(buf, format='PNG')
  write_bytes(path, buf.getvalue())

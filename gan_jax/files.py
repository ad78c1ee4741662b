"""Atomic file output: every PNG, JSON and CSV is written to a temporary file
in the same folder and renamed into place, so a kill never leaves a truncated
file behind."""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

import numpy as np
from PIL import Image

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (temporary file + rename)."""
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


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  write_bytes(path, text.encode('utf-8'))


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON to `path` atomically."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=False) + '\n')


def write_jsonl(path: str, records: list[dict[str, Any]]) -> None:
  """Writes one JSON object per line, atomically (the whole file each time)."""
  write_text(path, ''.join(json.dumps(r) + '\n' for r in records))


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

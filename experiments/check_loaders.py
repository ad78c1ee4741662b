"""Loads an export folder with Keras and torchvision as docs/export.md shows,
and checks each against the folder's data.npz: the same images with the
same labels, every label the class index.

Neither library is a gan_jax dependency, so this runs in an environment of
its own, not in the tests:

  python3 -m venv /tmp/loaders && /tmp/loaders/bin/pip install torch torchvision tensorflow-cpu
  /tmp/loaders/bin/python experiments/check_loaders.py DIR [DIR ...]

Prints one JSON line per folder and library (each library in its own
process); exits 1 if any check fails.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np


def _by_file(folder: str) -> dict[str, tuple[np.ndarray, int]]:
  """'train/<label>/NNNNN.png' -> (pixels, label), from data.npz (row i is
  the file numbered i, as labels.csv lists them)."""
  data = np.load(os.path.join(folder, 'data.npz'))
  return {f'train/{y}/{i:05d}.png': (x, int(y))
          for i, (x, y) in enumerate(zip(data['x'], data['y']))}


def keras_pairs(folder: str):
  """(relative path, pixels, label) of every image, through Keras."""
  import keras
  # As docs/export.md loads it; shuffle=False so that file_paths follow the batches.
  ds = keras.utils.image_dataset_from_directory(
      os.path.join(folder, 'train'), color_mode='grayscale', image_size=(28, 28),
      shuffle=False, batch_size=256, verbose=False)
  paths = iter(ds.file_paths)
  for images, labels in ds:
    for image, label in zip(np.asarray(images), np.asarray(labels)):
      yield os.path.relpath(next(paths), folder), image[..., 0], int(label)


def torchvision_pairs(folder: str):
  """(relative path, pixels, label) of every image, through torchvision."""
  import torchvision
  ds = torchvision.datasets.ImageFolder(os.path.join(folder, 'train'), allow_empty=True)
  for (path, label), (image, _) in zip(ds.samples, ds):
    yield os.path.relpath(path, folder), np.asarray(image.convert('L')), int(label)


def check(folder: str, name: str, pairs) -> dict:
  expected = _by_file(folder)
  seen, wrong_label, wrong_pixels, unknown = set(), 0, 0, 0
  for path, pixels, label in pairs(folder):
    if path not in expected:  # A file data.npz does not list, or in another folder.
      unknown += 1
      continue
    x, y = expected[path]
    seen.add(path)
    wrong_label += label != y or os.path.basename(os.path.dirname(path)) != str(label)
    wrong_pixels += not np.array_equal(np.round(pixels).astype(np.uint8), x)
  return {'folder': folder, 'loader': name, 'images': len(seen), 'expected': len(expected),
          'wrong_labels': int(wrong_label), 'wrong_pixels': int(wrong_pixels),
          'unknown_files': unknown,
          'ok': seen == set(expected) and not (wrong_label or wrong_pixels or unknown)}


LOADERS = {'keras': keras_pairs, 'torchvision': torchvision_pairs}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('folders', nargs='+', metavar='DIR', help='export folders')
  parser.add_argument('--only', choices=LOADERS, help='one library (the default: each in turn)')
  args = parser.parse_args()
  if args.only:  # One library per process: TensorFlow and torch crash in one.
    results = [check(folder, args.only, LOADERS[args.only]) for folder in args.folders]
    for r in results:
      print(json.dumps(r), flush=True)
    sys.exit(0 if results and all(r['ok'] for r in results) else 1)
  failed = [subprocess.run([sys.executable, __file__, f'--only={name}', *args.folders]
                           ).returncode for name in LOADERS]
  sys.exit(1 if any(failed) else 0)


if __name__ == '__main__':
  main()

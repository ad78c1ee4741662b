"""Your own images: a folder of labelled images, read as a dataset.

Two layouts, as torchvision's and TFDS's ImageFolder::

  PATH/<class name>/*.png|jpg|...                 (a 10% hold-out is the test split)
  PATH/train/<class name>/...  PATH/test/<class name>/...

Class names are the folder names in sorted order (label 0 is the first).
Every image is read with PIL and converted to the networks' 28x28 grayscale
(uint8 here; [-1, 1] in `input_pipeline`), and a folder is read whole once
per process, so everything wrong with it (missing, one class, too few images,
unreadable files) is one `FolderError` before any work. Hidden files (a
leading dot, e.g. .DS_Store) are not images and are passed over.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import os
from typing import Any

import numpy as np

from gan_jax import errors

MAX_CLASSES = 100      # The most classes a folder may have (a class per grid row).
MIN_CLASS_IMAGES = 10  # Per class: the hold-out keeps at least one for testing.
HOLD_OUT = 0.1         # The test split of a folder without PATH/test: 10% of each class.
SIDE = 28              # Every image becomes SIDE x SIDE grayscale.
EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.pgm',
              '.ppm')
SKIP_FLAG = '--skip_bad_images'  # The setting that passes over unreadable files.


class FolderError(errors.GanJaxError):
  """The folder cannot be a dataset; the message names the problem and the fix."""


@dataclasses.dataclass(frozen=True, eq=False)
class Folder:
  """A read folder: each split's files (relative to `path`), images (N, 28, 28)
  uint8 and labels, in file-name order (then class), and what was done to
  them."""
  path: str
  class_names: tuple[str, ...]
  files: dict[str, tuple[str, ...]]       # 'train', 'test' -> relative paths.
  images: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  held_out: bool                          # True: the test split is the 10% hold-out.
  converted: dict[str, int]               # What was converted: e.g. {'RGB': 3, '64x64': 3}.
  skipped: tuple[str, ...]                # Files passed over with --skip_bad_images.

  @functools.cached_property
  def sha256(self) -> str:
    """The content digest: class names, images and labels of both splits. It
    keys the folder's domain classifier, so a copy elsewhere reuses it."""
    h = hashlib.sha256('\n'.join(self.class_names).encode())
    for split in ('train', 'test'):
      h.update(split.encode())
      h.update(np.ascontiguousarray(self.images[split]).tobytes())
      h.update(np.ascontiguousarray(self.labels[split], np.int64).tobytes())
    return h.hexdigest()

  def summary(self) -> str:
    """One line on what was read, for the start of a run."""
    n_train, n_test = len(self.labels['train']), len(self.labels['test'])
    names = ', '.join(self.class_names[:6]) + (', ...' if len(self.class_names) > 6 else '')
    how = (f'{100 * HOLD_OUT:.0f}% of each class held out as the test split'
           if self.held_out else 'test split from test/')
    line = (f'folder {self.path}: {len(self.class_names)} classes ({names}), '
            f'{n_train:,} training and {n_test:,} test images ({how})')
    if self.converted:
      line += ('; converted to 28x28 grayscale: ' +
               ', '.join(f'{n:,} {what}' for what, n in sorted(self.converted.items())))
    if self.skipped:
      line += f'; {len(self.skipped):,} unreadable files skipped ({SKIP_FLAG})'
    return line

  def record(self) -> dict[str, Any]:
    """What run.json keeps: enough to rebuild the same splits."""
    return {'path': self.path, 'sha256': self.sha256, 'class_names': list(self.class_names),
            'held_out': self.held_out, 'train_files': list(self.files['train']),
            'test_files': list(self.files['test']), 'skipped': list(self.skipped)}


def is_path(value: str) -> bool:
  """Whether a --dataset value names a folder rather than a built-in dataset."""
  return os.sep in value or value.startswith(('.', '~')) or os.path.isdir(value)


def _visible(names: list[str]) -> list[str]:
  return sorted(n for n in names if not n.startswith('.'))


def _class_dirs(root: str) -> tuple[list[str], list[str]]:
  """The class folders of `root` and the files lying beside them."""
  try:
    entries = _visible(os.listdir(root))
  except OSError as e:
    raise FolderError(f'cannot read the folder {root} ({e.strerror}); check its '
                      'permissions') from None
  dirs = [n for n in entries if os.path.isdir(os.path.join(root, n))]
  stray = [n for n in entries if n not in dirs]
  return dirs, stray


def _files_of(class_dir: str) -> list[str]:
  """Every visible file under a class folder (sub-folders included), relative to it."""
  found = []
  for top, dirs, names in os.walk(class_dir):
    dirs[:] = _visible(dirs)
    rel = os.path.relpath(top, class_dir)
    found += [n if rel == '.' else os.path.join(rel, n) for n in _visible(names)]
  return sorted(found)


def _read_image(path: str) -> tuple[np.ndarray | None, list[str], str | None]:
  """(28x28 uint8 image, what was converted, None) or (None, [], why unreadable)."""
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(path) as im:
      im.load()
      changes = []
      if im.mode.startswith(('I', 'F')):  # 16-bit or float scans: their range onto 0-255.
        changes.append(im.mode)
        pixels = np.asarray(im, np.float64)
        top = 65535.0 if im.mode.startswith('I;16') else max(float(pixels.max()), 1.0)
        im = Image.fromarray(np.round(np.clip(pixels / top, 0, 1) * 255).astype(np.uint8), 'L')
      elif im.mode != 'L':
        changes.append(im.mode)
        im = im.convert('L')
      if im.size != (SIDE, SIDE):
        changes.append(f'{im.size[0]}x{im.size[1]}')
        im = im.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
      return np.asarray(im, np.uint8), changes, None
  except UnidentifiedImageError:
    return None, [], 'not an image'
  except (OSError, ValueError, SyntaxError) as e:  # Truncated, damaged, unreadable.
    return None, [], (getattr(e, 'strerror', None) or str(e) or type(e).__name__)[:80]


def _fix_line(path: str) -> str:
  return (f'lay it out as {path}/<class name>/<image files> (or {path}/train/<class>/... '
          f'and {path}/test/<class>/...), at least {MIN_CLASS_IMAGES} images in each of '
          f'2 to {MAX_CLASSES} classes')


def _scan(path: str) -> tuple[tuple[str, ...], dict[str, list[tuple[str, int]]], bool, list[str]]:
  """Class names, each split's (relative path, label), whether the test
  split is to be held out, and the stray files beside the class folders."""
  if not os.path.exists(path):
    raise FolderError(f'--dataset={path}: no such folder; give a built-in dataset '
                      f'(mnist, fashion) or a folder of labelled images: {_fix_line(path)}')
  if not os.path.isdir(path):
    raise FolderError(f'--dataset={path} is a file, not a folder; {_fix_line(path)}')
  dirs, stray = _class_dirs(path)
  split_layout = 'train' in dirs and ('test' in dirs or dirs == ['train'])
  roots = {'train': os.path.join(path, 'train')}
  if split_layout and 'test' in dirs:
    roots['test'] = os.path.join(path, 'test')
  if not split_layout:
    roots = {'train': path}
  class_names, _ = _class_dirs(roots['train'])
  if split_layout:
    stray += [os.path.join('train', s) for s in _class_dirs(roots['train'])[1]]
  if not class_names:
    what = 'is empty' if not stray else 'has no class folders, only files'
    raise FolderError(f'--dataset={path} {what}; {_fix_line(path)}')
  if len(class_names) == 1:
    raise FolderError(f'--dataset={path} has one class only ({class_names[0]!r}): a '
                      f'dataset needs at least 2; {_fix_line(path)}')
  if len(class_names) > MAX_CLASSES:
    raise FolderError(f'--dataset={path} has {len(class_names)} class folders, more than '
                      f'gan_jax takes ({MAX_CLASSES}); merge classes or split the folder')
  files: dict[str, list[tuple[str, int]]] = {}
  for split, root in roots.items():
    prefix = os.path.relpath(root, path)
    if split == 'test':
      test_classes, test_stray = _class_dirs(root)
      stray += [os.path.join('test', s) for s in test_stray]
      unknown = sorted(set(test_classes) - set(class_names))
      if unknown:
        raise FolderError(f'{root} has class folders that {roots["train"]} lacks '
                          f'({", ".join(unknown[:5])}); both splits need the same classes')
    files[split] = [(os.path.normpath(os.path.join(prefix, name, f)), label)
                    for label, name in enumerate(class_names)
                    for f in (_files_of(os.path.join(root, name))
                              if os.path.isdir(os.path.join(root, name)) else [])]
  return tuple(class_names), files, 'test' not in roots, stray


def _hold_out(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """A stratified, fixed hold-out: round(HOLD_OUT * n) (at least one) of each
  class, drawn with seed 0, so every run on the folder tests on the same images."""
  rng = np.random.default_rng(0)
  test = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    test.append(rng.permutation(members)[:max(1, round(HOLD_OUT * len(members)))])
  return np.sort(np.concatenate(test))


# The folders this process has read: (path, skip_bad) -> (their files' sizes
# and times, the result), so a command reads a folder once however many of
# its phases ask, and again when a file changed.
_READ: dict[tuple[str, bool], tuple[tuple[Any, ...], Folder]] = {}


def read(path: str, skip_bad: bool = False) -> Folder:
  """Reads a folder of labelled images whole (see the module docstring);
  again only when one of its files changed since this process last read it.

  Raises:
    FolderError: missing, empty, one class or more than MAX_CLASSES, a class
      with fewer than MIN_CLASS_IMAGES images (or none to test on), or
      unreadable files (without `skip_bad`).
  """
  path = os.path.abspath(os.path.expanduser(path))
  scanned = _scan(path)
  _, listed, _, stray = scanned
  rels = [rel for entries in listed.values() for rel, _ in entries] + stray
  signature = tuple((rel, st.st_size, st.st_mtime_ns)
                    for rel, st in ((r, os.stat(os.path.join(path, r))) for r in rels))
  cached = _READ.get((path, skip_bad))
  if cached is not None and cached[0] == signature:
    return cached[1]
  folder = _decode(path, skip_bad, *scanned)
  _READ[(path, skip_bad)] = (signature, folder)
  return folder


def _decode(path: str, skip_bad: bool, class_names: tuple[str, ...],
            listed: dict[str, list[tuple[str, int]]], held_out: bool, stray: list[str]
            ) -> Folder:
  """`read`'s work: every image decoded, checked, ordered and split."""
  images, labels, kept, bad, converted = {}, {}, {}, [], collections.Counter()
  for split, entries in listed.items():
    arrays, split_labels, split_files = [], [], []
    for rel, label in entries:
      if not rel.lower().endswith(EXTENSIONS):
        bad.append((rel, 'not an image file'))
        continue
      image, changes, why = _read_image(os.path.join(path, rel))
      if image is None:
        bad.append((rel, why))
        continue
      converted.update(changes)
      arrays.append(image)
      split_labels.append(label)
      split_files.append(rel)
    images[split] = np.stack(arrays) if arrays else np.zeros((0, SIDE, SIDE), np.uint8)
    labels[split] = np.asarray(split_labels, np.int32)
    kept[split] = split_files
  bad += [(s, 'not in a class folder') for s in stray]
  if bad and not skip_bad:
    raise _unreadable(path, bad)
  # File-name order, then class: a folder written from a dataset in its own
  # order (00000.png, 00001.png, ...) reads back in that order.
  for split in list(images):
    order = sorted(range(len(kept[split])),
                   key=lambda i: (os.path.basename(kept[split][i]), labels[split][i],
                                  kept[split][i]))
    images[split], labels[split] = images[split][order], labels[split][order]
    kept[split] = [kept[split][i] for i in order]
  if held_out:
    _check_counts(path, class_names, labels['train'], 'the folder')
    test = _hold_out(labels['train'], len(class_names))
    train = np.setdiff1d(np.arange(len(labels['train'])), test)
    for split, idx in (('test', test), ('train', train)):
      images[split], labels[split] = images['train'][idx], labels['train'][idx]
      kept[split] = [kept['train'][i] for i in idx]
  else:
    _check_counts(path, class_names, labels['train'], 'train/')
    _check_counts(path, class_names, labels['test'], 'test/', minimum=1)
  return Folder(path=path, class_names=class_names,
                files={s: tuple(kept[s]) for s in ('train', 'test')},
                images={s: images[s] for s in ('train', 'test')},
                labels={s: labels[s] for s in ('train', 'test')}, held_out=held_out,
                converted=dict(converted), skipped=tuple(rel for rel, _ in bad))


def _unreadable(path: str, bad: list[tuple[str, str]]) -> FolderError:
  """The error naming the first files that are not readable images, and their count."""
  named = '; '.join(f'{rel} ({why})' for rel, why in bad[:3])
  what = ('1 file is not a readable image' if len(bad) == 1
          else f'{len(bad):,} files are not readable images')
  return FolderError(
      f'--dataset={path}: {what} of a class: {named}{"; ..." if len(bad) > 3 else ""}. '
      f'Remove or fix them, or pass {SKIP_FLAG} to train without them')


def _check_counts(path: str, class_names: tuple[str, ...], labels: np.ndarray, where: str,
                  minimum: int = MIN_CLASS_IMAGES) -> None:
  counts = np.bincount(labels, minlength=len(class_names))
  short = [(class_names[c], int(counts[c])) for c in range(len(class_names))
           if counts[c] < minimum]
  if short:
    named = ', '.join(f'{name!r} has {n}' for name, n in short[:5])
    raise FolderError(
        f'--dataset={path}: in {where} {len(short)} of {len(class_names)} classes have '
        f'fewer than {minimum} images ({named}{", ..." if len(short) > 5 else ""}): each '
        'class needs them for training and testing; add images or drop those classes')

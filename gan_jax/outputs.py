"""Where gan_jax may write: the checks every output path passes before any
work (--workdir, --sample_dir, --export_dir, --classifier_dir), and what
marks a folder as an output of gan_jax (the file it holds):

  a run             WORKDIR/.gan_jax-outputs, run.json or .gan_jax.lock
  an export         manifest.json of an export (export.is_export)
  a sample          .gan_jax-sample.json (sampling.SAMPLE_RECORD)
  a classifier      classifier.json, or params/ beside reference.json

A path is refused (one line, exit 2) when it lies inside an export, a sample
or a classifier folder, inside a run's own folders (checkpoints/, plots/...),
is another kind of output than the flag writes, is a file where a folder is
needed, or lies where this user cannot write.
"""

from __future__ import annotations

import os
import tempfile

from gan_jax import files, workdir_lock
from gan_jax.errors import RunError

RUN = 'the workdir of a run'
EXPORT = 'an export'
SAMPLE = 'a sample'
CLASSIFIER = 'a classifier folder'
# The folders inside a run's workdir that only the run writes (in workdir.OUTPUTS).
RUN_FOLDERS = ('checkpoints', 'generated_samples', 'final_generated_images', 'plots',
               'tensorboard')


def is_run(folder: str) -> bool:
  """True when `folder` is (or was) a run's workdir."""
  return any(os.path.lexists(os.path.join(folder, name))
             for name in (files.RECORD, 'run.json', workdir_lock.LOCK_NAME))


def is_classifier(folder: str) -> bool:
  """True when `folder` holds a classifier (even an incomplete one)."""
  from gan_jax import classifier_store
  join = lambda name: os.path.join(folder, name)  # noqa: E731
  return os.path.exists(join(classifier_store.META_FILE)) or (
      os.path.isdir(join(classifier_store.PARAMS_DIR))
      and os.path.exists(join(classifier_store.REFERENCE_JSON)))


def what_is(folder: str) -> str | None:
  """Which output of gan_jax `folder` is (`EXPORT`, `SAMPLE`, `CLASSIFIER`,
  `RUN`), or None."""
  if not os.path.isdir(folder):
    return None
  from gan_jax import export, sampling
  if export.is_export(folder):
    return EXPORT
  if sampling.is_sample(folder):
    return SAMPLE
  if is_classifier(folder):
    return CLASSIFIER
  return RUN if is_run(folder) else None


def _ancestors(path: str) -> list[str]:
  """The folders above `path`, nearest first."""
  out = []
  while os.path.dirname(path) != path:
    path = os.path.dirname(path)
    out.append(path)
  return out


def inside_output(path: str) -> str | None:
  """Why `path` (absolute) lies inside another output of gan_jax, or None."""
  real = os.path.realpath(path)
  for folder in [real] + _ancestors(real):
    parent = os.path.dirname(folder)
    if os.path.basename(folder) in RUN_FOLDERS and is_run(parent):
      return (f'it is {"" if folder == real else "inside "}{folder}, the '
              f'{os.path.basename(folder)} of the run in {parent}, which only that run writes')
  for folder in _ancestors(real):
    what = what_is(folder)
    if what in (EXPORT, SAMPLE, CLASSIFIER):
      return f'it is inside {folder}, {what} of gan_jax'
  return None


def nearest_existing(path: str) -> str:
  """`path` itself or the nearest folder above it that exists."""
  while not os.path.lexists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  return path


def check_writable(flag: str, path: str, given: str | None = None,
                   error: type = RunError) -> None:
  """Refuses `path` when it cannot be created or written in: a real probe in
  the nearest existing folder (os.access says yes to root on read-only mounts).

  Raises:
    RunError: `flag={given}: cannot write in FOLDER (reason); ...`.
  """
  parent = nearest_existing(path)
  try:
    with tempfile.TemporaryFile(dir=parent):
      pass
  except OSError as e:
    raise error(f'{flag}={given or path}: cannot write in {parent} ({e.strerror}); '
                   'choose a folder you can write to') from None


def check(flag: str, given: str, may_be: str | None, writable: bool = True,
          beside: bool = False, error: type = RunError) -> str:
  """The absolute path of `given`, checked before any work.

  Args:
    flag: the flag it comes from ('--export_dir'), for the line.
    given: the path as the user gave it.
    may_be: what the folder itself may already be (`RUN`, `EXPORT`, ...).
    writable: probe that it can be written (its nearest existing folder).
    beside: it is written beside itself and renamed: probe its parent.
    error: the type of the refusal (a `GanJaxError`, exit 2).

  Raises:
    error: one line naming the problem, what is kept and the fix.
  """
  path = os.path.abspath(os.path.expanduser(given))
  why = inside_output(path)
  if why:
    raise error(f'{flag}={given} is refused: {why}; writing there could damage it, '
                   'so nothing was written; choose a folder outside it')
  if os.path.lexists(path) and not os.path.isdir(path):
    raise error(f'{flag}={given} is a file, not a folder; it is kept as it is; choose '
                   'a folder (it is created if missing)')
  what = what_is(path)
  if what is not None and what != may_be:
    raise error(f'{flag}={given} is {what} written by gan_jax, not a place for this output; '
                   'it is kept as it is; choose another folder')
  if writable:
    check_writable(flag, os.path.dirname(path) if beside else path, given, error)
  return path

"""A training run from start to finish: workdir checks, resume, the epoch
loop, and every output a user expects.

``train_and_evaluate(config)``, what ``python run.py`` calls, (1) sets up: the
data folder, the data, the domain classifier and the workdir checks, before
anything is written; (2) resumes from ``WORKDIR/checkpoints`` when a
compatible checkpoint exists; (3) trains whole epochs on the device
(`train.run_chunk`), one ``Epoch 10/50 | D_loss: ...`` line each; (4) every
``save_interval`` epochs and at the end writes a grid of the fixed noise, a
quality evaluation, a checkpoint and the plots; (5) at the end, 100 new
images, their labels and ``report.json``.

Ctrl-C / SIGTERM finish the epoch, save a checkpoint and stop (`Interrupted`);
faults (docs/reliability.md) end as one-line `errors.GanJaxError`s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from gan_jax import (checkpoints, datasets, errors, files, images, input_pipeline,
                     multihost, quality, train, workdir_lock)
from gan_jax import config as config_lib
from gan_jax.config import Config

Log = Callable[[str], None]

# Fields that must match to resume a run (epochs and save_interval may change).
RESUME_FIELDS = config_lib.RESUME_FIELDS
# What a run writes into its workdir.
OUTPUTS = ('checkpoints', 'generated_samples', 'final_generated_images', 'plots',
           'tensorboard', 'metrics.jsonl', 'report.json', 'run.json')
# The names gan_jax gives what it writes, by folder ('.': the workdir itself).
# --overwrite removes what has one of these names and is in the workdir's
# record of what gan_jax wrote (files.RECORD), a folder only once empty, so a
# user's own files stay. `.tmp-*`: an atomic write cut short (files.py).
OUTPUT_NAMES = {
    '.': (r'metrics\.jsonl', r'report\.json', r'run\.json', r'error\.log'),
    'checkpoints': (r'\d+', r'\d+\.damaged(-\d+)?', r'\d+\.orbax-checkpoint-tmp.*'),
    'generated_samples': (r'epoch_\d+\.png', r'progression\.gif'),
    'final_generated_images': (r'img_\d+\.png', r'final_grid\.png', r'final_labeled_grid\.png',
                               r'labels\.csv', r'label_distribution\.json'),
    'plots': (r'losses\.png', r'quality\.png', r'label_distribution\.png'),
    'tensorboard': (r'events\.out\.tfevents\..*',),
}

GRID_SIDE = 5        # The fixed 5x5 grid (a conditional run: 10x10, a class per row).
FINAL_IMAGES = 100   # final_generated_images/img_000.png ... img_099.png


class RunError(errors.GanJaxError):
  """A run cannot start or go on; the message says why and what to do."""


class Interrupted(errors.GanJaxError):
  """Training stopped on a signal after saving a checkpoint."""
  exit_code = 130
  prefix = 'stopped'  # A deliberate stop, not an error.


class NonFiniteLossError(errors.GanJaxError):
  """A loss became NaN or infinite; the last good checkpoint is kept."""
  exit_code = 3


def _keys(seed: int) -> dict[str, jax.Array]:
  """Independent keys for each use, all derived from --seed."""
  root = jax.random.PRNGKey(seed)
  names = ('init', 'shuffle', 'train', 'grid', 'eval', 'final', 'sample')
  return {name: jax.random.fold_in(root, i) for i, name in enumerate(names)}


def format_epoch_line(epoch: int, epochs: int, metrics: dict[str, float],
                      extra: tuple[str, ...] = ()) -> str:
  """``Epoch 10/50 | D_loss: 0.53 | D_acc: 78.12% | G_loss: 1.24`` (+ ``| extra``)."""
  parts = [f'Epoch {epoch}/{epochs}', f'D_loss: {metrics["d_loss"]:.2f}',
           f'D_acc: {100 * metrics["d_acc"]:.2f}%', f'G_loss: {metrics["g_loss"]:.2f}']
  return ' | '.join(parts + list(extra))


def format_duration(seconds: float) -> str:
  """A short human duration: 42s, 3m05s, 2h03m, 41d02h."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  if seconds < 86400:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  return f'{seconds // 86400}d{seconds % 86400 // 3600:02d}h'


def is_save_epoch(epoch: int, config: Config) -> bool:
  return epoch % config.save_interval == 0 or epoch == config.epochs


def _git_commit() -> str | None:
  try:
    out = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5)
    return out.stdout.strip() or None if out.returncode == 0 else None
  except (OSError, subprocess.SubprocessError):
    return None


def run_info(config: Config, evaluator: '_Evaluator') -> dict[str, Any]:
  """The config, classifier, library versions, device and git commit, for run.json."""
  import flax
  import optax
  import tensorflow_datasets as tfds
  return {
      'config': config.__dict__,
      'classifier': evaluator.stored.describe(),
      'versions': {'python': platform.python_version(), 'jax': jax.__version__,
                   'flax': flax.__version__, 'optax': optax.__version__,
                   'tensorflow_datasets': tfds.__version__},
      'devices': [d.device_kind for d in jax.devices()],
      'platform': jax.default_backend(),
      'git_commit': _git_commit(),
      'started': datetime.datetime.now().isoformat(timespec='seconds'),
  }


def check_workdir(config: Config) -> None:
  """Checks the workdir can hold a run (before anything is written).

  Raises:
    RunError: the workdir is a file or not writable.
  """
  workdir = os.path.abspath(config.workdir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise RunError(f'--workdir={config.workdir} is a file, not a folder; '
                   'choose a folder (it is created if missing)')
  parent = workdir
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  try:  # A real probe: os.access says yes to root even on read-only mounts.
    with tempfile.TemporaryFile(dir=parent):
      pass
  except OSError as e:
    raise RunError(f'--workdir={config.workdir}: cannot write in {parent} ({e.strerror}); '
                   'choose a folder you can write to') from None


def gan_jax_outputs(workdir: str) -> list[str]:
  """The paths in `workdir` that gan_jax wrote: named as it names them and in
  its record (a workdir without a record: by the names alone)."""
  found = []
  recorded = files.recorded(workdir)
  for folder, patterns in OUTPUT_NAMES.items():
    path = os.path.normpath(os.path.join(workdir, folder))
    if not os.path.isdir(path) or os.path.islink(path):
      continue
    for name in sorted(os.listdir(path)):
      full = os.path.join(path, name)
      if re.fullmatch(r'\.tmp-.*|.*\.orbax-checkpoint-tmp.*', name):
        found.append(full)  # Half-written by gan_jax or Orbax.
      elif any(re.fullmatch(p, name) for p in patterns) and (
          recorded is None or os.path.relpath(full, workdir) in recorded):
        found.append(full)
  return found


def _remove_outputs(workdir: str, paths: list[str], strict: bool = True) -> None:
  """Removes `paths`, then the output folders left empty; with strict=False,
  goes on past what cannot be removed (cleaning up after a failure)."""
  for path in paths + [os.path.join(workdir, f) for f in OUTPUT_NAMES if f != '.']:
    try:
      if path in paths and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      elif path in paths and os.path.lexists(path):
        os.unlink(path)
      elif path not in paths and os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)
    except OSError:
      if strict:
        raise


def _overwrite_message(workdir: str, paths: list[str]) -> str:
  counts: dict[str, int] = {}
  for path in paths:
    top = os.path.relpath(path, workdir).split(os.sep)[0]
    counts[top] = counts.get(top, 0) + 1
  removed = ', '.join(f'{name} ({n} entries)' if n > 1 or name in OUTPUT_NAMES else name
                      for name, n in counts.items())
  return f'--overwrite: removing the earlier run in {workdir}: {removed}; anything else stays'


def prepare_workdir(config: Config, log: Log) -> None:
  """Checks the workdir can hold a run, and clears it on --overwrite (only
  what gan_jax wrote: `OUTPUT_NAMES`).

  Raises:
    RunError: the workdir is a file or not writable, or holds another run's
      outputs without a checkpoint (and --overwrite was not given).
  """
  check_workdir(config)
  workdir = os.path.abspath(config.workdir)
  # Not a run's outputs: the error log, and half-written files Orbax or files.py clear.
  ours = [p for p in gan_jax_outputs(workdir)
          if not re.fullmatch(r'error\.log|\.tmp-.*|.*\.orbax-checkpoint-tmp.*',
                              os.path.basename(p))]
  present = sorted({os.path.relpath(p, workdir).split(os.sep)[0] for p in ours})
  if config.overwrite and ours:
    log(_overwrite_message(workdir, ours))
    if multihost.is_main():
      _remove_outputs(workdir, gan_jax_outputs(workdir))
      with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(workdir, files.RECORD))
    multihost.sync('overwrite')
  elif present and not checkpoints.has_checkpoint(workdir):
    raise RunError(
        f'{workdir} already holds outputs of a run ({", ".join(present)}) but no '
        'checkpoint to resume from; pass --overwrite to replace them, or choose '
        'another --workdir')


def _flag_value(value: Any) -> str:
  """`value` as a command line gives it (absl's booleans are true/false)."""
  return str(value).lower() if isinstance(value, bool) else str(value)


# Settings no run had before they were added: a checkpoint without them ran
# with these values (any other missing field had its default then).
ADDED_LATER = {'class_loss_weight': 0.0, 'mode_seeking': 0.0, 'reconstruction': 0.0}


def _saved_config(meta: dict[str, Any]) -> dict[str, Any]:
  """A checkpoint's configuration, with `ADDED_LATER` filled in."""
  return {**ADDED_LATER, **meta.get('config', {})}


def _check_resumable(meta: dict[str, Any], config: Config, path: str) -> None:
  # `config` is resolved (config.resolve), as the saved one was.
  saved = {k: Config.__dataclass_fields__[k].default for k in RESUME_FIELDS}
  saved.update(_saved_config(meta))
  changed = [k for k in RESUME_FIELDS if saved.get(k) != getattr(config, k)]
  if changed:
    diffs = '; '.join(f'{k}: checkpoint {saved.get(k)!r}, now {getattr(config, k)!r}'
                      for k in changed)
    flags = ' '.join(f'--{k}={_flag_value(saved[k])}' for k in changed
                     if saved.get(k) is not None)
    resume = f'to continue it, pass {flags}; ' if flags else ''
    raise RunError(
        f'the checkpoint in {path} comes from a different configuration ({diffs}); '
        f'{resume}pass --overwrite to start over in this workdir, or choose another --workdir')


@contextlib.contextmanager
def _graceful_interrupts(log: Log) -> Iterator[dict[str, bool]]:
  """SIGINT/SIGTERM set a flag the loop checks after each chunk; a second one aborts."""
  flag = {'stop': False}
  previous = {}

  def handler(signum, frame):
    del frame
    if flag['stop']:
      raise KeyboardInterrupt
    flag['stop'] = True
    log(f'\n{signal.Signals(signum).name} received: finishing this epoch, then saving '
        'a checkpoint (send it again to stop at once without saving this epoch)')

  for sig in (signal.SIGINT, signal.SIGTERM):
    try:
      previous[sig] = signal.signal(sig, handler)
    except ValueError:  # Not the main thread (e.g. some notebook runners).
      pass
  try:
    yield flag
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)


class _Evaluator:
  """The domain classifier (shipped, or the user's own) for quality and labels."""

  def __init__(self, config: Config, log: Log):
    from gan_jax import classifier_store
    self.stored = classifier_store.load_or_train(
        config.dataset, config.data_dir, config.classifier_dir,
        retrain=config.retrain_classifier, progress=config.progress, log=log)
    self.classifier = self.stored.classifier
    self.reference_stats = self.stored.reference
    self.reference = self.reference_stats.summary()  # Scalars, for JSON and plots.
    self.real = None  # quality.RealFeatures, once `use_training_data` has run.

  def use_training_data(self, data: input_pipeline.Split) -> None:
    """Classifier features of the real training images: precision, recall and
    per-class FD at every evaluation, the memorisation check at the end."""
    self.train_images = data.images
    self.train_features = self.classifier.features(data.images)
    self.real = quality.real_features(self.train_features, data.labels)

  def quality(self, state: train.GANState, key: jax.Array, n: int,
              variables: dict[str, Any] | None = None) -> dict[str, float]:
    """FD, IS, ... of n new images. A conditional GAN's are asked for every
    class equally and generated one class at a time (single-class batches, as
    ``--mode=sample --label=k`` makes them), and scored for label agreement."""
    z = np.asarray(train.sample_noise(key, n, state.noise_dim))
    if not state.num_classes:
      generated, labels = train.generate(state, z, variables=variables), None
    else:
      labels = np.sort(np.arange(n) % state.num_classes)
      generated = np.concatenate([
          train.generate(state, z[labels == c], labels[labels == c], variables=variables)
          for c in range(state.num_classes)])
    return quality.evaluate(self.classifier, generated, self.reference_stats,
                            requested_labels=labels, real=self.real)


def class_rows(config: Config, columns: int) -> np.ndarray | None:
  """The labels of a conditional grid with one class per row, `columns` images
  each (0, 0, ..., 1, 1, ...); None for an unconditional run."""
  if not config.conditional:
    return None
  return np.repeat(np.arange(datasets.NUM_CLASSES), columns)


def grid_side(config: Config) -> int:
  """Rows (= columns) of the sample grids: 5, or one row per class."""
  return datasets.NUM_CLASSES if config.conditional else GRID_SIDE


def grid_noise(config: Config, key: jax.Array) -> jax.Array:
  """The fixed noise of the sample grids: 25 vectors, or for a conditional run
  10 vectors repeated on every class row (a column keeps its noise)."""
  if not config.conditional:
    return train.sample_noise(key, GRID_SIDE ** 2, config.noise_dim)
  z = train.sample_noise(key, datasets.NUM_CLASSES, config.noise_dim)
  return np.tile(np.asarray(z), (datasets.NUM_CLASSES, 1))


@dataclasses.dataclass
class _Progress:
  """What the epoch loop carries from one epoch to the next."""
  state: train.GANState
  fixed_noise: jax.Array
  history: list[dict[str, Any]]
  start_epoch: int


def _metrics_record(epoch: int, config: Config, means: dict[str, float],
                    seconds: float, rate: float) -> dict[str, Any]:
  return {'epoch': epoch, 'epochs': config.epochs,
          **{k: float(means[k]) for k in train.METRIC_NAMES},
          'seconds': round(seconds, 3), 'images_per_s': round(rate, 1)}


def checkpoint_tree(state: train.GANState, fixed_noise: jax.Array) -> dict[str, Any]:
  """The arrays of a checkpoint; the one place its structure is defined
  (save, resume and --mode=sample all use it)."""
  return {'gan': state, 'fixed_noise': fixed_noise}


def _initial_progress(config: Config, keys: dict[str, jax.Array], mesh=None) -> _Progress:
  """A new run's starting point; with a mesh, its arrays replicated on it (the
  form every process saves and restores checkpoints in)."""
  state = train.create_state(config, keys['init'])
  fixed_noise = grid_noise(config, keys['grid'])
  if mesh is not None:
    state = train.replicate(state, mesh)
    fixed_noise = train.replicate(np.asarray(fixed_noise), mesh)
  return _Progress(state=state, fixed_noise=fixed_noise, history=[], start_epoch=0)


def _latest_intact(manager, workdir: str, log: Log) -> int | None:
  """The newest checkpoint that matches its digest; damaged newer ones are
  set aside (renamed, kept) with one line each.

  Raises:
    checkpoints.CheckpointError: checkpoints were there but none is intact.
  """
  damaged = []
  while (latest := manager.latest_step()) is not None:
    if checkpoints.verify(manager, latest) is not False:
      return latest
    # Every process checks; process 0 alone renames (the others only count it).
    damaged.append(checkpoints.set_aside(manager, latest) if multihost.is_main()
                   else str(latest))
    log(f'warning: checkpoint {latest} in {checkpoints.checkpoint_dir(workdir)} is '
        f'damaged (its files do not match their digest); set aside as {damaged[-1]}')
    multihost.sync(f'set aside {latest}')
    manager.reload()
  if damaged:
    raise checkpoints.CheckpointError(
        f'no intact checkpoint is left in {checkpoints.checkpoint_dir(workdir)}: every one '
        f'was damaged and is set aside ({", ".join(damaged)}); pass --overwrite to start '
        'over (the damaged ones stay until you delete them)')
  return None


def _resume(manager, config: Config, fresh: _Progress, log: Log) -> _Progress:
  """The latest intact checkpoint's progress, or `fresh` when there is none."""
  workdir = os.path.abspath(config.workdir)
  latest = _latest_intact(manager, workdir, log)
  if latest is None:
    return fresh
  meta = checkpoints.read_meta(manager, latest)
  _check_resumable(meta, config, checkpoints.checkpoint_dir(workdir))
  if int(meta['epoch']) > config.epochs:
    raise RunError(f'the checkpoint in {checkpoints.checkpoint_dir(workdir)} is of epoch '
                   f'{int(meta["epoch"])}, beyond --epochs={config.epochs}; pass '
                   f'--epochs={int(meta["epoch"])} or more to resume, or --overwrite to '
                   'start over')
  restored, meta = checkpoints.restore(manager, latest,
                                       checkpoint_tree(fresh.state, fresh.fixed_noise))
  log(f'Resuming from the checkpoint of epoch {int(meta["epoch"])} in '
      f'{checkpoints.checkpoint_dir(workdir)}')
  return _Progress(state=restored['gan'], fixed_noise=restored['fixed_noise'],
                   history=list(meta['history']), start_epoch=int(meta['epoch']))


def _save_checkpoint(manager, config: Config, epoch: int, progress: _Progress) -> None:
  """Every process takes part (Orbax writes each array once)."""
  workdir = os.path.abspath(config.workdir)
  with write_failures_explained(workdir, f'the checkpoint of epoch {epoch} failed',
                                where=os.path.join(checkpoints.checkpoint_dir(workdir),
                                                   str(epoch))):
    checkpoints.save(manager, epoch, checkpoint_tree(progress.state, progress.fixed_noise),
                     {'epoch': epoch, 'config': config.__dict__,
                      'history': progress.history})


def _kept(workdir: str) -> str:
  """What a failed run leaves to resume from, for its error line."""
  epoch = checkpoints.latest_epoch(workdir)
  if epoch is None:
    return 'no checkpoint was written yet, and what this run wrote is removed'
  return (f'the checkpoint of epoch {epoch} in {checkpoints.checkpoint_dir(workdir)} '
          'is kept and metrics.jsonl goes no further than the epochs trained')


@contextlib.contextmanager
def write_failures_explained(workdir: str, what: str, kept: str | None = None,
                             where: str | None = None) -> Iterator[None]:
  """Turns a failed write (disk full, permissions...) into one `WriteError`
  line saying what was kept (default: the last checkpoint) and where (when the
  error names no path; default: the workdir); other exceptions pass unchanged."""
  try:
    yield
  except errors.GanJaxError:
    raise
  except Exception as e:
    error = errors.write_error(e, what, where or workdir, kept or _kept(workdir))
    if error is None:
      raise
    raise error from e


@contextlib.contextmanager
def _cleaned_up_on_failure(workdir: str, created: tuple[str, ...]) -> Iterator[None]:
  """If the run fails before its first checkpoint, removes what it created.

  So the same command, once the cause is fixed, simply runs again. Outputs
  that were there before this run started are never touched; `created`: the
  workdir and its lock file, where this run made them (they go too).
  """
  before = set(gan_jax_outputs(workdir))
  record = os.path.join(workdir, files.RECORD)
  had_record = os.path.exists(record)
  try:
    yield
  except BaseException:
    if multihost.is_main() and not checkpoints.has_checkpoint(workdir):
      # Cleaning up must not hide the cause: whatever cannot go stays.
      _remove_outputs(workdir, [p for p in gan_jax_outputs(workdir) if p not in before],
                      strict=False)
      if not had_record and not gan_jax_outputs(workdir):
        with contextlib.suppress(OSError):
          os.unlink(record)
      for path in created:  # The lock file, then the workdir if left empty.
        with contextlib.suppress(OSError):
          if os.path.isfile(path):
            os.unlink(path)
          elif os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
    raise


def _load_training_data(config: Config) -> input_pipeline.Split:
  n_devices = jax.device_count()
  if config.batch_size % n_devices:
    raise RunError(f'--batch_size={config.batch_size} must divide by the {n_devices} '
                   f'devices; use a multiple of {n_devices}')
  data = input_pipeline.load_split(config.dataset, 'train', config.data_dir, config.limit)
  if config.batch_size > len(data.images):
    raise RunError(f'--batch_size={config.batch_size} is larger than the '
                   f'{len(data.images)} training examples; use at most {len(data.images)}')
  return data


def train_and_evaluate(config: Config, log: Log = print) -> dict[str, Any]:
  """Trains (or resumes) a GAN and writes every output into config.workdir.

  Args:
    config: a validated `Config`.
    log: where progress lines go (print by default).

  Returns the final report (also written to ``report.json``).

  Raises:
    errors.GanJaxError (RunError, DataUnavailableError, CheckpointError,
      ClassifierCheckpointError): saying what to do; a run that fails before
      its first checkpoint removes what it wrote.
    Interrupted: after SIGINT/SIGTERM, once the checkpoint is saved.
    NonFiniteLossError: a loss became NaN/inf (the last good checkpoint stays).
  """
  t_start = time.time()
  config = config_lib.resolve(config)  # What the dataset and the mode decide (config.resolve).
  if not multihost.is_main():
    log = _quiet  # Process 0 prints for everyone.
  # Set-up: everything that can fail on bad input, before anything is written.
  config = config.replace(data_dir=input_pipeline.resolve_data_dir(config.data_dir))
  data = _load_training_data(config)
  evaluator = _Evaluator(config, log)
  if multihost.is_main():  # Only process 0 evaluates.
    evaluator.use_training_data(data)
  check_workdir(config)
  workdir = os.path.abspath(config.workdir)
  lock = workdir_lock.lock_path(workdir)
  created = tuple(p for p in (lock, workdir) if not os.path.exists(p))
  with _held(workdir), write_failures_explained(workdir, 'the run stopped'):
    return _train_in_workdir(config, data, evaluator, created, t_start, log)


@contextlib.contextmanager
def _held(workdir: str) -> Iterator[None]:
  """The workdir's exclusive lock, held by process 0 (one run per workdir);
  with --distributed every process learns whether it got it, so a refused
  run stops everywhere at once."""
  with contextlib.ExitStack() as stack:
    failed = None
    if multihost.is_main():
      try:
        stack.enter_context(workdir_lock.hold(workdir, exclusive=True, command='training'))
      except Exception as e:  # pylint: disable=broad-except  # Raised below, everywhere.
        failed = e
    if multihost.any_process(failed is not None):
      raise failed or workdir_lock.WorkdirBusy(
          f'process 0 could not take {workdir} (in use by another gan_jax run, or not '
          'writable; its own line says which); fix that and run the same commands again')
    yield


def _train_in_workdir(config: Config, data: input_pipeline.Split, evaluator: _Evaluator,
                      created: tuple[str, ...], t_start: float, log: Log) -> dict[str, Any]:
  """The run once set up and holding the workdir: resume, train, final outputs."""
  prepare_workdir(config, log)
  workdir = os.path.abspath(config.workdir)
  with _cleaned_up_on_failure(workdir, created), files.recording_outputs(workdir):
    keys = _keys(config.seed)
    mesh = train.make_mesh()
    if multihost.is_main():
      os.makedirs(workdir, exist_ok=True)
    multihost.sync('workdir')
    manager = checkpoints.make_manager(workdir, config.keep_checkpoints)
    progress = _resume(manager, config, _initial_progress(config, keys, mesh), log)
    report_path = os.path.join(workdir, 'report.json')
    if progress.start_epoch >= config.epochs and os.path.exists(report_path):
      # Nothing to do: keep the finished run's outputs (and their wall times) as they are.
      log(f'This run is already complete ({progress.start_epoch}/{config.epochs} epochs) '
          f'in {workdir}; pass a larger --epochs to train on, or --overwrite to start over')
      with open(report_path) as f:
        return json.load(f)
    if multihost.is_main():
      # Drop the log lines of epochs after the checkpoint: they are redone.
      files.write_jsonl(os.path.join(workdir, 'metrics.jsonl'), progress.history)
      # A report of fewer epochs is no longer this run's: were the final outputs
      # to fail, it must not make the run look complete.
      with contextlib.suppress(FileNotFoundError):
        os.unlink(report_path)
      files.write_json(os.path.join(workdir, 'run.json'), run_info(config, evaluator))
    images_per_s = _train_epochs(config, data, mesh, progress, manager, keys, evaluator, log)

  if not multihost.is_main():
    multihost.sync('final outputs')
    return {}
  with write_failures_explained(workdir, 'the final outputs failed'):
    report = _final_outputs(config, workdir, multihost.local_copy(progress.state), keys,
                            evaluator, progress.history, log)
    report['wall_seconds'] = round(time.time() - t_start, 1)
    report['mean_images_per_s'] = (round(float(np.mean(images_per_s)), 1)
                                   if images_per_s else None)
    files.write_json(report_path, report)
  _print_summary(workdir, report, log)
  multihost.sync('final outputs')
  return report


def _quiet(*_: Any) -> None:
  pass


def _train_epochs(config: Config, data: input_pipeline.Split, mesh, progress: _Progress,
                  manager, keys: dict[str, jax.Array], evaluator: _Evaluator,
                  log: Log) -> list[float]:
  """The epoch loop, from `progress.start_epoch` to `config.epochs`; updates
  `progress` in place and returns the training speed of each epoch."""
  workdir = os.path.abspath(config.workdir)
  steps = len(data.images) // config.batch_size
  # <= 0 only when a finished run lost its final outputs (killed while writing
  # them): they are made again after this loop.
  epochs_left = max(0, config.epochs - progress.start_epoch)
  show_bar = config.progress and sys.stdout.isatty() and multihost.is_main()
  bar = tqdm(total=epochs_left * steps * config.batch_size, unit='img', unit_scale=True,
             disable=not show_bar, dynamic_ncols=True, leave=False)
  write = bar.write if show_bar else log
  tb = _tensorboard(config)
  images_per_s = []
  with _graceful_interrupts(write) as interrupt:
    for epoch in range(progress.start_epoch + 1, config.epochs + 1):
      bar.set_description(f'Epoch {epoch}/{config.epochs}')
      t0 = time.time()
      means = _train_epoch(config, data, mesh, progress, keys, epoch, bar)
      seconds = time.time() - t0
      _check_finite(means, epoch, manager, workdir)
      rate = steps * config.batch_size / seconds
      images_per_s.append(rate)
      record = _metrics_record(epoch, config, means, seconds, rate)
      eta = (config.epochs - epoch) * seconds
      extra = (f'{seconds:.1f}s', f'{rate:,.0f} img/s', f'ETA {format_duration(eta)}')
      write(format_epoch_line(epoch, config.epochs, means, extra))
      if is_save_epoch(epoch, config):
        record.update(_save_epoch_outputs(config, epoch, progress, keys, evaluator, write, tb))
      progress.history.append(record)
      # A signal to any process stops them all at the same epoch.
      stop = multihost.any_process(interrupt['stop'])
      if is_save_epoch(epoch, config) or stop:
        _save_checkpoint(manager, config, epoch, progress)
      # Only now is the epoch logged: one whose checkpoint failed is not claimed.
      if multihost.is_main():
        files.write_jsonl(os.path.join(workdir, 'metrics.jsonl'), progress.history)
      if tb:
        tb.scalars(epoch, record)
      if (is_save_epoch(epoch, config) or stop) and multihost.is_main():
        _write_plots(workdir, progress.history, evaluator.reference)
      if stop:
        bar.close()
        raise Interrupted(
            f'after epoch {epoch}/{config.epochs} on a signal; checkpoint saved in '
            f'{checkpoints.checkpoint_dir(workdir)}. Run the same command again to resume.')
  bar.close()
  if tb:
    tb.close()
  return images_per_s


def _tensorboard(config: Config) -> Any:
  """The TensorBoard writer of --tensorboard (process 0), else None."""
  if not (config.tensorboard and multihost.is_main()):
    return None
  from gan_jax.tensorboard import TensorBoardWriter
  return TensorBoardWriter(os.path.join(os.path.abspath(config.workdir), 'tensorboard'))


def _train_epoch(config: Config, data: input_pipeline.Split, mesh, progress: _Progress,
                 keys: dict[str, jax.Array], epoch: int, bar: Any) -> dict[str, float]:
  """One epoch of `train.run_chunk` calls on a fresh permutation of the data;
  updates `progress.state` and returns the epoch's mean metrics.

  The global batches are the same in every process (they derive from --seed),
  and each process puts only its own rows of them on its devices.
  """
  batch_sharding = NamedSharding(mesh, P(None, 'data'))  # (steps, batch, ...)
  rows = multihost.process_rows(batch_sharding, (1, config.batch_size), axis=1)
  steps = len(data.images) // config.batch_size
  chunk = config.steps_per_chunk or max(1, math.ceil(steps / 10))
  idx = np.asarray(train.epoch_batches(jax.random.fold_in(keys['shuffle'], epoch),
                                       len(data.images), steps, config.batch_size))
  sums = {k: 0.0 for k in train.METRIC_NAMES}
  for lo in range(0, steps, chunk):
    rows_idx = idx[lo:lo + chunk, rows]
    local = {'image': data.images[rows_idx], 'label': data.labels[rows_idx]}
    batches = jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(
            batch_sharding, x, (len(x), config.batch_size) + x.shape[2:]), local)
    progress.state, m = train.run_chunk(progress.state, batches, keys['train'])
    for k, v in jax.device_get(m).items():
      sums[k] += float(v)
    bar.update(min(chunk, steps - lo) * config.batch_size)
  return {k: v / steps for k, v in sums.items()}


def _check_finite(means: dict[str, float], epoch: int, manager, workdir: str) -> None:
  if not all(math.isfinite(v) for v in means.values()):
    last = manager.latest_step()
    raise NonFiniteLossError(
        f'epoch {epoch}: non-finite loss ({means}); training stopped. The last '
        f'good checkpoint ({"epoch " + str(last) if last else "none"}) is kept in '
        f'{checkpoints.checkpoint_dir(workdir)}; try a lower --learning_rate')


def _save_epoch_outputs(config: Config, epoch: int, progress: _Progress,
                        keys: dict[str, jax.Array], evaluator: _Evaluator, write: Log,
                        tb: Any) -> dict[str, Any]:
  """The fixed-noise grid and a quality evaluation; returns the quality figures.

  Only process 0 samples and evaluates (the others return {}): its history is
  the one the checkpoint and metrics.jsonl keep.
  """
  if not multihost.is_main():
    return {}
  workdir = os.path.abspath(config.workdir)
  state = multihost.local_copy(progress.state)
  variables = train.sampling_variables(state)
  side = grid_side(config)
  grid_images = train.generate(state, multihost.local_copy(progress.fixed_noise),
                               class_rows(config, side), variables=variables)
  images.save_grid(os.path.join(workdir, 'generated_samples', f'epoch_{epoch:02d}.png'),
                   grid_images, side, side)
  t_eval = time.time()
  q = evaluator.quality(state, jax.random.fold_in(keys['eval'], epoch),
                        config.eval_samples, variables)
  write(f'  quality at epoch {epoch}: {_quality_text(q, evaluator.reference, config)} '
        f'| {time.time() - t_eval:.1f}s')
  if tb:
    tb.image(epoch, 'samples', images.sample_grid(grid_images, side, side, scale=2))
  return q


def _quality_text(q: dict[str, Any], reference: dict[str, Any], config: Config) -> str:
  """The quality line: each figure of the evaluation with its label and format
  (`quality.METRICS`), IS beside the real data's, the worst class by name."""
  METRICS = quality.METRICS
  parts = []
  for key in ('fd', 'is', 'classes_covered', 'mean_confidence', 'label_agreement',
              'precision', 'recall'):
    if q.get(key) is not None:
      parts.append(METRICS[key].text(q[key]))
  parts[1] += f' (real {reference["is"]:.2f})'
  parts[2] += f'/{datasets.NUM_CLASSES}'
  if q.get('worst_class') is not None:
    c = q['worst_class']
    name = datasets.get(config.dataset).class_names[c]
    fd = f'{METRICS["fd"].label} {q["fd_per_class"][c]:{METRICS["fd_per_class"].fmt}}'
    parts.append(f'{METRICS["worst_class"].label} {name} ({fd})')
  return ' | '.join(parts)


def _write_plots(workdir: str, history: list[dict[str, Any]],
                 reference: dict[str, Any] | None,
                 label_counts: list[int] | None = None,
                 class_names: list[str] | None = None) -> None:
  from gan_jax import plots
  plots.write_all_plots(workdir, history, reference=reference, label_counts=label_counts,
                        class_names=class_names)


def _final_outputs(config: Config, workdir: str, state: train.GANState,
                   keys: dict[str, jax.Array], evaluator: _Evaluator,
                   history: list[dict[str, Any]], log: Log) -> dict[str, Any]:
  """100 new images, their labels, the final grid and the report (a conditional
  run's: ten of each class, a class per row of the grid)."""
  from gan_jax import labels
  out = os.path.join(workdir, 'final_generated_images')
  z = train.sample_noise(keys['final'], FINAL_IMAGES, config.noise_dim)
  variables = train.sampling_variables(state)  # Once, for these and the final checks.
  final = train.generate(state, z, class_rows(config, FINAL_IMAGES // datasets.NUM_CLASSES),
                         variables=variables)
  names = images.save_images(out, final)
  images.save_grid(os.path.join(out, 'final_grid.png'), final, 10, 10)
  extra = _final_checks(config, out, final, keys, state, variables, evaluator, log)
  label_report = labels.label_report(evaluator.classifier, final, names)
  labels.write_label_outputs(label_report, out, final)
  log('Labels of the 100 final images (domain classifier):')
  log(labels.distribution_table(label_report))
  counts = [int(c) for c in label_report.counts]
  class_names = list(evaluator.classifier.class_names)
  _write_plots(workdir, history, evaluator.reference, counts, class_names)
  evaluated = [r for r in history if 'fd' in r]
  last = evaluated[-1] if evaluated else {}
  return {
      'epochs': config.epochs,
      'final': {k: last.get(k)
                for k in ('epoch',) + quality.evaluation_keys(config.conditional)},
      'reference': evaluator.reference,
      'classifier': evaluator.stored.describe(),
      'classifier_accuracy': evaluator.stored.test_accuracy,
      'label_counts': dict(zip(class_names, counts)),
      'quality_curve': [{k: r[k] for k in ('epoch', *(m.key for m in quality.CURVES))
                         if k in r} for r in evaluated],
      **extra,
  }


# Generated images of the final checks: memorisation, and a conditional run's CAS.
MEMORISATION_IMAGES = 1000
CAS_IMAGES = 10_000


def _final_checks(config: Config, out: str, final: np.ndarray, keys: dict[str, jax.Array],
                  state: train.GANState, variables: dict[str, Any], evaluator: _Evaluator,
                  log: Log) -> dict[str, Any]:
  """The memorisation check (nearest_train.png and its ratio) and, for a
  conditional run unless --nocas, the CAS of CAS_IMAGES images; {} without
  training features."""
  from gan_jax import cas, memorisation
  if evaluator.real is None:
    return {}
  key = jax.random.fold_in(keys['final'], 1)
  n = CAS_IMAGES if config.conditional else MEMORISATION_IMAGES
  requested = np.arange(n) % datasets.NUM_CLASSES if config.conditional else None
  generated = train.generate(state, train.sample_noise(key, n, config.noise_dim), requested,
                             variables=variables)
  test = input_pipeline.load_split(config.dataset, 'test', config.data_dir,
                                   limit=MEMORISATION_IMAGES)
  final_features = evaluator.classifier.features(final)
  memorisation.save_nearest_grid(os.path.join(out, 'nearest_train.png'), final,
                                 final_features, evaluator.train_images,
                                 evaluator.train_features)
  checks = memorisation.check(
      evaluator.classifier.features(generated[:MEMORISATION_IMAGES]),
      evaluator.classifier.features(test.images), evaluator.train_features)
  if checks['memorisation_ratio'] is not None:
    log(f'Memorisation ratio {checks["memorisation_ratio"]:.2f} (about 1: no copies of '
        'training images; nearest_train.png shows the nearest ones)')
  if config.conditional and config.cas:
    checks['cas'] = cas.score(config.dataset, generated, requested, config.data_dir, log=log)
    c = checks['cas']
    log(f'CAS {c["cas"]:.2%} on the real test split (the same CNN trained on '
        f'{c["real_images"]:,} real images: {c["cas_real"]:.2%})'
        f'{cas.worst_class_text(c, config.dataset)}')
  return checks


def _print_summary(workdir: str, report: dict[str, Any], log: Log) -> None:
  final = report['final']
  ref = report['reference']
  def rel(name: str) -> str:
    path = os.path.join(workdir, name)
    inside = path.startswith(os.getcwd() + os.sep)
    return os.path.relpath(path) if inside else path
  lines = [
      '', 'Summary',
      f'  wall time          {format_duration(report["wall_seconds"])}'
      + (f' ({report["mean_images_per_s"]:,.0f} img/s in training)'
         if report['mean_images_per_s'] else ''),
  ]
  if final.get('fd') is not None:
    m = quality.METRICS
    lines.append(f'  final quality      {m["fd"].text(final["fd"])} | {m["is"].text(final["is"])} '
                 f'(real data: {m["is"].text(ref["is"])}) | '
                 f'{final["classes_covered"]}/{datasets.NUM_CLASSES} classes'
                 + (f' | {m["label_agreement"].text(final["label_agreement"])}'
                    if final.get('label_agreement') is not None else ''))
  lines += [
      f'  sample grids       {rel("generated_samples")}/ (progression.gif)',
      f'  final images       {rel("final_generated_images")}/ (labels.csv, final_grid.png)',
      f'  plots              {rel("plots")}/',
      f'  metrics            {rel("metrics.jsonl")}, {rel("report.json")}',
      f'  checkpoints        {rel("checkpoints")}/',
  ]
  for line in lines:
    log(line)


def sample_from_run(config: Config, log: Log = print) -> list[str]:
  """Writes `config.num_samples` PNGs from the latest generator of `config.workdir`.

  The run's own configuration (arch, noise_dim, dtype...) is read from its
  checkpoint; `config.seed` picks the noise.

  Raises:
    RunError: no checkpoint in the workdir, or the sample dir is unusable.
    checkpoints.CheckpointError: the checkpoint is corrupt.
    workdir_lock.WorkdirBusy: a run is training in the workdir.
    errors.WriteError: the images cannot be written (one line).
  """
  workdir = os.path.abspath(config.workdir)
  with workdir_lock.hold(workdir, exclusive=False, command='sampling'), \
       write_failures_explained(workdir, 'sampling failed',
                                f'the run in {workdir} is unchanged'):
    return _sample(config, workdir, log)


def _intact_for_reading(manager, workdir: str, log: Log) -> int:
  """The newest checkpoint matching its digest (a reader renames nothing)."""
  for epoch in sorted(manager.all_steps(), reverse=True):
    if checkpoints.verify(manager, epoch) is not False:
      return epoch
    log(f'warning: checkpoint {epoch} in {checkpoints.checkpoint_dir(workdir)} is damaged '
        '(its files do not match their digest); using an earlier one (the next '
        'training run sets it aside)')
  raise checkpoints.CheckpointError(
      f'no intact checkpoint in {checkpoints.checkpoint_dir(workdir)}: every one is damaged; '
      'train the run again (--overwrite) or restore the folder from a backup')


def load_latest_run(config: Config, log: Log = print
                    ) -> tuple[train.GANState, Config, int]:
  """The generator state of the newest intact checkpoint in `config.workdir`,
  the run's own configuration (from the checkpoint) and its epoch: what
  --mode=sample and --mode=export start from. The caller holds the workdir.

  Raises:
    RunError: no checkpoint, or `config.label` asked of an unconditional run.
    checkpoints.CheckpointError: the checkpoints are damaged.
  """
  workdir = os.path.abspath(config.workdir)
  if not checkpoints.has_checkpoint(workdir):
    raise RunError(f'--workdir={config.workdir} holds no checkpoint '
                   f'({checkpoints.checkpoint_dir(workdir)} is missing or empty); '
                   'train a run there first')
  manager = checkpoints.make_manager(workdir, create=False)
  epoch = _intact_for_reading(manager, workdir, log)
  meta = checkpoints.read_meta(manager, epoch)
  run_config = Config(**{k: v for k, v in _saved_config(meta).items()
                         if k in Config.__dataclass_fields__})
  if config.label is not None and not run_config.conditional:
    raise RunError(f'--label={config.label}: the run in {workdir} is unconditional '
                   '(trained without --conditional) and cannot be asked for a class; '
                   'drop --label, or train a run with --conditional')
  fresh = _initial_progress(run_config, _keys(run_config.seed))
  restored, _ = checkpoints.restore(manager, epoch,
                                    checkpoint_tree(fresh.state, fresh.fixed_noise))
  return restored['gan'], run_config, epoch


def noise_scale_text(scale: float) -> str:
  """' (noise scale 1.25)' after a line about images drawn with --noise_scale; '' at 1."""
  return f' (noise scale {scale:g})' if scale != 1 else ''


def _sample(config: Config, workdir: str, log: Log) -> list[str]:
  """`sample_from_run` once the workdir is held."""
  sample_dir = os.path.abspath(config.sample_dir or os.path.join(workdir, 'samples'))
  if os.path.exists(sample_dir) and not os.path.isdir(sample_dir):
    raise RunError(f'--sample_dir={sample_dir} is a file; choose a folder')
  state, run_config, epoch = load_latest_run(config, log)
  key = jax.random.fold_in(_keys(config.seed)['sample'], config.num_samples)
  z = train.sample_noise(key, config.num_samples, run_config.noise_dim, config.noise_scale)
  labels, what = None, ''
  if run_config.conditional:
    if config.label is None:  # The classes in turn.
      labels, what = np.arange(config.num_samples) % datasets.NUM_CLASSES, ' of every class'
    else:
      labels = np.full(config.num_samples, config.label)
      name = datasets.get(run_config.dataset).class_names[config.label]
      what = f' of class {config.label} ({name})'
  names = images.save_images(sample_dir, train.generate(state, z, labels),
                             prefix='sample_')
  log(f'Wrote {len(names)} images{what} from the generator of epoch {epoch} to '
      f'{sample_dir}{noise_scale_text(config.noise_scale)}')
  return [os.path.join(sample_dir, n) for n in names]

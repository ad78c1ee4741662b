"""A training run from start to finish: ``train_and_evaluate(config)``, what
``python run.py`` calls. Its phases: set-up (data, domain classifier, workdir
checks: all before anything is written), resume (`checkpoints.resume`), the
epoch loop (`_train_epochs`: whole epochs on the device through
`train.run_chunk`, and every ``save_interval`` epochs a grid, an evaluation,
a checkpoint and the plots), and the final outputs (`report.Reporter.final`).

The rooms it calls: `workdir` (its rules, lock, --overwrite, clean-up),
`checkpoints`, `sampling` (keys, grid noise), `evaluate`, and `report`, the
one writer of what a run reports (silent off process 0). Ctrl-C / SIGTERM
finish the epoch, save a checkpoint and stop (`Interrupted`); faults
(docs/reliability.md) end as one-line `errors.GanJaxError`s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from gan_jax import (checkpoints, datasets, evaluate, files, input_pipeline, multihost,
                     presets, report, sampling, train)
from gan_jax import config as config_lib
from gan_jax import workdir as workdir_lib
from gan_jax.config import Config
from gan_jax.errors import Interrupted, NonFiniteLossError, RunError  # noqa: F401

Log = Callable[[str], None]


@dataclasses.dataclass
class Run:
  """What every phase of a run uses, set up once."""
  config: Config
  data: input_pipeline.Split
  evaluator: evaluate.Evaluator
  reporter: Any  # report.Reporter, or report.Silent off process 0.
  keys: dict[str, jax.Array]
  mesh: Any = None
  passes: int = 1  # Passes over the training images per epoch (presets.passes_per_epoch).
  manager: Any = None  # The workdir's checkpoints.make_manager, once it is held.


def is_save_epoch(epoch: int, config: Config) -> bool:
  return epoch % config.save_interval == 0 or epoch == config.epochs


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
  run = _set_up(config, log)
  config, reporter = run.config, run.reporter
  with workdir_lib.held(config) as workdir, \
       workdir_lib.write_failures_explained(workdir.path, 'the run stopped'):
    workdir.prepare(config, reporter.write)
    with workdir.cleaned_up_on_failure(), files.recording_outputs(workdir.path):
      run.manager = checkpoints.make_manager(workdir.path, config.keep_checkpoints)
      progress = checkpoints.resume(
          run.manager, config, sampling.initial_progress(config, run.keys, run.mesh),
          reporter.write)
      finished = (workdir_lib.finished_report(workdir.path, reporter.write)
                  if progress.start_epoch >= config.epochs else None)
      if finished is not None:
        # Nothing to do: keep the finished run's outputs (and their wall times) as they are.
        reporter.write(f'This run is already complete ({progress.start_epoch}/'
                       f'{config.epochs} epochs) in {workdir.path}; pass a larger --epochs '
                       'to train on, or --overwrite to start over')
        workdir_lib.repair_finished(workdir.path, progress.history,
                                    lambda: report.run_info(config, run.evaluator),
                                    reporter.write)
        return finished
      reporter.start(progress.history)
      images_per_s = _train_epochs(run, progress)
    with workdir_lib.write_failures_explained(workdir.path, 'the final outputs failed'):
      final = reporter.final(progress.state, progress.history, run.keys['final'],
                             time.time() - t_start, images_per_s)
    multihost.sync('final outputs')
  return final


def _set_up(config: Config, log: Log) -> Run:
  """Everything that can fail on bad input, before anything is written."""
  config = config_lib.resolve(config)  # What the preset decides (config.resolve).
  config = config.replace(data_dir=input_pipeline.resolve_data_dir(config.data_dir))
  _check_settings(config)
  workdir_lib.check_workdir(config)  # Every path it writes, before any work.
  from gan_jax import classifier_store
  classifier_store.check_dir(config.classifier_dir, config.retrain_classifier)
  reporter = report.make(config, log)
  folder = datasets.get(config.dataset).folder
  if folder is not None:  # What was read, and converted, once.
    reporter.write(folder.summary())
  data, indices = _load_training_data(config)
  evaluator = evaluate.Evaluator(config, reporter.write)
  reporter.use_evaluator(evaluator, data, indices)
  return Run(config=config, data=data, evaluator=evaluator, reporter=reporter,
             keys=sampling.keys(config.seed), mesh=train.make_mesh(),
             passes=presets.passes_per_epoch(config_lib.is_scarce(config), len(data.images)))


def _check_settings(config: Config) -> None:
  """The settings table's rules (`config.validate`), for callers other than
  the command line (which checks them before jax starts)."""
  try:
    config_lib.validate(config)
  except ValueError as e:
    raise RunError(str(e)) from None


def _load_training_data(config: Config) -> tuple[input_pipeline.Split, np.ndarray | None]:
  """The run's training images, and their indices in the split with --train_examples."""
  n_devices = jax.device_count()
  if config.batch_size % n_devices:
    raise RunError(f'--batch_size={config.batch_size} must divide by the {n_devices} '
                   f'devices; use a multiple of {n_devices}')
  try:
    data, indices = input_pipeline.training_split(
        config.dataset, config.data_dir, config.limit, config.train_examples, config.seed)
  except ValueError as e:  # Too many --train_examples for a class.
    raise RunError(str(e)) from None
  if config.batch_size > len(data.images):
    raise RunError(f'--batch_size={config.batch_size} is larger than the '
                   f'{len(data.images)} training examples; use at most {len(data.images)}')
  return data, indices


def _train_epochs(run: Run, progress: checkpoints.Progress) -> list[float]:
  """The epoch loop, from `progress.start_epoch` to `config.epochs`; updates
  `progress` in place and returns the training speed of each epoch."""
  config, reporter = run.config, run.reporter
  images = len(run.data.images) * run.passes // config.batch_size * config.batch_size
  # <= 0 only when a finished run lost its final outputs (killed while writing
  # them): they are made again after this loop.
  reporter.begin_epochs(max(0, config.epochs - progress.start_epoch) * images)
  images_per_s = []
  with _graceful_interrupts(reporter.write) as interrupt:
    for epoch in range(progress.start_epoch + 1, config.epochs + 1):
      reporter.epoch_started(epoch)
      t0 = time.time()
      means = _train_epoch(run, progress, epoch)
      seconds = time.time() - t0
      _check_finite(means, epoch, run)
      images_per_s.append(images / seconds)
      record = report.epoch_record(epoch, config, means, seconds, images_per_s[-1])
      reporter.epoch_line(epoch, means, seconds, images_per_s[-1])
      save = is_save_epoch(epoch, config)
      if save:
        record.update(reporter.evaluate(epoch, progress,
                                        jax.random.fold_in(run.keys['eval'], epoch)))
      progress.history.append(record)
      # A signal to any process stops them all at the same epoch.
      stop = multihost.any_process(interrupt['stop'])
      if save or stop:
        _save_checkpoint(run, epoch, progress)
      reporter.epoch_done(record, progress.history, plots=save or stop)
      if stop:
        reporter.close()
        raise Interrupted(
            f'after epoch {epoch}/{config.epochs} on a signal; checkpoint saved in '
            f'{checkpoints.checkpoint_dir(config.workdir)}. Run the same command again to '
            'resume.')
  reporter.close()
  return images_per_s


def _train_epoch(run: Run, progress: checkpoints.Progress, epoch: int) -> dict[str, float]:
  """One epoch of `train.run_chunk` calls on a fresh permutation of the data;
  updates `progress.state` and returns the epoch's mean metrics.

  The global batches are the same in every process (they derive from --seed),
  and each process puts only its own rows of them on its devices.
  """
  config, data = run.config, run.data
  batch_sharding = NamedSharding(run.mesh, P(None, 'data'))  # (steps, batch, ...)
  rows = multihost.process_rows(batch_sharding, (1, config.batch_size), axis=1)
  steps = len(data.images) * run.passes // config.batch_size
  chunk = config.steps_per_chunk or max(1, math.ceil(steps / 10))
  idx = np.asarray(train.epoch_batches(jax.random.fold_in(run.keys['shuffle'], epoch),
                                       len(data.images), steps, config.batch_size))
  sums = {k: 0.0 for k in train.METRIC_NAMES}
  for lo in range(0, steps, chunk):
    rows_idx = idx[lo:lo + chunk, rows]
    local = {'image': data.images[rows_idx], 'label': data.labels[rows_idx]}
    batches = jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(
            batch_sharding, x, (len(x), config.batch_size) + x.shape[2:]), local)
    progress.state, m = train.run_chunk(progress.state, batches, run.keys['train'])
    for k, v in jax.device_get(m).items():
      sums[k] += float(v)
    run.reporter.advance(min(chunk, steps - lo) * config.batch_size)
  return {k: v / steps for k, v in sums.items()}


def _check_finite(means: dict[str, float], epoch: int, run: Run) -> None:
  if not all(math.isfinite(v) for v in means.values()):
    last = run.manager.latest_step()
    raise NonFiniteLossError(
        f'epoch {epoch}: non-finite loss ({means}); training stopped. The last '
        f'good checkpoint ({"epoch " + str(last) if last else "none"}) is kept in '
        f'{checkpoints.checkpoint_dir(run.config.workdir)}; try a lower --learning_rate')


def _save_checkpoint(run: Run, epoch: int, progress: checkpoints.Progress) -> None:
  """Every process takes part (Orbax writes each array once)."""
  workdir = os.path.abspath(run.config.workdir)
  with workdir_lib.write_failures_explained(
      workdir, f'the checkpoint of epoch {epoch} failed',
      where=os.path.join(checkpoints.checkpoint_dir(workdir), str(epoch))):
    checkpoints.save_progress(run.manager, run.config, epoch, progress)


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

"""The rules of a run's workdir: what gan_jax writes there, the checks before
a run, --overwrite, the clean-up after a failed start, the lock, and what a
failure keeps.

`held(config)` is the one place that decides which process touches the
workdir: process 0 takes the lock, clears an earlier run on --overwrite and
cleans up after a failure; the others wait for it (`multihost.sync`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from typing import Any, Callable, Iterator

from gan_jax import checkpoints, destination, errors, files, multihost, outputs, workdir_lock
from gan_jax.config import Config
from gan_jax.errors import RunError

Log = Callable[[str], None]

# What a run writes into its workdir: its folders (one list, in outputs.py) and files.
OUTPUTS = outputs.RUN_FOLDERS + ('metrics.jsonl', 'report.json', 'run.json')
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
_HALF_WRITTEN = r'\.tmp-.*|.*\.orbax-checkpoint-tmp.*'  # By files.py or Orbax.


def check_workdir(config: Config) -> None:
  """Checks the workdir can hold a run (before anything is read or written):
  a folder (or missing) that is not inside another output of gan_jax, is not
  an export, sample or classifier folder, can be written, and whose own
  outputs have their kind (`checkpoints` a folder, `report.json` a file...).

  Raises:
    RunError: one line naming the problem and the fix.
  """
  workdir = outputs.check('--workdir', config.workdir, outputs.RUN)
  for name in OUTPUTS:
    path = os.path.join(workdir, name)
    folder = '.' not in name
    if os.path.lexists(path) and os.path.isdir(path) != folder:
      raise RunError(
          f'{path} is a {"file" if folder else "folder"} where the run keeps its '
          f'{name} (a {"folder" if folder else "file"}); it is kept as it is; move it away, '
          'or choose another --workdir')


def finished_report(workdir: str, log: Log) -> dict[str, Any] | None:
  """The report.json of a finished run, or None when there is none, or it is
  damaged (a line says so: the final outputs are then made again)."""
  path = os.path.join(workdir, 'report.json')
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      report = json.load(f)
    if isinstance(report, dict) and isinstance(report.get('epochs'), int):
      return report
    why = 'not the report of a run'
  except (OSError, ValueError) as e:
    why = f'{type(e).__name__}: {str(e)[:100]}'
  log(f'warning: {path} is damaged ({why}); the final outputs are made again from the '
      'last checkpoint')
  return None


def repair_finished(workdir: str, history: list[dict[str, Any]],
                    run_info: Callable[[], dict[str, Any]], log: Log) -> None:
  """Writes a finished run's metrics.jsonl again from the checkpoint's history,
  and its run.json from `run_info()`, where they are damaged (a line each)."""
  metrics, run = os.path.join(workdir, 'metrics.jsonl'), os.path.join(workdir, 'run.json')
  try:
    logged = [r.get('epoch') for r in files.read_jsonl(metrics)]
    why = None if logged == [r['epoch'] for r in history] else 'its epochs differ'
  except (OSError, ValueError, AttributeError) as e:
    why = f'{type(e).__name__}: {str(e)[:100]}'
  if why:
    log(f'warning: {metrics} is damaged ({why}); written again from the checkpoint')
    files.write_jsonl(metrics, history)
  try:
    with open(run) as f:
      why = None if isinstance(json.load(f), dict) else 'not a JSON object'
  except (OSError, ValueError) as e:
    why = f'{type(e).__name__}: {str(e)[:100]}'
  if why:
    log(f'warning: {run} is damaged ({why}); written again for this command')
    files.write_json(run, run_info())


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
      if re.fullmatch(_HALF_WRITTEN, name):
        found.append(full)
      elif folder == 'checkpoints' and name.isdigit() and not os.path.isdir(full):
        continue  # gan_jax writes checkpoints as folders: this file is not one of them.
      elif any(re.fullmatch(p, name) for p in patterns) and (
          recorded is None or os.path.relpath(full, workdir) in recorded):
        found.append(full)
  return found


def remove_outputs(workdir: str, paths: list[str], strict: bool = True) -> None:
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


def kept(workdir: str, training: bool = True) -> str:
  """What a failure leaves to resume from, for its error line: after a
  training run (`training`), or after any command (the command line's)."""
  epoch = checkpoints.latest_epoch(workdir)
  if epoch is None:
    return ('no checkpoint was written yet, and what this run wrote is removed'
            if training else 'no checkpoint is kept')
  where = f'the checkpoint of epoch {epoch} in {checkpoints.checkpoint_dir(workdir)} is kept'
  return where + (' and metrics.jsonl goes no further than the epochs trained'
                  if training else '')


@contextlib.contextmanager
def write_failures_explained(workdir: str, what: str, kept_text: str | None = None,
                             where: str | None = None) -> Iterator[None]:
  """Turns a failed write (disk full, permissions...) into one `WriteError`
  line saying what was kept (default: the last checkpoint) and where (when the
  error names no path; default: the workdir); other exceptions pass unchanged."""
  try:
    yield
  except errors.GanJaxError:
    raise
  except Exception as e:
    error = errors.write_error(e, what, where or workdir, kept_text or kept(workdir))
    if error is None:
      raise
    raise error from e


@dataclasses.dataclass(frozen=True)
class Workdir:
  """A training run's workdir while `held`: `main` is process 0, the one
  that changes it; `created`: the lock file and workdir this run made."""
  path: str
  main: bool
  created: tuple[str, ...]

  def prepare(self, config: Config, log: Log) -> None:
    """Clears an earlier run on --overwrite (only what gan_jax wrote:
    `OUTPUT_NAMES`), or refuses a workdir with another run's outputs.

    Raises:
      RunError: the workdir holds another run's outputs without a checkpoint
        (and --overwrite was not given).
    """
    # Not a run's outputs: the error log, and half-written files Orbax or files.py clear.
    ours = [p for p in gan_jax_outputs(self.path)
            if not re.fullmatch(r'error\.log|' + _HALF_WRITTEN, os.path.basename(p))]
    present = sorted({os.path.relpath(p, self.path).split(os.sep)[0] for p in ours})
    if config.overwrite and self.main:  # What killed samples and exports left here.
      destination.clear_leftovers(self.path, log)
    if config.overwrite and ours:
      log(_overwrite_message(self.path, ours))
      if self.main:
        remove_outputs(self.path, gan_jax_outputs(self.path))
        with contextlib.suppress(FileNotFoundError):
          os.unlink(os.path.join(self.path, files.RECORD))
      multihost.sync('overwrite')
    elif present and not checkpoints.has_checkpoint(self.path):
      raise RunError(
          f'{self.path} already holds outputs of a run ({", ".join(present)}) but no '
          'checkpoint to resume from; pass --overwrite to replace them, or choose '
          'another --workdir')

  @contextlib.contextmanager
  def cleaned_up_on_failure(self) -> Iterator[None]:
    """If the run fails before its first checkpoint, removes what it created.

    So the same command, once the cause is fixed, simply runs again. Outputs
    that were there before this run started are never touched, and the
    workdir and lock file go only where this run made them.
    """
    before = set(gan_jax_outputs(self.path))
    record = os.path.join(self.path, files.RECORD)
    had_record = os.path.exists(record)
    try:
      yield
    except BaseException:
      if self.main and not checkpoints.has_checkpoint(self.path):
        # Cleaning up must not hide the cause: whatever cannot go stays.
        remove_outputs(self.path, [p for p in gan_jax_outputs(self.path) if p not in before],
                       strict=False)
        if not had_record and not gan_jax_outputs(self.path):
          with contextlib.suppress(OSError):
            os.unlink(record)
        for path in self.created:  # The lock file, then the workdir if left empty.
          with contextlib.suppress(OSError):
            if os.path.isfile(path):
              os.unlink(path)
            elif os.path.isdir(path) and not os.listdir(path):
              os.rmdir(path)
      raise


@contextlib.contextmanager
def held(config: Config) -> Iterator[Workdir]:
  """The workdir, its exclusive lock held by process 0 (one run per workdir);
  with --distributed every process learns whether it got it, so a refused
  run stops everywhere at once."""
  path = os.path.abspath(config.workdir)
  lock = workdir_lock.lock_path(path)
  created = tuple(p for p in (lock, path) if not os.path.exists(p))
  main = multihost.is_main()
  with contextlib.ExitStack() as stack:
    failed = None
    if main:
      try:
        stack.enter_context(workdir_lock.hold(path, exclusive=True, command='training'))
      except Exception as e:  # pylint: disable=broad-except  # Raised below, everywhere.
        failed = e
    if multihost.any_process(failed is not None):
      raise failed or workdir_lock.WorkdirBusy(
          f'process 0 could not take {path} (in use by another gan_jax run, or not '
          'writable; its own line says which); fix that and run the same commands again')
    multihost.sync('workdir')  # Process 0 made it.
    yield Workdir(path=path, main=main, created=created)


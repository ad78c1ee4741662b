"""Checkpoints of a run, through Orbax's CheckpointManager.

A checkpoint (``WORKDIR/checkpoints/<epoch>/``) holds a run's `Progress`:
``state``, the arrays of `checkpoint_tree` (both TrainStates, the generator
EMA, the fixed grid noise; restored against an abstract target of the same
tree), and ``meta``, JSON (the epoch, the configuration that must match to
resume, the metrics history). `resume` and `save_progress` are what training
uses; `intact_for_reading` what a reader (sample, export) uses.

Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a kill leaves either the old set or the new one. ``digest.json``
records the sha256 of every file; `verify` checks it before a restore, and
`set_aside` renames a damaged checkpoint to ``<epoch>.damaged`` (kept, but not
a step to Orbax). A checkpoint without a digest is restored unchecked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from gan_jax import datasets, errors, files, multihost
from gan_jax import config as config_lib
from gan_jax.config import Config
from gan_jax.errors import RunError

Log = Callable[[str], None]

DIGEST = 'digest.json'


class CheckpointError(errors.GanJaxError):
  """A checkpoint is missing, corrupt or does not fit the run."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def make_manager(workdir: str, max_to_keep: int = 3, create: bool = True
                 ) -> ocp.CheckpointManager:
  """A manager for ``WORKDIR/checkpoints`` keeping the last `max_to_keep`."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=create,
      # Synchronous saves: a checkpoint is complete when save() returns, which
      # keeps interrupt handling and tests simple. A save takes well under a
      # second for these networks.
      enable_async_checkpointing=False,
      # A save that failed (disk full) leaves a temporary folder: cleared on the next start.
      cleanup_tmp_directories=create)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=('state', 'meta'))


def has_checkpoint(workdir: str) -> bool:
  """True when ``WORKDIR/checkpoints`` holds at least one finished checkpoint."""
  return latest_epoch(workdir) is not None


def save(manager: ocp.CheckpointManager, epoch: int, state: Any,
         meta: dict[str, Any]) -> None:
  """Saves `state` (a pytree of arrays) and `meta` (JSON-able) as `epoch`;
  every process takes part (Orbax writes each array once), process 0 records
  and digests it."""
  main = multihost.is_main()
  if main:
    files.note(os.path.join(str(manager.directory), str(epoch)))
  manager.save(epoch, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=True)
  manager.wait_until_finished()
  multihost.sync(f'checkpoint {epoch} saved')
  if main:
    step = os.path.join(str(manager.directory), str(epoch))
    files.write_json(os.path.join(step, DIGEST), _digests(step))
  multihost.sync(f'checkpoint {epoch} digested')


def _digests(step: str) -> dict[str, str]:
  """sha256 of every file under `step` but the digest, by relative path."""
  out = {}
  for root, dirs, names in os.walk(step):
    dirs.sort()
    for name in sorted(names):
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step)
      if rel == DIGEST:
        continue
      h = hashlib.sha256()
      with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
          h.update(block)
      out[rel] = h.hexdigest()
  return out


def verify(manager: ocp.CheckpointManager, epoch: int) -> bool | None:
  """True if checkpoint `epoch` matches its digest, False if damaged, None
  if it has no digest (written by an older version)."""
  step = os.path.join(str(manager.directory), str(epoch))
  try:
    with open(os.path.join(step, DIGEST)) as f:
      expected = json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return False
  try:
    return _digests(step) == expected
  except OSError:
    return False


def set_aside(manager: ocp.CheckpointManager, epoch: int, record: bool = True) -> str:
  """Renames damaged checkpoint `epoch` to ``<epoch>.damaged`` (then
  ``.damaged-2``...), never deleting it; returns the new path. `record`: note
  it as gan_jax's (not for a file in a checkpoint's place: not gan_jax's)."""
  step = os.path.join(str(manager.directory), str(epoch))
  target, n = step + '.damaged', 1
  while os.path.lexists(target):
    n += 1
    target = f'{step}.damaged-{n}'
  if record:
    files.record(os.path.dirname(os.path.dirname(step)), target)
  os.rename(step, target)
  return target


def latest_epoch(workdir: str) -> int | None:
  """The newest finished checkpoint's epoch in ``WORKDIR/checkpoints``, or None."""
  steps = [int(n) for n in not_folders(workdir, folders=True)]
  return max(steps) if steps else None


def not_folders(workdir: str, folders: bool = False) -> list[str]:
  """The names of ``WORKDIR/checkpoints`` named as checkpoints (an epoch) that
  are not folders (a file put in a checkpoint's place); with `folders`, those
  that are."""
  path = checkpoint_dir(workdir)
  names = os.listdir(path) if os.path.isdir(path) else []
  return [n for n in names if n.isdigit() and os.path.isdir(os.path.join(path, n)) == folders]


def read_meta(manager: ocp.CheckpointManager, epoch: int) -> dict[str, Any]:
  """Reads only the JSON part of a checkpoint."""
  path = os.path.join(str(manager.directory), str(epoch))
  try:
    restored = manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored['meta'])
  except Exception as e:
    raise CheckpointError(
        f'checkpoint {path} is unreadable ({type(e).__name__}: {e}); delete it '
        'to fall back to an earlier one, or pass --overwrite to start over') from e


def restore(manager: ocp.CheckpointManager, epoch: int, target: Any
            ) -> tuple[Any, dict[str, Any]]:
  """Restores (state, meta) of `epoch`; `target` gives the tree structure and shapes.

  Raises:
    CheckpointError: naming the checkpoint path, when it is corrupt or does not
      match the target.
  """
  path = os.path.join(str(manager.directory), str(epoch))
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
  try:
    restored = manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
  except Exception as e:
    raise CheckpointError(
        f'checkpoint {path} is corrupt or does not match this configuration '
        f'({type(e).__name__}: {str(e)[:300]}); delete it to fall back to an '
        'earlier one, or pass --overwrite to start over') from e
  return restored['state'], dict(restored['meta'])


@dataclasses.dataclass
class Progress:
  """What a checkpoint holds and the epoch loop carries from epoch to epoch."""
  state: Any             # train.GANState
  fixed_noise: Any       # the sample grids' noise
  history: list[dict[str, Any]]
  start_epoch: int


def checkpoint_tree(state: Any, fixed_noise: Any) -> dict[str, Any]:
  """The arrays of a checkpoint; the one place its structure is defined
  (save, resume and the readers all use it)."""
  return {'gan': state, 'fixed_noise': fixed_noise}


def save_progress(manager: ocp.CheckpointManager, config: Config, epoch: int,
                  progress: Progress) -> None:
  """Saves `progress` as the checkpoint of `epoch`."""
  save(manager, epoch, checkpoint_tree(progress.state, progress.fixed_noise),
       {'epoch': epoch, 'config': config.__dict__, 'history': progress.history,
        **_folder_digest(config)})


# Settings no run had before they were added: a checkpoint without them ran
# with these values (any other missing field had its default then).
ADDED_LATER = {'class_loss_weight': 0.0, 'mode_seeking': 0.0, 'reconstruction': 0.0,
               'augment': 'none'}


def saved_config(meta: dict[str, Any]) -> dict[str, Any]:
  """A checkpoint's configuration, with `ADDED_LATER` filled in."""
  return {**ADDED_LATER, **meta.get('config', {})}


def run_config(meta: dict[str, Any]) -> Config:
  """A checkpoint's (or a shipped generator's) configuration as a `Config`;
  fields this version no longer has are left out."""
  return Config(**{k: v for k, v in saved_config(meta).items()
                   if k in Config.__dataclass_fields__})


def _flag_value(value: Any) -> str:
  """`value` as a command line gives it (absl's booleans are true/false)."""
  return str(value).lower() if isinstance(value, bool) else str(value)


def _folder_digest(config: Config) -> dict[str, str]:
  """A folder run's content digest, which a resume must find again."""
  folder = datasets.get(config.dataset).folder
  return {} if folder is None else {'dataset_sha256': folder.sha256}


def check_resumable(meta: dict[str, Any], config: Config, path: str) -> None:
  """Checks a run with `config` (resolved, as the saved one was) may resume
  the checkpoint in `path` whose meta is `meta`.

  Raises:
    RunError: a field of `config_lib.RESUME_FIELDS` differs; the line gives the
      flags that continue the checkpoint.
  """
  saved = {k: Config.__dataclass_fields__[k].default for k in config_lib.RESUME_FIELDS}
  saved.update(saved_config(meta))
  changed = [k for k in config_lib.RESUME_FIELDS if saved.get(k) != getattr(config, k)]
  if changed:
    diffs = '; '.join(f'{k}: checkpoint {saved.get(k)!r}, now {getattr(config, k)!r}'
                      for k in changed)
    flags = ' '.join(f'--{k}={_flag_value(saved[k])}' for k in changed
                     if saved.get(k) is not None)
    resume_text = f'to continue it, pass {flags}; ' if flags else ''
    raise RunError(
        f'the checkpoint in {path} comes from a different configuration ({diffs}); '
        f'{resume_text}pass --overwrite to start over in this workdir, or choose another '
        '--workdir')
  now = _folder_digest(config).get('dataset_sha256')
  if now is not None and meta.get('dataset_sha256') not in (None, now):
    raise RunError(
        f'the images in {config.dataset} changed since the checkpoint in {path} (content '
        f'digest {meta["dataset_sha256"][:12]}, now {now[:12]}): resuming would train on '
        'other data; put back the images it was trained on, or pass --overwrite to start '
        'over, or choose another --workdir')


def _latest_intact(manager: ocp.CheckpointManager, workdir: str, log: Log) -> int | None:
  """The newest checkpoint that matches its digest; damaged newer ones are
  set aside (renamed, kept) with one line each.

  Raises:
    CheckpointError: checkpoints were there but none is intact.
  """
  damaged = []
  main = multihost.is_main()  # Every process checks; process 0 alone renames.
  for name in sorted(not_folders(workdir), key=int):  # Orbax does not see them as steps.
    target = set_aside(manager, int(name), record=False) if main else name
    log(f'warning: checkpoint {name} in {checkpoint_dir(workdir)} is a file, not a '
        f'checkpoint (a checkpoint is a folder); set aside as {target}')
    multihost.sync(f'set aside file {name}')
  while (latest := manager.latest_step()) is not None:
    if verify(manager, latest) is not False:
      return latest
    damaged.append(set_aside(manager, latest) if main else str(latest))
    log(f'warning: checkpoint {latest} in {checkpoint_dir(workdir)} is '
        f'damaged (its files do not match their digest); set aside as {damaged[-1]}')
    multihost.sync(f'set aside {latest}')
    manager.reload()
  if damaged:
    raise CheckpointError(
        f'no intact checkpoint is left in {checkpoint_dir(workdir)}: every one '
        f'was damaged and is set aside ({", ".join(damaged)}); pass --overwrite to start '
        'over (the damaged ones stay until you delete them)')
  return None


def resume(manager: ocp.CheckpointManager, config: Config, fresh: Progress, log: Log
           ) -> Progress:
  """The latest intact checkpoint's progress, or `fresh` (a new run's) when
  there is none.

  Raises:
    RunError: the checkpoint is of another configuration, or beyond --epochs.
    CheckpointError: it is damaged, or every checkpoint is.
  """
  workdir = os.path.abspath(config.workdir)
  latest = _latest_intact(manager, workdir, log)
  if latest is None:
    return fresh
  meta = read_meta(manager, latest)
  check_resumable(meta, config, checkpoint_dir(workdir))
  if int(meta['epoch']) > config.epochs:
    raise RunError(f'the checkpoint in {checkpoint_dir(workdir)} is of epoch '
                   f'{int(meta["epoch"])}, beyond --epochs={config.epochs}; pass '
                   f'--epochs={int(meta["epoch"])} or more to resume, or --overwrite to '
                   'start over')
  restored, meta = restore(manager, latest, checkpoint_tree(fresh.state, fresh.fixed_noise))
  log(f'Resuming from the checkpoint of epoch {int(meta["epoch"])} in '
      f'{checkpoint_dir(workdir)}')
  return Progress(state=restored['gan'], fixed_noise=restored['fixed_noise'],
                  history=list(meta['history']), start_epoch=int(meta['epoch']))


def intact_for_reading(manager: ocp.CheckpointManager, workdir: str, log: Log) -> int:
  """The newest checkpoint matching its digest (a reader renames nothing).

  Raises:
    CheckpointError: every checkpoint is damaged.
  """
  for name in not_folders(workdir):
    log(f'warning: checkpoint {name} in {checkpoint_dir(workdir)} is a file, not a '
        'checkpoint; skipped (the next training run sets it aside)')
  for epoch in sorted(manager.all_steps(), reverse=True):
    if verify(manager, epoch) is not False:
      return epoch
    log(f'warning: checkpoint {epoch} in {checkpoint_dir(workdir)} is damaged '
        '(its files do not match their digest); using an earlier one (the next '
        'training run sets it aside)')
  raise CheckpointError(
      f'no intact checkpoint in {checkpoint_dir(workdir)}: every one is damaged; '
      'train the run again (--overwrite) or restore the folder from a backup')

"""Checkpoints of a run, through Orbax's CheckpointManager.

A checkpoint (``WORKDIR/checkpoints/<epoch>/``) holds ``state``, the arrays of
`trainer.checkpoint_tree` (both TrainStates, the generator EMA, the fixed grid
noise; restored against an abstract target of the same tree), and ``meta``,
JSON (the epoch, the configuration that must match to resume, the metrics
history).

Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a kill leaves either the old set or the new one. ``digest.json``
records the sha256 of every file; `verify` checks it before a restore, and
`set_aside` renames a damaged checkpoint to ``<epoch>.damaged`` (kept, but not
a step to Orbax). A checkpoint without a digest is restored unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from gan_jax import errors, files, multihost

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
  path = checkpoint_dir(workdir)
  if not os.path.isdir(path):
    return False
  return any(name.isdigit() for name in os.listdir(path))


def save(manager: ocp.CheckpointManager, epoch: int, state: Any,
         meta: dict[str, Any]) -> None:
  """Saves `state` (a pytree of arrays) and `meta` (JSON-able) as `epoch`."""
  if multihost.is_main():
    files.note(os.path.join(str(manager.directory), str(epoch)))
  manager.save(epoch, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=True)
  manager.wait_until_finished()
  multihost.sync(f'checkpoint {epoch} saved')
  if multihost.is_main():
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


def set_aside(manager: ocp.CheckpointManager, epoch: int) -> str:
  """Renames damaged checkpoint `epoch` to ``<epoch>.damaged`` (then
  ``.damaged-2``...), never deleting it; returns the new path."""
  step = os.path.join(str(manager.directory), str(epoch))
  target, n = step + '.damaged', 1
  while os.path.exists(target):
    n += 1
    target = f'{step}.damaged-{n}'
  files.record(os.path.dirname(os.path.dirname(step)), target)
  os.rename(step, target)
  return target


def latest_epoch(workdir: str) -> int | None:
  """The newest finished checkpoint's epoch in ``WORKDIR/checkpoints``, or None."""
  path = checkpoint_dir(workdir)
  steps = [int(n) for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []
  return max(steps) if steps else None


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

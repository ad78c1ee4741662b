"""Checkpoints of a run, through Orbax's CheckpointManager.

A checkpoint (``WORKDIR/checkpoints/<epoch>/``) holds two items:

* ``state``: the arrays (`trainer.checkpoint_tree`: both TrainStates with
  parameters, batch statistics and optimizer state, the generator EMA, and
  the fixed grid noise), saved with
  ``StandardSave`` and restored against an abstract target of the same tree;
* ``meta``: JSON (the epoch, the configuration that must match to resume, and
  the metrics history).

Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a kill leaves either the old set or the new one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from gan_jax import errors


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
      enable_async_checkpointing=False)
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
  manager.save(epoch, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=True)
  manager.wait_until_finished()


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

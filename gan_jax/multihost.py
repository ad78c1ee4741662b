"""What a run does differently when it is one of several processes.

Every process runs the same program (JAX's multi-controller model): each
trains on its share of every global batch, all of them save and restore the
checkpoints together (Orbax), and process 0 alone prints and writes the
images, plots, labels, metrics and reports. With one process every helper
here is a no-op.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding


def is_main() -> bool:
  """True in the process that prints and writes the outputs (process 0)."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Waits until every process has reached the point called `name`."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
  """True if `flag` is True in at least one process (e.g. a Ctrl-C in one)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def process_rows(sharding: Sharding, global_shape: tuple[int, ...], axis: int) -> slice:
  """The rows along `axis` of a global array that this process's devices hold."""
  index_map = sharding.addressable_devices_indices_map(global_shape)
  starts = [index[axis].start or 0 for index in index_map.values()]
  stops = [global_shape[axis] if index[axis].stop is None else index[axis].stop
           for index in index_map.values()]
  return slice(min(starts), max(stops))


def local_copy(tree):
  """A process-local NumPy copy of a tree of replicated arrays (for work that
  only process 0 does, such as sampling and evaluation)."""
  def to_numpy(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return np.asarray(x) if isinstance(x, jax.Array) else x
  return jax.tree_util.tree_map(to_numpy, tree)

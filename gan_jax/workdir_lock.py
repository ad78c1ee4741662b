"""One run per workdir: an OS file lock on ``WORKDIR/.gan_jax.lock``.

A training run holds it exclusively from before its first write to its
end; reading modes (``--mode=sample``, ``--mode=export``) hold it shared, so
several may read at once but none while a run trains. The lock is
``fcntl.flock``: the kernel releases it when the process ends, however it
ends (a ``kill -9`` never leaves a workdir locked).

  with workdir_lock.hold(workdir):                    # training
  with workdir_lock.hold(workdir, exclusive=False):   # reading
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
from typing import Iterator

from gan_jax import errors

LOCK_NAME = '.gan_jax.lock'


class WorkdirBusy(errors.GanJaxError):
  """Another gan_jax process holds the workdir."""
  exit_code = 2


def lock_path(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), LOCK_NAME)


def _holder(path: str) -> str:
  """Who holds the lock, as its file says (the exclusive holder writes it)."""
  try:
    with open(path) as f:
      info = json.load(f)
    return (f'pid {info["pid"]} on {info["host"]}, started {info["started"]}, '
            f'{info["command"]}')
  except (OSError, ValueError, KeyError, TypeError):
    return 'a gan_jax process that is reading it (e.g. --mode=sample)'


def _open(path: str, exclusive: bool) -> int | None:
  """The lock file's descriptor; None when a reader cannot create it (a
  read-only workdir: then nobody can be training in it either)."""
  try:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    if exclusive:
      raise
    if e.errno == errno.ENOENT and not os.path.isdir(os.path.dirname(path)):
      return None
    try:
      return os.open(path, os.O_RDONLY)
    except OSError:
      return None


def _acquire(workdir: str, exclusive: bool) -> int | None:
  path = lock_path(workdir)
  while True:
    fd = _open(path, exclusive)
    if fd is None:
      return None
    try:
      fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise WorkdirBusy(
          f'{os.path.abspath(workdir)} is in use by another gan_jax run ({_holder(path)}); '
          'wait for it to finish, or choose another --workdir') from None
    try:  # The file may have been removed (a run cleaning up) since we opened it.
      same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)


@contextlib.contextmanager
def hold(workdir: str, exclusive: bool = True, command: str = 'training'
         ) -> Iterator[None]:
  """Holds the workdir's lock (creating the workdir for an exclusive hold).

  Raises:
    WorkdirBusy: another process holds it (one line naming the holder).
    OSError: the workdir or its lock file cannot be created.
  """
  workdir = os.path.abspath(workdir)
  if exclusive:
    os.makedirs(workdir, exist_ok=True)
  fd = _acquire(workdir, exclusive)
  try:
    if fd is not None and exclusive:
      info = {'pid': os.getpid(), 'host': socket.gethostname(), 'command': command,
              'started': datetime.datetime.now().isoformat(timespec='seconds')}
      os.ftruncate(fd, 0)
      os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
    yield
  finally:
    if fd is not None:
      os.close(fd)  # Closing the descriptor releases the lock.

"""One run per workdir: an OS file lock on ``WORKDIR/.gan_jax.lock``.

A training run holds it exclusively from before its first write to its
end; reading modes (``--mode=sample``, ``--mode=export``) hold it shared, so
several may read at once but none while a run trains. The lock is
``fcntl.flock``: the kernel releases it when the process ends, however it
ends (a ``kill -9`` never leaves a workdir locked). Its file names who holds
it: the writer's line, or a line per reader; a refusal names only those that
still hold it (Linux's /proc/locks), never a process that is gone.

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
from typing import Callable, Iterator

from gan_jax import errors

LOCK_NAME = '.gan_jax.lock'


class WorkdirBusy(errors.GanJaxError):
  """Another gan_jax process holds the workdir."""
  exit_code = 2


def lock_path(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), LOCK_NAME)


def _holding_pids(path: str) -> set[int] | None:
  """The processes that hold a flock on `path` (Linux's /proc/locks), or None
  where that cannot be read."""
  try:
    st = os.stat(path)
    with open('/proc/locks') as f:
      lines = f.read().splitlines()
  except OSError:
    return None
  device = f'{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}'
  pids = set()
  for line in lines:
    parts = line.split()
    if 'FLOCK' in parts and len(parts) > 5 and parts[parts.index('FLOCK') + 4] == device:
      with contextlib.suppress(ValueError):
        pids.add(int(parts[parts.index('FLOCK') + 3]))
  return pids


def _alive(info: dict) -> bool:
  if info.get('host') != socket.gethostname():
    return True  # Another host's process: it cannot be checked from here.
  try:
    os.kill(int(info['pid']), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OverflowError):
    pass
  return True


def _holder(path: str) -> str:
  """Who holds the lock, as its file says: the exclusive holder writes its
  line there, each reader appends its own; only those that still hold it
  (/proc/locks, else those alive) are named."""
  entries = []
  try:
    with open(path, errors='replace') as f:
      for line in f:
        with contextlib.suppress(ValueError):
          info = json.loads(line)
          if isinstance(info, dict) and {'pid', 'host', 'started', 'command'} <= set(info):
            entries.append(info)
  except OSError:
    pass
  entries = [e for e in entries if _alive(e)]
  holders = _holding_pids(path) or set()
  holding = [e for e in entries if e['pid'] in holders]
  entries = holding or entries  # Alive but no longer holding it: not named.
  if not entries:
    return 'a gan_jax process that is reading it (e.g. --mode=sample)'
  return '; '.join(f'pid {e["pid"]} on {e["host"]}, started {e["started"]}, '
                   f'{e["command"]}' + (' (reading it)' if e.get('shared') else '')
                   for e in entries[-3:])


def _record(fd: int, path: str, exclusive: bool, command: str) -> None:
  """Writes who holds the lock into its file: the exclusive holder replaces
  the file's contents, a reader appends its line (one write, O_APPEND)."""
  info = {'pid': os.getpid(), 'host': socket.gethostname(), 'command': command,
          'started': datetime.datetime.now().isoformat(timespec='seconds')}
  if exclusive:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
    return
  with contextlib.suppress(OSError):  # A read-only workdir: the reader goes unnamed.
    append = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
      os.write(append, (json.dumps({**info, 'shared': True}) + '\n').encode())
    finally:
      os.close(append)


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


def _acquire(path: str, exclusive: bool, busy: Callable[[str], str]) -> int | None:
  """The locked descriptor of lock file `path`; `busy(holder)`: the refusal line."""
  while True:
    fd = _open(path, exclusive)
    if fd is None:
      return None
    try:
      fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise WorkdirBusy(busy(_holder(path))) from None
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
  busy = lambda holder: (f'{workdir} is in use by another gan_jax run ({holder}); '  # noqa: E731
                         'wait for it to finish, or choose another --workdir')
  with hold_file(lock_path(workdir), busy, exclusive, command):
    yield


@contextlib.contextmanager
def hold_file(path: str, busy: Callable[[str], str], exclusive: bool = True,
              command: str = 'training', remove: bool = False) -> Iterator[None]:
  """Holds the lock file `path`, recording who holds it; `busy(holder)` is
  the line of the refusal. With `remove`, the file goes when released (the
  next holder makes a new one: `_acquire` checks it took the file in place).

  Raises:
    WorkdirBusy: another process holds it.
  """
  fd = _acquire(path, exclusive, busy)
  try:
    if fd is not None:
      _record(fd, path, exclusive, command)
    yield
  finally:
    if fd is not None:
      if exclusive:  # Released: nobody is named any more (a kill -9 leaves its line).
        with contextlib.suppress(OSError):
          os.ftruncate(fd, 0)
      if remove:
        with contextlib.suppress(OSError):
          os.unlink(path)
      os.close(fd)  # Closing the descriptor releases the lock.

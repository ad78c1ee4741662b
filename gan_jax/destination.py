"""The folders --mode=sample and --mode=export write: checked before any
work, held while the command runs, built beside and put in place whole, never
over what gan_jax did not write. While a command writes DEST, beside it:

  .DEST.gan_jax-lock              who writes DEST (a second command is refused)
  .<kind>-tmp-DEST-XXXXXXXX/      the set being built, renamed to DEST when whole

- `check`, at the start: DEST is missing, empty, or (with --overwrite) an
  earlier output of the same kind that holds nothing else.
- `reserved`: the lock; what killed commands left for DEST is cleared;
  SIGTERM stops as Ctrl-C does: the temporary folder goes, one `stopped:` line.
- `Place.install`: `os.rename`, which refuses a folder that is not empty: a
  DEST that appeared meanwhile is kept and the set goes to DEST-2 (a line says
  so); an earlier output (--overwrite) is moved aside, then only its files go.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import itertools
import os
import re
import shutil
import signal
import threading
from typing import Callable, Iterator

from gan_jax import errors, files, outputs, workdir_lock
from gan_jax.errors import RunError

Log = Callable[[str], None]

# A name already taken: a folder that is not empty, or a file.
_TAKEN = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR)
# What a killed command leaves beside DEST: `.{kind}-{tmp|old}-{tag}-{mkdtemp's 8}`.
_LEFTOVER = re.compile(r'\.(export|sample)-(tmp|old)-(?P<tag>.+)-[a-z0-9_]{8}')
_HALF_WRITTEN = re.compile(r'(.*/)?\.tmp-[^/]*')  # An atomic write cut short (files.py).


@dataclasses.dataclass(frozen=True)
class Kind:
  """An output written by a command: 'export' (export.KIND) or 'sample'."""
  name: str     # in the temporary folders' names and the lines: 'export'
  flag: str     # '--export_dir'
  noun: str     # outputs.EXPORT: what such a folder is
  # For a folder: None when it is not this kind of output, else whether a path
  # in it (relative; a folder's ends with '/') is one gan_jax wrote.
  owns: Callable[[str], Callable[[str], bool] | None]
  error: type = RunError  # The refusals' type (export.ExportError).


def _tag(dest: str) -> str:
  name = os.path.basename(dest)
  return name if len(name) <= 100 else f'{name[:80]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}'


def lock_path(dest: str) -> str:
  """The lock file of destination `dest`, beside it."""
  return os.path.join(os.path.dirname(dest), f'.{_tag(dest)}.gan_jax-lock')


def split(folder: str, kind: Kind) -> tuple[list[str], list[str]] | None:
  """(what gan_jax wrote, everything else) in `folder`, as relative paths
  (a folder's ending in '/'); None when it is not an output of `kind`."""
  owns = kind.owns(folder)
  if owns is None:
    return None
  ours, others = [], []
  for root, dirs, names in os.walk(folder):
    entries = [(d, not os.path.islink(os.path.join(root, d))) for d in dirs]
    for name, is_dir in entries + [(n, False) for n in names]:
      rel = os.path.relpath(os.path.join(root, name), folder) + ('/' if is_dir else '')
      (ours if owns(rel) or _HALF_WRITTEN.fullmatch(rel) else others).append(rel)
    dirs[:] = [d for d, is_dir in entries if is_dir]
  return ours, others


def _listing(paths: list[str]) -> str:
  return ', '.join(paths[:3]) + (f' and {len(paths) - 3} more' if len(paths) > 3 else '')


def check(kind: Kind, given: str, overwrite: bool) -> str:
  """The destination `given` (absolute), checked before any work.

  Raises:
    kind.error: inside another output of gan_jax, a file, not writable, or a
      non-empty folder that is not an earlier output of `kind` holding only
      its own files (or is one, without --overwrite). Nothing is changed.
  """
  dest = outputs.check(kind.flag, given, kind.noun, beside=True, error=kind.error)
  if not os.path.isdir(dest) or not os.listdir(dest):
    return dest
  found = split(dest, kind)
  if found is None:
    raise kind.error(
        f'{kind.flag}={given} holds files that are not {kind.noun} of gan_jax; they are '
        f'kept; --overwrite only replaces {kind.noun} written by gan_jax, so choose another '
        'folder (or an empty one)')
  if not overwrite:
    raise kind.error(
        f'{kind.flag}={given} exists and is not empty; pass --overwrite to replace the '
        f'earlier {kind.name} it holds (kept until then), or choose another folder')
  if found[1]:
    raise kind.error(
        f'{kind.flag}={given} holds files besides {kind.noun} of gan_jax '
        f'({_listing(found[1])}); --overwrite replaces only what gan_jax wrote, so move them '
        'away or choose another folder')
  return dest


class Place:
  """The destination while `reserved`: temporary folders beside it, and the
  one rename that puts a finished set in place."""

  def __init__(self, kind: Kind, dest: str, overwrite: bool, log: Log):
    self.kind, self.dest, self.overwrite, self.log = kind, dest, overwrite, log
    self.parent = os.path.dirname(dest)
    self.temps: list[str] = []
    self.installed: str | None = None

  def temp(self) -> str:
    """A new temporary folder beside the destination (removed on failure)."""
    path = files.make_temp_dir(self.parent, f'.{self.kind.name}-tmp-{_tag(self.dest)}-')
    self.temps.append(path)
    return path

  def remove_temps(self) -> None:
    for path in self.temps:
      shutil.rmtree(path, ignore_errors=True)
    self.temps = []

  def clear_leftovers(self) -> None:
    """Removes what killed commands left for this destination (held: none is alive)."""
    names = _leftovers(self.parent, _tag(self.dest))
    for name in names:
      shutil.rmtree(os.path.join(self.parent, name), ignore_errors=True)
    if names:
      self.log(f'Removed what an interrupted sample or export left beside {self.dest}: '
               f'{_listing(names)}')

  def install(self, tmp: str) -> str:
    """Renames the finished `tmp` to the destination; returns where it went:
    the destination, or DEST-N when the destination now holds what may not be
    replaced (a line says why)."""
    try:
      os.rename(tmp, self.dest)  # Refuses a non-empty folder or a file: never replaces them.
      return self._installed(tmp, self.dest)
    except OSError as e:
      if e.errno not in _TAKEN:
        raise
    found = split(self.dest, self.kind) if os.path.isdir(self.dest) else None
    if self.overwrite and found is not None and not found[1]:
      holder = files.make_temp_dir(self.parent, f'.{self.kind.name}-old-{_tag(self.dest)}-')
      self.temps.append(holder)
      old = os.path.join(holder, 'old')
      os.rename(self.dest, old)
      try:
        os.rename(tmp, self.dest)
      except OSError as e:
        if e.errno not in _TAKEN:
          raise
        with contextlib.suppress(OSError):
          os.rename(old, self.dest)  # Put back (if it is still free).
      else:
        self._remove_own(old)
        return self._installed(tmp, self.dest)
    return self._fresh(tmp, self._why_taken(found))

  def _installed(self, tmp: str, where: str) -> str:
    self.temps = [t for t in self.temps if t != tmp]
    self.installed = where
    return where

  def _why_taken(self, found: tuple[list[str], list[str]] | None) -> str:
    kind = self.kind
    if not os.path.isdir(self.dest):
      return 'is now a file'
    if found is None:
      return (f'appeared while the {kind.name} was being written and holds files that '
              f'are not {kind.noun} of gan_jax')
    if found[1]:
      return f'now holds files besides {kind.noun} of gan_jax ({_listing(found[1])})'
    return (f'now holds {kind.noun} that another command wrote meanwhile (not replaced '
            'without --overwrite)')

  def _fresh(self, tmp: str, why: str) -> str:
    for n in itertools.count(2):
      candidate = f'{self.dest}-{n}'
      try:
        os.rename(tmp, candidate)
      except OSError as e:
        if e.errno not in _TAKEN:
          raise
        continue
      self.log(f'warning: {self.dest} {why}; it is kept as it is, and the {self.kind.name} '
               f'went to {candidate} instead')
      return self._installed(tmp, candidate)
    raise AssertionError('unreachable')

  def _remove_own(self, old: str) -> None:
    """Removes the files gan_jax wrote in the earlier output moved aside to
    `old`; anything else found there is kept, with a line saying where."""
    ours, others = split(old, self.kind) or ([], [])
    for rel in sorted(ours, key=lambda r: -r.rstrip('/').count('/')):  # Files, then folders.
      path = os.path.join(old, rel.rstrip('/'))
      with contextlib.suppress(OSError):
        if rel.endswith('/'):
          os.rmdir(path)
        else:
          os.unlink(path)
    with contextlib.suppress(OSError):
      os.rmdir(old)
    if others:
      self.log(f'warning: files that appeared in the earlier {self.kind.name} at {self.dest} '
               f'while it was replaced are kept in {old}: {_listing(others)}')
      self.temps = [t for t in self.temps if t != os.path.dirname(old)]


def _leftovers(folder: str, tag: str | None = None) -> list[str]:
  """Names in `folder` of temporary folders of a sample or export (for `tag`'s destination)."""
  try:
    names = os.listdir(folder)
  except OSError:
    return []
  return sorted(n for n in names if (m := _LEFTOVER.fullmatch(n))
                and (tag is None or m.group('tag') == tag))


def clear_leftovers(folder: str, log: Log) -> list[str]:
  """Removes the temporary folders that killed samples and exports left in
  `folder` (--overwrite), each only while no command writes its destination."""
  removed = []
  for tag in sorted({_LEFTOVER.fullmatch(n).group('tag') for n in _leftovers(folder)}):
    try:
      with workdir_lock.hold_file(lock_path(os.path.join(folder, tag)), lambda h: h,
                                  command='clearing', remove=True):
        for name in _leftovers(folder, tag):
          shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
          removed.append(name)
    except (workdir_lock.WorkdirBusy, OSError):
      continue  # Written by a live command: its own.
  if removed:
    log(f'--overwrite: removing what interrupted samples or exports left in {folder}: '
        f'{_listing(removed)}')
  return removed


class _Stop(KeyboardInterrupt):
  """SIGINT or SIGTERM while a sample or export is written."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)


def _stop(signum, frame):
  del frame
  raise _Stop(signum)


@contextlib.contextmanager
def _stops_cleanly(place: Place) -> Iterator[None]:
  """SIGINT and SIGTERM raise `_Stop` (so clean-ups run); either, or Ctrl-C,
  ends as one `errors.Interrupted` line saying what was written."""
  previous = {}
  if threading.current_thread() is threading.main_thread():
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    yield
  except KeyboardInterrupt as e:
    how = f'on {e}' if isinstance(e, _Stop) else 'on Ctrl-C'
    kind = place.kind
    if place.installed:
      raise errors.Interrupted(f'--mode={kind.name} ended {how} after writing its '
                               f'{kind.name} to {place.installed}, which is complete') from None
    raise errors.Interrupted(
        f'--mode={kind.name} ended {how} before its {kind.name} was complete; nothing was '
        f'written to {place.dest} (the partial one is removed); run the same command again '
        'to start it over') from None
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
  """SIGINT and SIGTERM wait until the block is done (a clean-up is not cut
  short), then stop the command unless it is failing already."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  got: list[int] = []
  previous = {s: signal.signal(s, lambda signum, _: got.append(signum))
              for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    yield
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  if got:
    raise _Stop(got[0])


@contextlib.contextmanager
def reserved(kind: Kind, dest: str, overwrite: bool, log: Log) -> Iterator[Place]:
  """Holds destination `dest` (checked by `check`) for one command.

  Raises:
    workdir_lock.WorkdirBusy: another command writes `dest` (one line naming it).
    errors.Interrupted: SIGINT or SIGTERM; nothing is left half-written.
  """
  created = []
  folder = os.path.dirname(dest)
  while not os.path.isdir(folder):
    created.append(folder)
    folder = os.path.dirname(folder)
  busy = lambda holder: (f'{dest} is being written by another gan_jax command ({holder}); '  # noqa: E731
                         f'it is left to it; wait for it to finish, or choose another '
                         f'{kind.flag}')
  place = Place(kind, dest, overwrite, log)
  try:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with _stops_cleanly(place), workdir_lock.hold_file(
        lock_path(dest), busy, command=f'--mode={kind.name}', remove=True):
      place.clear_leftovers()
      try:
        yield place
      finally:
        with _signals_deferred():
          place.remove_temps()
  finally:
    for path in created:  # The folders made for it, if nothing went there.
      with contextlib.suppress(OSError):
        os.rmdir(path)

"""The one base class of every error a user is meant to read, and the
translation of operating-system write failures into such errors.

The command line (`gan_jax.cli`) prints the message of a `GanJaxError` as one
line, ``error: ...``, and exits with its `exit_code`; any other exception is a
bug and keeps its traceback (in ``WORKDIR/error.log``).

Exit codes: 2 bad input or a busy workdir, 3 non-finite loss, 4 a write
failed (disk full, permission denied, read-only filesystem, a missing folder),
5 a process of a ``--distributed`` run stopped answering, 130 stopped on a
signal.
"""

from __future__ import annotations

import errno
import re

WRITE_FAILED = 4


class GanJaxError(Exception):
  """A problem the user can fix; the message says what and how."""
  exit_code = 2
  prefix = 'error'  # The command line prints ``<prefix>: <message>``.


class WriteError(GanJaxError):
  """Writing an output failed (disk full, permissions, read-only, missing folder)."""
  exit_code = WRITE_FAILED


# What the operating system (or TensorStore, inside Orbax) says, by errno.
_STRERRORS = {
    errno.ENOSPC: 'No space left on device', errno.EDQUOT: 'Disk quota exceeded',
    errno.EACCES: 'Permission denied', errno.EPERM: 'Operation not permitted',
    errno.EROFS: 'Read-only file system', errno.ENOENT: 'No such file or directory',
    errno.ENOTDIR: 'Not a directory', errno.EISDIR: 'Is a directory',
    errno.EEXIST: 'File exists',
}
_FIXES = {
    errno.ENOSPC: 'free space on that disk (or choose a --workdir on another one)',
    errno.EDQUOT: 'free space within your quota (or choose a --workdir elsewhere)',
    errno.EACCES: 'check the permissions of that folder (or choose a folder you can '
                  'write to)',
    errno.EROFS: 'choose a folder on a writable filesystem',
    errno.ENOENT: 'check that the folder still exists (it may have been removed or '
                  'unmounted while the run went on)',
    errno.ENOTDIR: 'a file stands where a folder is needed; move it away or choose '
                   'another folder',
    errno.EISDIR: 'a folder stands where a file is needed; move it away or choose '
                  'another folder',
    errno.EEXIST: 'a file stands where a folder is needed; move it away or choose '
                  'another folder',
}
_FIXES[errno.EPERM] = _FIXES[errno.EACCES]


def _chain(exc: BaseException):
  seen = set()
  while exc is not None and id(exc) not in seen:
    seen.add(id(exc))
    yield exc
    exc = exc.__cause__ or exc.__context__


def find_os_error(exc: BaseException) -> tuple[int, str | None] | None:
  """(errno, path or None) of the OS failure behind `exc`, or None.

  Follows ``__cause__``/``__context__`` (Orbax and its threads wrap the
  OSError), and reads the errno out of TensorStore's messages, which carry
  it only as text.
  """
  for e in _chain(exc):
    if isinstance(e, OSError) and e.errno in _STRERRORS:
      return e.errno, e.filename
  for e in _chain(exc):
    text = str(e)
    for code, words in _STRERRORS.items():
      if words.lower() in text.lower() or f'[OS error {code}' in text:
        match = re.search(r'"(/[^"]+)"|\'(/[^\']+)\'', text)
        return code, (match.group(1) or match.group(2)) if match else None
  return None


def write_error(exc: BaseException, what: str, where: str, kept: str
                ) -> WriteError | None:
  """A one-line `WriteError` for the OS failure behind `exc`, or None if none.

  ``error: <what> while writing <path>: <cause>; <kept>; <fix>``; `where` is
  the path named when the error itself names none.
  """
  found = find_os_error(exc)
  if found is None:
    return None
  code, path = found
  if path is None or 'orbax-checkpoint-tmp' in path:
    path = where  # Orbax's temporary folder means nothing to a user.
  cause = f'{_STRERRORS[code]} ({errno.errorcode[code]})'
  return WriteError(f'{what} while writing {path or where}: {cause}; {kept}; '
                    f'{_FIXES[code]}, then run the same command again')


class RunError(GanJaxError):
  """A run or a mode cannot start or go on; the message says why and what to do."""


class Interrupted(GanJaxError):
  """Training stopped on a signal after saving a checkpoint."""
  exit_code = 130
  prefix = 'stopped'  # A deliberate stop, not an error.


class NonFiniteLossError(GanJaxError):
  """A loss became NaN or infinite; the last good checkpoint is kept."""
  exit_code = 3

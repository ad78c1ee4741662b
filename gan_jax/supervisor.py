"""A --distributed process runs as a child of a small parent that owns its last line.

When process 0 (the coordinator) dies, JAX's coordination client in every other
process logs a fatal error and aborts (exit 134, pages of XLA and faulthandler
output), often before the process prints its own line; this JAX has no working
hook to prevent it. So with --distributed the command starts itself again as a
child whose C-level stderr (XLA's log, fatal dumps) goes to a file, appended to
WORKDIR/error.log, while its Python stderr stays on the terminal. The parent
only waits: it prints the one line of a child that lost a peer, aborted or was
killed, and exits with a documented code. The child dies with its parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from typing import Callable, Iterator, Sequence

_CHILD = 'GAN_JAX_DISTRIBUTED_CHILD'  # "<parent pid>,<terminal fd>,<report fd>"
PEER_LOST = 5  # The exit code when a peer stopped answering.
_COORDINATION_SIGNS = ('distributed service', 'coordination service')


def is_child() -> bool:
  return _CHILD in os.environ


def _child_fds() -> tuple[int, int, int]:
  """In the child: the parent's pid, the terminal's fd and the report pipe's fd."""
  parent, terminal, report_fd = (int(x) for x in os.environ[_CHILD].split(','))
  return parent, terminal, report_fd


def become_child() -> None:
  """In the child: die with the parent, and print Python's stderr to the terminal."""
  parent, terminal, _ = _child_fds()
  if sys.platform.startswith('linux'):
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  if os.getppid() != parent:  # The parent died before prctl took effect.
    os._exit(1)
  sys.stderr = open(terminal, 'w', buffering=1, errors='backslashreplace')


def report(line: str) -> None:
  """In the child: hands the parent the line to print (it prints exactly one)."""
  os.write(_child_fds()[2], line.encode())


def run_child(num_processes: int | None, kept: Callable[[], str],
              keep_log: Callable[[str], None], command: Sequence[str] = ()) -> int:
  """Runs this command (or `command`) as a child; returns the parent's exit code.

  `kept()` says which checkpoint is kept and `keep_log(text)` stores the
  child's C-level log (in WORKDIR/error.log).
  """
  import gan_jax
  root = os.path.dirname(os.path.dirname(os.path.abspath(gan_jax.__file__)))
  terminal = os.dup(2)
  read, write = os.pipe()
  env = dict(os.environ, **{_CHILD: f'{os.getpid()},{terminal},{write}'},
             PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')])))
  with tempfile.TemporaryFile() as log:
    child = subprocess.Popen(
        command or [sys.executable, '-c', 'from gan_jax import cli; cli.run()', *sys.argv[1:]],
        env=env, stderr=log, pass_fds=(terminal, write))
    os.close(terminal)
    os.close(write)
    with _forwarding_signals(child):
      code = child.wait()
    with os.fdopen(read, 'rb') as pipe:
      line = pipe.read().decode(errors='replace')
    log.seek(0)
    text = log.read().decode(errors='replace')
  if text.strip() and (code != 0 or line):
    keep_log(text)
  if line:  # The child saw its peer go and said so.
    code = PEER_LOST
  elif code < 0 or code == 128 + signal.SIGABRT:  # Killed, or aborted by JAX.
    line, code = _line_for_a_signal(num_processes, code, text, kept())
  if line:
    print(line, file=sys.stderr, flush=True)
  return code


def _line_for_a_signal(num_processes: int | None, code: int, log: str,
                       kept: str) -> tuple[str, int]:
  signum = -code if code < 0 else signal.SIGABRT
  if signum == signal.SIGABRT and any(sign in log for sign in _COORDINATION_SIGNS):
    coordinator = f'process 0 of {num_processes}' if num_processes else 'process 0'
    return (f'error: --distributed: {coordinator} stopped answering (the coordination '
            f'service is gone); {kept}; run the same commands again to resume from it',
            PEER_LOST)
  name = signal.Signals(signum).name
  return (f'error: --distributed: this process was stopped by {name} (its log is in '
          f'error.log in the workdir); {kept}; run the same commands again to resume '
          'from it', 128 + signum)


@contextlib.contextmanager
def _forwarding_signals(child: subprocess.Popen) -> Iterator[None]:
  """SIGTERM/SIGHUP go on to the child; SIGINT too, unless the terminal's Ctrl-C
  reaches the child itself (same foreground process group)."""
  def forward(signum, frame):
    del frame
    if signum == signal.SIGINT and _in_foreground():
      return
    with contextlib.suppress(ProcessLookupError):
      child.send_signal(signum)

  previous = {sig: signal.signal(sig, forward)
              for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
  try:
    yield
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def _in_foreground() -> bool:
  try:
    return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
  except (OSError, ValueError, AttributeError):
    return False

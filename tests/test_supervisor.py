"""The parent of a --distributed process: one line for a child that lost a
peer, aborted or was killed; the child's C-level log kept, not printed."""

import signal
import sys

from gan_jax import supervisor

ABORTS_LIKE_JAX = '''
from gan_jax import supervisor
import os, sys
supervisor.become_child()
print('python stderr', file=sys.stderr, flush=True)
os.write(2, b'F1202 client.h:80] Terminating process because the JAX distributed service '
            b'detected fatal errors.\\n')
os.abort()
'''


def _run(code: str, capfd, num_processes=3):
  logged = []
  rc = supervisor.run_child(num_processes, lambda: 'the checkpoint of epoch 2 is kept',
                            logged.append, command=[sys.executable, '-c', code])
  return rc, capfd.readouterr().err, ''.join(logged)


def test_a_child_aborted_by_jax_is_one_line_naming_the_coordinator(capfd):
  rc, err, log = _run(ABORTS_LIKE_JAX, capfd)
  assert rc == supervisor.PEER_LOST == 5
  assert err.splitlines() == [
      'python stderr',
      'error: --distributed: process 0 of 3 stopped answering (the coordination service '
      'is gone); the checkpoint of epoch 2 is kept; run the same commands again to '
      'resume from it']
  assert 'Terminating process' in log and 'Terminating process' not in err


def test_a_child_that_reports_its_lost_peer_gets_its_own_line_printed_once(capfd):
  code = ('from gan_jax import supervisor; import os; supervisor.become_child(); '
          "supervisor.report('error: --distributed: process 1 of 2 stopped answering (x)'); "
          "os.write(2, b'gloo noise'); os._exit(5)")
  rc, err, log = _run(code, capfd)
  assert rc == 5
  assert err.splitlines() == ['error: --distributed: process 1 of 2 stopped answering (x)']
  assert log == 'gloo noise'


def test_a_killed_child_is_one_line_with_the_signals_exit_code(capfd):
  code = ('from gan_jax import supervisor; import os, signal; supervisor.become_child(); '
          'os.kill(os.getpid(), signal.SIGKILL)')
  rc, err, _ = _run(code, capfd)
  assert rc == 128 + signal.SIGKILL
  line, = err.splitlines()
  assert line.startswith('error: --distributed: this process was stopped by SIGKILL')
  assert 'the checkpoint of epoch 2 is kept' in line


def test_a_child_that_ends_well_passes_its_code_and_keeps_no_log(capfd):
  code = ('from gan_jax import supervisor; import os, sys; supervisor.become_child(); '
          "os.write(2, b'W1202 a warning'); print('done'); sys.exit(0)")
  rc, err, log = _run(code, capfd)
  assert (rc, err, log) == (0, '', '')
  code = code.replace('sys.exit(0)', "print('error: bad flag', file=sys.stderr); sys.exit(2)")
  rc, err, log = _run(code, capfd)
  assert (rc, err) == (2, 'error: bad flag\n') and log == 'W1202 a warning'


def test_a_sigterm_to_the_parent_reaches_the_child(capfd, tmp_path):
  import os
  import threading
  import time
  ready = tmp_path / 'ready'
  code = ('from gan_jax import supervisor; import pathlib, signal, sys, time; '
          'supervisor.become_child(); '
          "signal.signal(signal.SIGTERM, lambda *_: (print('stopped: on SIGTERM', "
          'file=sys.stderr), sys.exit(130))); '
          f'pathlib.Path({str(ready)!r}).touch(); time.sleep(60)')

  def terminate_once_ready():
    deadline = time.time() + 30
    while not ready.exists() and time.time() < deadline:
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)  # To the parent, which runs this test.

  threading.Thread(target=terminate_once_ready, daemon=True).start()
  rc, err, _ = _run(code, capfd)
  assert rc == 130 and err == 'stopped: on SIGTERM\n'

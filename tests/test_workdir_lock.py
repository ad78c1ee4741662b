"""The workdir lock: one writer, shared readers, released by the kernel."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from gan_jax import errors, workdir_lock

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _holder_process(workdir, exclusive=True, command='training'):
  """A child process that holds the lock until killed; returns it once held."""
  code = textwrap.dedent(f'''
      import sys, time
      from gan_jax import workdir_lock
      with workdir_lock.hold({str(workdir)!r}, exclusive={exclusive}, command={command!r}):
        print('held', flush=True)
        time.sleep(600)
  ''')
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True,
                          env=env)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
  proc = _holder_process(tmp_path / 'run')
  try:
    with pytest.raises(workdir_lock.WorkdirBusy) as info:
      with workdir_lock.hold(str(tmp_path / 'run')):
        pass
    message = str(info.value)
    assert f'pid {proc.pid}' in message and 'started' in message and 'training' in message
    assert '\n' not in message and info.value.exit_code == 2
    assert isinstance(info.value, errors.GanJaxError)
  finally:
    proc.kill()
    proc.wait()


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
  proc = _holder_process(tmp_path / 'run')
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert os.path.exists(workdir_lock.lock_path(str(tmp_path / 'run')))  # The file stays...
  with workdir_lock.hold(str(tmp_path / 'run')):  # ...but not the lock.
    pass


def test_readers_share_but_exclude_a_writer(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  proc = _holder_process(workdir, exclusive=False)
  try:
    with workdir_lock.hold(str(workdir), exclusive=False):  # Another reader: fine.
      pass
    with pytest.raises(workdir_lock.WorkdirBusy, match='reading it'):
      with workdir_lock.hold(str(workdir)):
        pass
  finally:
    proc.kill()
    proc.wait()
  with workdir_lock.hold(str(workdir)):
    with pytest.raises(workdir_lock.WorkdirBusy):  # The same process, a second open file.
      with workdir_lock.hold(str(workdir), exclusive=False):
        pass


def test_a_refusal_names_the_readers_that_hold_it_not_a_gone_trainer(tmp_path):
  workdir = tmp_path / 'run'
  trainer = _holder_process(workdir)  # A training run, then killed: its line stays.
  trainer.kill()
  trainer.wait()
  readers = [_holder_process(workdir, exclusive=False, command='sampling'),
             _holder_process(workdir, exclusive=False, command='export')]
  try:
    with pytest.raises(workdir_lock.WorkdirBusy) as info:
      with workdir_lock.hold(str(workdir)):
        pass
    message = str(info.value)
    assert f'pid {trainer.pid} ' not in message and 'training' not in message
    for reader, command in zip(readers, ('sampling', 'export')):
      assert f'pid {reader.pid} on ' in message
      assert f', {command} (reading it)' in message
    assert '\n' not in message
  finally:
    for reader in readers:
      reader.kill()
      reader.wait()
  with workdir_lock.hold(str(workdir), command='training'):  # The readers are gone.
    pass
  assert open(workdir_lock.lock_path(str(workdir))).read() == ''  # Released: nobody named.


def test_a_reader_of_a_missing_workdir_creates_nothing(tmp_path):
  with workdir_lock.hold(str(tmp_path / 'nope'), exclusive=False):
    pass
  assert not (tmp_path / 'nope').exists()


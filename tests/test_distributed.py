"""--distributed with several processes on this machine: JAX's multi-controller
runtime over localhost (gloo collectives), as on a TPU pod slice or GPU hosts.

Each process is `run.py` with one forced CPU device; together they form one
global mesh and train on each global batch, each feeding its share of it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO_ROOT, 'run.py')

pytestmark = pytest.mark.slow


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _env(devices: int = 1) -> dict[str, str]:
  return dict(os.environ, PYTHONUNBUFFERED='1',
              XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')


def _run_args(workdir, data_dir, classifier_dir, epochs=2, save_interval=1):
  return ['--arch=mlp', f'--epochs={epochs}', f'--save_interval={save_interval}',
          '--batch_size=64', '--limit=640', '--eval_samples=100', '--noprogress',
          f'--workdir={workdir}', f'--data_dir={data_dir}', f'--classifier_dir={classifier_dir}']


def _start_processes(args, n=2, timeout=60):
  port = _free_port()
  return [subprocess.Popen(
      [sys.executable, RUN, *args, '--distributed', f'--coordinator_address=localhost:{port}',
       f'--num_processes={n}', f'--process_id={i}', f'--distributed_timeout={timeout}'],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
      for i in range(n)]


def _wait(processes, timeout=600):
  return [(p.wait(timeout=timeout), p.stdout.read(), p.stderr.read()) for p in processes]


def _final_generator(workdir, epoch):
  """The generator's parameters of a checkpoint, as NumPy arrays (whatever
  devices saved them)."""
  import jax
  path = os.path.join(workdir, 'checkpoints', str(epoch), 'state')
  with ocp.PyTreeCheckpointer() as ckptr:
    tree = ckptr.metadata(path).item_metadata.tree
    as_numpy = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    state = ckptr.restore(path, restore_args=as_numpy)
  return state['gan']['generator']['params']


def test_two_processes_train_as_one_process_with_the_same_global_batch(
    tmp_path, data_dir, classifier_dir):
  workdir = tmp_path / 'two'
  results = _wait(_start_processes(_run_args(workdir, data_dir, classifier_dir)))
  for rc, out, err in results:
    assert rc == 0, err[-3000:]
  (_, out0, _), (_, out1, _) = results
  assert 'Epoch 2/2 | D_loss:' in out0 and 'Summary' in out0
  assert 'Epoch' not in out1 and 'Summary' not in out1  # Only process 0 prints.
  # Each output written once and complete.
  with open(workdir / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert [r['epoch'] for r in records] == [1, 2] and 'fd' in records[-1]
  final = workdir / 'final_generated_images'
  assert len([n for n in os.listdir(final) if n.startswith('img_')]) == 100
  with open(final / 'labels.csv') as f:
    assert len(f.read().strip().splitlines()) == 101
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['1', '2']

  # One process with two devices: the same global mesh of two, the same batches.
  one = tmp_path / 'one'
  single = subprocess.run([sys.executable, RUN, *_run_args(one, data_dir, classifier_dir)],
                          capture_output=True, text=True, env=_env(devices=2), timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  a, b = _final_generator(workdir, 2), _final_generator(one, 2)
  import jax
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    # A two-way all-reduce is one float addition, exact in either order; only
    # the collectives' implementation differs (gloo vs in-process).
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_interrupted_two_process_run_resumes_with_the_same_command(
    tmp_path, data_dir, classifier_dir):
  args = _run_args(tmp_path / 'run', data_dir, classifier_dir, epochs=4, save_interval=4)
  processes = _start_processes(args)
  deadline = time.time() + 300
  first = ''
  while 'Epoch 1/4' not in first and time.time() < deadline:
    first += processes[0].stdout.readline()
  processes[0].send_signal(signal.SIGINT)  # Ctrl-C in one terminal stops both.
  results = _wait(processes)
  assert [rc for rc, _, _ in results] == [130, 130], [err[-2000:] for _, _, err in results]
  assert os.listdir(tmp_path / 'run' / 'checkpoints')
  results = _wait(_start_processes(args))
  for rc, out, err in results:
    assert rc == 0, err[-3000:]
  assert 'Resuming from the checkpoint of epoch' in results[0][1]
  assert 'Epoch 4/4' in results[0][1]


def test_a_process_that_cannot_reach_the_others_fails_with_one_line(tmp_path, data_dir):
  port = _free_port()
  start = time.time()
  lonely = subprocess.run(
      [sys.executable, RUN, '--epochs=1', f'--workdir={tmp_path}/run', f'--data_dir={data_dir}',
       '--distributed', f'--coordinator_address=localhost:{port}', '--num_processes=2',
       '--process_id=1', '--distributed_timeout=5'],
      capture_output=True, text=True, env=_env(), timeout=120)
  assert lonely.returncode == 2
  assert time.time() - start < 60
  last = lonely.stderr.strip().splitlines()[-1]
  assert last.startswith('error: --distributed: process 1 of 2 could not join'), last
  assert not (tmp_path / 'run').exists()


def test_batch_not_divisible_by_the_global_device_count_stops_every_process(
    tmp_path, data_dir, classifier_dir):
  args = _run_args(tmp_path / 'run', data_dir, classifier_dir)
  args[args.index('--batch_size=64')] = '--batch_size=63'
  for rc, _, err in _wait(_start_processes(args), timeout=300):
    assert rc == 2
    assert 'must divide by the 2 devices' in err.strip().splitlines()[-1]
  assert not (tmp_path / 'run').exists()


def test_distributed_flags_are_checked(tmp_path):
  for args, message in [
      (['--num_processes=2'], '--num_processes needs --distributed'),
      (['--distributed', '--num_processes=2'], 'give all of'),
      (['--distributed', '--coordinator_address=localhost:1', '--num_processes=2',
        '--process_id=2'], '--process_id: must be in [0, 2)'),
      (['--distributed', '--coordinator_address=nowhere', '--num_processes=2',
        '--process_id=0'], 'host:port')]:
    result = subprocess.run([sys.executable, RUN, *args, f'--workdir={tmp_path}/run'],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


@pytest.mark.parametrize('killed', [1, 0])
def test_a_killed_peer_stops_the_other_with_one_line_and_the_same_commands_resume(
    tmp_path, data_dir, classifier_dir, killed):
  workdir = tmp_path / 'run'
  args = _run_args(workdir, data_dir, classifier_dir, epochs=1000)
  # A short heartbeat: the survivor notices the dead peer within seconds.
  processes = _start_processes(args + ['--distributed_heartbeat=5'])
  deadline = time.time() + 300
  while not (workdir / 'checkpoints' / '1' / 'digest.json').exists():
    assert time.time() < deadline and processes[0].poll() is None
    time.sleep(0.2)
  processes[killed].kill()  # kill -9; process 0 runs the coordinator.
  start = time.time()
  rc, _, err = _wait(processes[1 - killed:2 - killed], timeout=120)[0]
  processes[killed].wait()
  assert rc == 5 and time.time() - start < 60, err[-3000:]
  # One line: JAX's abort, XLA's log and faulthandler's dump go to error.log.
  line, = err.strip().splitlines()
  assert line.startswith(f'error: --distributed: process {killed} of 2 stopped answering (')
  assert 'the checkpoint of epoch ' in line and str(workdir / 'checkpoints') in line
  assert line.endswith('run the same commands again to resume from it')
  assert (workdir / 'error.log').exists()
  if killed == 0:
    return  # Resuming is the same whichever process died.
  kept = max(int(n) for n in os.listdir(workdir / 'checkpoints') if n.isdigit())
  resumed = _wait(_start_processes(_run_args(workdir, data_dir, classifier_dir,
                                             epochs=kept + 1)))
  for rc, _, err in resumed:
    assert rc == 0, err[-3000:]
  assert f'Resuming from the checkpoint of epoch {kept}' in resumed[0][1]


def test_a_busy_workdir_stops_every_process_with_one_line(tmp_path, data_dir, classifier_dir):
  from gan_jax import workdir_lock
  workdir = tmp_path / 'run'
  with workdir_lock.hold(str(workdir), command='training'):  # Another run holds it.
    start = time.time()
    results = _wait(_start_processes(_run_args(workdir, data_dir, classifier_dir)),
                    timeout=300)
  assert time.time() - start < 120  # Not left waiting for process 0 until a timeout.
  (rc0, _, err0), (rc1, _, err1) = results
  assert (rc0, rc1) == (2, 2), (err0[-2000:], err1[-2000:])
  line0, = [l for l in err0.splitlines() if l.startswith('error:')]
  line1, = [l for l in err1.splitlines() if l.startswith('error:')]
  assert 'is in use by another gan_jax run (pid' in line0
  assert line1.startswith(f'error: process 0 could not take {workdir}')
  assert 'Traceback' not in err0 + err1
  assert not (workdir / 'checkpoints').exists()

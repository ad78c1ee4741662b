"""Faults injected one by one: a busy workdir, a full or unwritable disk in
each phase, damaged checkpoints and data, --overwrite next to a user's files.

Each test asserts what a user sees (one line, an exit code) and what is kept
(the same command resumes). Most runs are in-process on the fake data
(tests/mock_tfds.py), copied from one short trained run; a few go through
the command line in a subprocess, as a user would.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gan_jax import checkpoints, errors, files, input_pipeline, sampling, trainer
from gan_jax import workdir as workdir_lib
from gan_jax.config import Config

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON_FAKE_DATA = [os.path.join(REPO_ROOT, 'tests', 'mock_tfds.py'), os.path.join(REPO_ROOT, 'run.py')]


def _config(workdir, data_dir, classifier_dir, **kw):
  base = dict(arch='mlp', epochs=2, save_interval=1, batch_size=64, limit=256,
              eval_samples=100, workdir=str(workdir), data_dir=data_dir,
              classifier_dir=classifier_dir, progress=False)
  base.update(kw)
  return Config(**base)


def _quiet(*_):
  pass


@pytest.fixture
def trained(trained_run):
  """A finished 2-epoch run (checkpoints 1 and 2) on the fake data; copy it."""
  return trained_run


def _copy(trained, tmp_path, name='run'):
  shutil.copytree(trained, tmp_path / name)
  return tmp_path / name


def _epochs_logged(workdir):
  return [r['epoch'] for r in files.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))]


def _steps(workdir):
  return sorted(n for n in os.listdir(os.path.join(workdir, 'checkpoints')) if n.isdigit())


def _one_line(error):
  message = str(error)
  assert '\n' not in message, message
  return message


def _raiser(code, when=lambda path: True, real=None):
  """A stand-in for a write function that fails with `code` where `when(path)`."""
  def write(path, *args, **kwargs):
    if when(str(path)):
      raise OSError(code, os.strerror(code), str(path))
    return real(path, *args, **kwargs)
  return write


def _env():
  # This checkout's gan_jax, whatever the environment's PYTHONPATH or install says.
  path = os.pathsep.join([REPO_ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p])
  return dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=path)


def _cli(args, cwd, timeout=180):
  env = _env()
  return subprocess.run([sys.executable, *ON_FAKE_DATA, *args], cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, env=env)


def _error_lines(stderr):
  return [l for l in stderr.splitlines() if l.startswith(('error:', 'stopped:'))]


# --- One run per workdir ---------------------------------------------------------------


def test_a_second_run_in_a_busy_workdir_is_refused_and_a_killed_runs_lock_blocks_nothing(
    tmp_path, classifier_dir):
  workdir = tmp_path / 'run'
  common = ['--arch=mlp', f'--workdir={workdir}', f'--data_dir={tmp_path}', '--limit=256',
            '--batch_size=64', f'--classifier_dir={classifier_dir}', '--eval_samples=100',
            '--save_interval=1']
  first = subprocess.Popen([sys.executable, *ON_FAKE_DATA, *common, '--epochs=1000', '--seed=0'],
                           cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
  try:
    deadline = time.time() + 120
    while time.time() < deadline and not first.stdout.readline().startswith('Epoch 1/'):
      pass
    second = _cli([*common, '--epochs=1000', '--seed=1'], cwd=tmp_path)
    assert second.returncode == 2, second.stderr
    lines = _error_lines(second.stderr)
    assert len(lines) == 1 and 'Traceback' not in second.stderr, second.stderr
    assert f'in use by another gan_jax run (pid {first.pid} on ' in lines[0]
    assert 'started' in lines[0]
    assert first.poll() is None  # The first run goes on, untouched.
    with open(workdir / 'run.json') as f:
      assert json.load(f)['config']['seed'] == 0
    while not _steps(workdir):
      assert first.poll() is None and time.time() < deadline + 120
      time.sleep(0.2)
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  latest = max(int(s) for s in _steps(workdir))
  # The kernel released the killed run's lock: the same command resumes at once.
  third = _cli([*common, f'--epochs={latest}', '--seed=0'], cwd=tmp_path)
  assert third.returncode == 0, third.stderr[-2000:]
  assert f'Resuming from the checkpoint of epoch {latest}' in third.stdout
  assert _epochs_logged(workdir) == list(range(1, latest + 1))
  assert (workdir / 'report.json').exists()


# --- Disk full, permission denied, read-only: one line in every phase ------------------


def test_a_write_failing_at_set_up_is_one_line_and_leaves_nothing(
    tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  monkeypatch.setattr(files, 'write_bytes', _raiser(
      errno.EACCES, when=lambda p: p.endswith('run.json'), real=files.write_bytes))
  config = _config(tmp_path / 'run', mock_data_dir, classifier_dir)
  with pytest.raises(errors.WriteError) as info:
    trainer.train_and_evaluate(config, log=_quiet)
  message = _one_line(info.value)
  assert info.value.exit_code == 4
  assert message.startswith('the run stopped while writing ')
  assert str(tmp_path / 'run' / 'run.json') in message
  assert 'Permission denied (EACCES); no checkpoint was written yet' in message
  assert 'check the permissions' in message and 'run the same command again' in message
  assert not (tmp_path / 'run').exists()  # The same command starts afresh.


def test_what_a_failed_first_checkpoint_can_leave_does_not_block_the_same_command(tmp_path):
  # Orbax's threads may still write its temporary folder after the run cleaned up.
  workdir = tmp_path / 'run'
  (workdir / 'checkpoints' / '1.orbax-checkpoint-tmp' / 'state').mkdir(parents=True)
  (workdir / 'error.log').write_text('Traceback ...')
  (workdir / '.tmp-xyzmetrics.jsonl').write_text('')
  workdir_lib.Workdir(str(workdir), main=True, created=()).prepare(Config(workdir=str(workdir)), log=_quiet)  # No refusal.
  (workdir / 'run.json').write_text('{}')
  with pytest.raises(trainer.RunError, match=r'holds outputs of a run \(run.json\)'):
    workdir_lib.Workdir(str(workdir), main=True, created=()).prepare(Config(workdir=str(workdir)), log=_quiet)


def test_a_failed_checkpoint_is_not_logged_as_done_and_the_run_resumes_from_the_last(
    tmp_path, trained, mock_data_dir, classifier_dir, monkeypatch):
  workdir = _copy(trained, tmp_path)
  real_save = checkpoints.ocp.CheckpointManager.save

  def disk_full_at_3(manager, step, *args, **kwargs):
    if step != 3:
      return real_save(manager, step, *args, **kwargs)
    tmp = workdir / 'checkpoints' / '3.orbax-checkpoint-tmp'
    tmp.mkdir()
    (tmp / 'half').write_bytes(b'x')
    # What Orbax raises on a full disk: TensorStore's text, wrapped by asyncio.
    try:
      raise ValueError(f'RESOURCE_EXHAUSTED: Error writing "gan" in OCDBT database at '
                       f'local file "{tmp}/state/": Failed to write 4382720 bytes: '
                       "No space left on device [os_error_code='28']")
    except ValueError as e:
      raise RuntimeError('Event loop is closed') from e

  monkeypatch.setattr(checkpoints.ocp.CheckpointManager, 'save', disk_full_at_3)
  config = _config(workdir, mock_data_dir, classifier_dir, epochs=3)
  with pytest.raises(errors.WriteError) as info:
    trainer.train_and_evaluate(config, log=_quiet)
  message = _one_line(info.value)
  assert message.startswith('the checkpoint of epoch 3 failed while writing '
                            f'{workdir / "checkpoints" / "3"}: ')
  assert 'orbax' not in message and 'No space left on device (ENOSPC)' in message
  assert f'the checkpoint of epoch 2 in {workdir / "checkpoints"} is kept' in message
  assert _epochs_logged(workdir) == [1, 2]  # Epoch 3 is not claimed.
  monkeypatch.undo()
  lines = []
  report = trainer.train_and_evaluate(config, log=lines.append)
  assert 'Resuming from the checkpoint of epoch 2' in ' '.join(lines)
  assert report['final']['epoch'] == 3 and _epochs_logged(workdir) == [1, 2, 3]
  assert not (workdir / 'checkpoints' / '3.orbax-checkpoint-tmp').exists()


def test_a_write_failing_mid_training_keeps_the_last_checkpoint(
    tmp_path, trained, mock_data_dir, classifier_dir, monkeypatch):
  workdir = _copy(trained, tmp_path)
  monkeypatch.setattr(files, 'write_bytes', _raiser(
      errno.ENOSPC, when=lambda p: p.endswith('epoch_03.png'), real=files.write_bytes))
  with pytest.raises(errors.WriteError) as info:
    trainer.train_and_evaluate(_config(workdir, mock_data_dir, classifier_dir, epochs=3),
                               log=_quiet)
  message = _one_line(info.value)
  assert f'while writing {workdir / "generated_samples" / "epoch_03.png"}' in message
  assert f'the checkpoint of epoch 2 in {workdir / "checkpoints"} is kept' in message
  assert 'free space' in message
  assert _steps(workdir) == ['1', '2'] and _epochs_logged(workdir) == [1, 2]


def test_final_outputs_failing_are_made_by_the_same_command_again(
    tmp_path, trained, mock_data_dir, classifier_dir, monkeypatch):
  workdir = _copy(trained, tmp_path)
  final = str(workdir / 'final_generated_images')
  monkeypatch.setattr(files, 'write_bytes', _raiser(
      errno.ENOSPC, when=lambda p: p.startswith(final), real=files.write_bytes))
  config = _config(workdir, mock_data_dir, classifier_dir, epochs=3)
  with pytest.raises(errors.WriteError) as info:
    trainer.train_and_evaluate(config, log=_quiet)
  message = _one_line(info.value)
  assert message.startswith(f'the final outputs failed while writing {final}')
  assert 'the checkpoint of epoch 3' in message
  monkeypatch.undo()
  lines = []
  report = trainer.train_and_evaluate(config, log=lines.append)
  assert not any(l.startswith('Epoch ') for l in lines)  # Nothing trained again.
  assert report['epochs'] == 3 and report['final']['epoch'] == 3
  assert os.path.exists(os.path.join(final, 'img_099.png'))


@pytest.mark.parametrize('code,words', [(errno.ENOSPC, 'No space left on device (ENOSPC)'),
                                        (errno.EROFS, 'Read-only file system (EROFS)')])
def test_sample_mode_failing_to_write_is_one_line(
    tmp_path, trained, mock_data_dir, classifier_dir, monkeypatch, code, words):
  workdir = _copy(trained, tmp_path)
  monkeypatch.setattr(files, 'write_bytes', _raiser(code, real=files.write_bytes))
  with pytest.raises(errors.WriteError) as info:
    sampling.sample_from_run(_config(workdir, mock_data_dir, classifier_dir, num_samples=3),
                            log=_quiet)
  message = _one_line(info.value)
  # Written beside the sample folder, then renamed: nothing of it is left.
  assert message.startswith(f'sampling failed while writing {workdir}/.sample-tmp-samples-')
  assert words in message
  assert f'the run in {workdir} is unchanged and {workdir / "samples"} is as it was' in message
  assert not (workdir / 'samples').exists()
  assert not [n for n in os.listdir(workdir) if n.startswith('.sample-')]


def test_sample_dir_under_a_file_is_refused_before_anything_is_drawn(tmp_path, trained):
  workdir = _copy(trained, tmp_path)
  (tmp_path / 'a_file').write_text('mine')
  result = _cli(['--mode=sample', f'--workdir={workdir}', f'--sample_dir={tmp_path}/a_file/x',
                 '--num_samples=3'], cwd=tmp_path)
  assert result.returncode == 2, result.stderr
  line, = [l for l in result.stderr.splitlines() if l.strip()]
  assert line == (f'error: --sample_dir={tmp_path}/a_file/x: cannot write in {tmp_path}/a_file '
                  '(Not a directory); choose a folder you can write to')
  assert (tmp_path / 'a_file').read_text() == 'mine'


def test_export_failing_to_write_is_one_line_and_leaves_no_folder(
    tmp_path, trained, mock_data_dir, classifier_dir, monkeypatch):
  from gan_jax import export
  workdir = _copy(trained, tmp_path)
  dest = tmp_path / 'exports' / 'set'
  real = export.write_folder

  def write_then_fail(folder, *args):
    real(folder, *args)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(folder, 'data.npz'))

  monkeypatch.setattr(export, 'write_folder', write_then_fail)
  config = _config(workdir, mock_data_dir, classifier_dir, num_samples=20,
                   export_dir=str(dest), cas=False)
  with pytest.raises(errors.WriteError) as info:
    export.export_from_run(config, log=_quiet)
  message = _one_line(info.value)
  assert message.startswith(f'the export failed while writing {dest.parent}')
  assert 'No space left on device (ENOSPC)' in message
  assert f'the run in {workdir} and {dest} are unchanged' in message
  # Nothing half-written, no temporary folder, and the folder made for it is gone again.
  assert not dest.parent.exists()


def test_export_dir_under_a_file_is_refused_before_anything_is_drawn(tmp_path, trained):
  workdir = _copy(trained, tmp_path)
  (tmp_path / 'a_file').write_text('mine')
  result = _cli(['--mode=export', f'--workdir={workdir}', f'--export_dir={tmp_path}/a_file/x',
                 '--num_samples=20', '--nocas'], cwd=tmp_path)
  assert result.returncode == 2, result.stderr
  line, = [l for l in result.stderr.splitlines() if l.strip()]
  assert line == (f'error: --export_dir={tmp_path}/a_file/x: cannot write in {tmp_path}/a_file '
                  '(Not a directory); choose a folder you can write to')
  assert (tmp_path / 'a_file').read_text() == 'mine'


def _cli_in_process(workdir, monkeypatch):
  """gan_jax.cli with its flags parsed; the hooks it installs are undone after the test."""
  import logging
  import threading
  from gan_jax import cli
  cli.FLAGS(['gan-jax', f'--workdir={workdir}'])
  for module, name in ((sys, 'excepthook'), (sys, 'unraisablehook'), (threading, 'excepthook')):
    monkeypatch.setattr(module, name, getattr(module, name))
  monkeypatch.setattr(logging.getLogger('absl'), 'filters', [])
  return cli


def test_the_command_line_turns_any_wrapped_os_error_into_one_line(tmp_path, monkeypatch,
                                                                   capsys):
  cli = _cli_in_process(tmp_path, monkeypatch)

  def fails(config):
    try:
      raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp_path / 'x.png'))
    except OSError as e:
      raise RuntimeError('Event loop is closed') from e

  monkeypatch.setattr(trainer, 'train_and_evaluate', fails)
  with pytest.raises(SystemExit) as info:
    cli._run_mode(Config(workdir=str(tmp_path)))
  assert info.value.code == 4
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'Traceback' not in err
  assert err.startswith(f'error: --mode=train stopped while writing {tmp_path}/x.png: '
                        'Disk quota exceeded (EDQUOT); no checkpoint is kept')
  assert 'RuntimeError: Event loop is closed' in (tmp_path / 'error.log').read_text()


# --- Damaged checkpoints -----------------------------------------------------------------


def _largest_file(folder):
  paths = [os.path.join(r, n) for r, _, names in os.walk(folder) for n in names]
  return max(paths, key=os.path.getsize)


def test_a_damaged_latest_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous(
    tmp_path, trained, mock_data_dir, classifier_dir):
  damaged = _copy(trained, tmp_path, 'damaged')
  by_hand = _copy(trained, tmp_path, 'by_hand')
  shutil.rmtree(by_hand / 'checkpoints' / '2')  # What a user resuming from 1 would do.
  data_file = _largest_file(damaged / 'checkpoints' / '2' / 'state')
  with open(data_file, 'r+b') as f:  # 8 bytes in the middle of the data file.
    f.seek(os.path.getsize(data_file) // 2)
    f.write(b'\xff' * 8)
  read = []  # A reader (--mode=sample) takes the newest intact one and renames nothing.
  sampling.sample_from_run(_config(damaged, mock_data_dir, classifier_dir, num_samples=2),
                          log=read.append)
  assert 'checkpoint 2 in' in read[0] and 'damaged' in read[0]
  assert 'from the generator of epoch 1' in read[-1]
  assert (damaged / 'checkpoints' / '2').is_dir()
  lines = []
  trainer.train_and_evaluate(_config(damaged, mock_data_dir, classifier_dir, epochs=3),
                             log=lines.append)
  trainer.train_and_evaluate(_config(by_hand, mock_data_dir, classifier_dir, epochs=3),
                             log=_quiet)
  warning, = [l for l in lines if l.startswith('warning:')]
  assert warning == (f'warning: checkpoint 2 in {damaged / "checkpoints"} is damaged (its '
                     'files do not match their digest); set aside as '
                     f'{damaged / "checkpoints" / "2.damaged"}')
  assert 'Resuming from the checkpoint of epoch 1' in ' '.join(lines)
  assert (damaged / 'checkpoints' / '2.damaged').is_dir()  # Kept, not deleted.
  for name in ['metrics.jsonl'] + [f'final_generated_images/img_{i:03d}.png' for i in (0, 99)]:
    if name == 'metrics.jsonl':
      strip = lambda w: [{k: v for k, v in r.items() if k not in ('seconds', 'images_per_s')}
                         for r in files.read_jsonl(str(w / name))]
      assert strip(damaged) == strip(by_hand)
    else:
      assert (damaged / name).read_bytes() == (by_hand / name).read_bytes(), name


def test_every_checkpoint_damaged_is_one_line(tmp_path, trained, mock_data_dir,
                                              classifier_dir):
  workdir = _copy(trained, tmp_path)
  for step in ('1', '2'):
    with open(workdir / 'checkpoints' / step / 'meta' / 'metadata', 'a') as f:
      f.write(' ')
  with pytest.raises(checkpoints.CheckpointError) as info:
    trainer.train_and_evaluate(_config(workdir, mock_data_dir, classifier_dir, epochs=3),
                               log=_quiet)
  message = _one_line(info.value)
  assert message.startswith(f'no intact checkpoint is left in {workdir / "checkpoints"}')
  assert '2.damaged' in message and '1.damaged' in message and '--overwrite' in message


def test_a_checkpoint_replaced_by_a_file_is_set_aside_and_the_run_resumes_from_the_previous(
    tmp_path, trained, mock_data_dir, classifier_dir):
  workdir = _copy(trained, tmp_path)
  shutil.rmtree(workdir / 'checkpoints' / '2')
  (workdir / 'checkpoints' / '2').write_text('not a checkpoint')
  read = []  # A reader skips it and renames nothing.
  sampling.sample_from_run(_config(workdir, mock_data_dir, classifier_dir, num_samples=2),
                           log=read.append)
  assert read[0] == (f'warning: checkpoint 2 in {workdir / "checkpoints"} is a file, not a '
                     'checkpoint; skipped (the next training run sets it aside)')
  assert 'from the generator of epoch 1' in read[-1]
  lines = []
  trainer.train_and_evaluate(_config(workdir, mock_data_dir, classifier_dir), log=lines.append)
  warning, = [l for l in lines if l.startswith('warning:')]
  assert warning == (f'warning: checkpoint 2 in {workdir / "checkpoints"} is a file, not a '
                     'checkpoint (a checkpoint is a folder); set aside as '
                     f'{workdir / "checkpoints" / "2.damaged"}')
  assert 'Resuming from the checkpoint of epoch 1' in ' '.join(lines)
  assert (workdir / 'checkpoints' / '2.damaged').read_text() == 'not a checkpoint'  # Kept.
  assert _steps(workdir) == ['1', '2'] and _epochs_logged(workdir) == [1, 2]
  # Not gan_jax's, so --overwrite leaves it too.
  assert str(workdir / 'checkpoints' / '2.damaged') not in workdir_lib.gan_jax_outputs(
      str(workdir))


def test_checkpoints_being_a_file_is_refused_before_the_data_is_read(
    tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'checkpoints').write_text('mine')

  def never(*_, **__):
    raise AssertionError('the data was read although the workdir is refused')

  monkeypatch.setattr(input_pipeline, 'load_split', never)
  with pytest.raises(trainer.RunError) as info:
    trainer.train_and_evaluate(_config(workdir, mock_data_dir, classifier_dir), log=_quiet)
  assert _one_line(info.value) == (
      f'{workdir / "checkpoints"} is a file where the run keeps its checkpoints (a folder); it '
      'is kept as it is; move it away, or choose another --workdir')
  assert os.listdir(workdir) == ['checkpoints']


# --- Damaged outputs of a run, read back ----------------------------------------------------


def test_a_damaged_report_of_a_finished_run_is_made_again_not_a_traceback(
    tmp_path, trained, mock_data_dir, classifier_dir):
  workdir = _copy(trained, tmp_path)
  (workdir / 'report.json').write_text('{"trunc\n')
  config = _config(workdir, mock_data_dir, classifier_dir)
  lines = []
  report = trainer.train_and_evaluate(config, log=lines.append)
  warning, = [l for l in lines if l.startswith('warning:')]
  assert warning.startswith(f'warning: {workdir / "report.json"} is damaged (JSONDecodeError: ')
  assert warning.endswith('); the final outputs are made again from the last checkpoint')
  assert not any(l.startswith('Epoch ') for l in lines)  # Nothing trained again.
  with open(workdir / 'report.json') as f:
    assert json.load(f) == json.loads(json.dumps(report)) and report['epochs'] == 2
  again = []
  trainer.train_and_evaluate(config, log=again.append)
  assert any(l.startswith('This run is already complete (2/2 epochs)') for l in again)
  assert not any(l.startswith('warning:') for l in again)


def test_damaged_metrics_and_run_json_are_written_again(tmp_path, trained, mock_data_dir,
                                                        classifier_dir):
  finished = _copy(trained, tmp_path, 'finished')
  resumed = _copy(trained, tmp_path, 'resumed')
  for workdir in (finished, resumed):
    (workdir / 'metrics.jsonl').write_bytes(b'{"epoch": 1, "d_lo\xff\n')
    (workdir / 'run.json').write_text('[')
  lines = []  # A finished run: named and written again from the checkpoint.
  trainer.train_and_evaluate(_config(finished, mock_data_dir, classifier_dir), log=lines.append)
  warnings = [l for l in lines if l.startswith('warning:')]
  assert len(warnings) == 2
  assert warnings[0].startswith(f'warning: {finished / "metrics.jsonl"} is damaged (')
  assert warnings[0].endswith('); written again from the checkpoint')
  assert warnings[1].startswith(f'warning: {finished / "run.json"} is damaged (JSONDecodeError')
  # A run that goes on writes both afresh from its checkpoint.
  trainer.train_and_evaluate(_config(resumed, mock_data_dir, classifier_dir, epochs=3),
                             log=_quiet)
  for workdir, epochs in ((finished, [1, 2]), (resumed, [1, 2, 3])):
    assert _epochs_logged(workdir) == epochs
    with open(workdir / 'run.json') as f:
      assert json.load(f)['config']['arch'] == 'mlp'


def _classifier_copy(tmp_path, classifier_dir, name, damage):
  folder = tmp_path / name
  shutil.copytree(classifier_dir, folder)
  damage(folder)
  return folder


def _edit_json(name, **changes):
  def damage(folder):
    with open(folder / name) as f:
      record = json.load(f)
    (folder / name).write_text(json.dumps({**record, **changes}))
  return damage


CLASSIFIER_DAMAGE = {
    'classifier.json-test_accuracy': (_edit_json('classifier.json', test_accuracy='high'),
                                      "classifier.json has test_accuracy='high', not a number"),
    'classifier.json-truncated': (lambda f: (f / 'classifier.json').write_text('{"model_ver'),
                                  'cannot read {folder}/classifier.json'),
    'reference.json-is': (_edit_json('reference.json', **{'is': [9.7]}),
                          'reference.json has is=[9.7], not a number'),
    'reference.json-not-an-object': (lambda f: (f / 'reference.json').write_text('7'),
                                     '{folder}/reference.json is not a JSON object'),
    'reference.npz-truncated': (lambda f: open(f / 'reference.npz', 'r+b').truncate(100),
                                'cannot read the reference statistics in {folder}/reference.npz'),
}


@pytest.mark.parametrize('case', sorted(CLASSIFIER_DAMAGE))
def test_a_damaged_classifier_folder_is_one_line_before_training(
    tmp_path, mock_data_dir, classifier_dir, case, monkeypatch):
  damage, words = CLASSIFIER_DAMAGE[case]
  folder = _classifier_copy(tmp_path, classifier_dir, 'clf', damage)
  monkeypatch.setattr(trainer.train, 'run_chunk', lambda *_: pytest.fail('an epoch trained'))
  from gan_jax import classifier_store
  with pytest.raises(classifier_store.ClassifierCheckpointError) as info:
    trainer.train_and_evaluate(_config(tmp_path / 'run', mock_data_dir, str(folder)),
                               log=_quiet)
  message = _one_line(info.value)
  assert message.startswith(f'classifier checkpoint at {folder} is unusable: ')
  assert words.format(folder=folder) in message
  assert message.endswith(f'Delete {folder} or pass --retrain_classifier to train a new one.')
  assert not (tmp_path / 'run').exists()


def test_a_classifier_dir_that_is_a_file_is_refused_before_any_training(
    tmp_path, mock_data_dir, monkeypatch):
  from gan_jax import classifier_store
  monkeypatch.setattr(classifier_store, 'train_and_save',
                      lambda *_, **__: pytest.fail('a classifier was trained'))
  (tmp_path / 'a_file').write_text('mine')
  for call in (lambda: trainer.train_and_evaluate(
                   _config(tmp_path / 'run', mock_data_dir, str(tmp_path / 'a_file')),
                   log=_quiet),
               lambda: classifier_store.load_or_train('mnist', mock_data_dir,
                                                      str(tmp_path / 'a_file'))):
    with pytest.raises(classifier_store.ClassifierCheckpointError) as info:
      call()
    assert _one_line(info.value).startswith(f'--classifier_dir={tmp_path / "a_file"} is a '
                                            'file, not a folder; it is kept as it is')
  assert (tmp_path / 'a_file').read_text() == 'mine' and not (tmp_path / 'run').exists()


@pytest.mark.parametrize('limit,batch_size,words', [
    (3, 1, '--limit: must be at least 4, got 3'),
    (40, 64, '--batch_size=64 is larger than the 40 training examples of --limit=40')])
def test_a_limit_too_small_to_evaluate_or_batch_is_refused_before_an_epoch(
    tmp_path, mock_data_dir, classifier_dir, limit, batch_size, words):
  with pytest.raises(trainer.RunError, match=words):
    trainer.train_and_evaluate(_config(tmp_path / 'run', mock_data_dir, classifier_dir,
                                       limit=limit, batch_size=batch_size), log=_quiet)
  assert not (tmp_path / 'run').exists()


# --- Damaged data -------------------------------------------------------------------------


@pytest.fixture
def data_copy(tmp_path, data_dir):
  """A copy of the real MNIST folder (the train file only) to damage."""
  copy = tmp_path / 'tfds'
  shutil.copytree(os.path.join(data_dir, 'mnist'), copy / 'mnist',
                  ignore=lambda d, names: [n for n in names if '-test.' in n])
  return copy


def test_a_truncated_data_file_is_named_with_the_fix(data_copy):
  path, = (data_copy / 'mnist').glob('*/mnist-train.array_record*')
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(input_pipeline.DataDamagedError) as info:
    input_pipeline.load_split('mnist', 'train', str(data_copy), limit=100)
  message = _one_line(info.value)
  assert str(path) in message and 'Riegeli' in message
  assert 'copy or prepare the dataset again' in message and 'not prepared' not in message
  assert info.value.exit_code == 2


@pytest.mark.parametrize('name', ['dataset_info.json', 'features.json'])
def test_damaged_tfds_metadata_is_named_with_the_fix(data_copy, name):
  path, = (data_copy / 'mnist').glob(f'*/{name}')
  path.write_text('{"trunc')
  with pytest.raises(input_pipeline.DataDamagedError) as info:
    input_pipeline.load_split('mnist', 'train', str(data_copy), limit=100)
  message = _one_line(info.value)
  assert message.startswith(f"the metadata of 'mnist' in {path.parent} (dataset_info.json, "
                            'features.json) cannot be read: ')
  assert 'copy or prepare the dataset again' in message and info.value.exit_code == 2


def test_an_unreadable_data_folder_is_not_called_unprepared(data_copy, monkeypatch):
  real_listdir = os.listdir
  folder = str(data_copy / 'mnist')

  def listdir(path='.'):
    if str(path) == folder:  # As a folder without read permission (root ignores chmod).
      raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return real_listdir(path)

  monkeypatch.setattr(os, 'listdir', listdir)
  with pytest.raises(input_pipeline.DataDamagedError) as info:
    input_pipeline.load_split('mnist', 'train', str(data_copy), limit=100)
  message = _one_line(info.value)
  assert f'cannot read the data folder {folder} (Permission denied)' in message
  assert 'check its permissions' in message
  assert 'not prepared' not in message and 'download' not in message


# --- --overwrite and a user's files --------------------------------------------------------


def test_overwrite_removes_only_what_gan_jax_wrote(tmp_path, trained, mock_data_dir,
                                                   classifier_dir):
  workdir = _copy(trained, tmp_path)
  # The last two have names gan_jax gives its own outputs, but it did not write them.
  mine = {'plots/figure1.txt': 'my figure', 'notes.md': 'my notes',
          'checkpoints/README': 'my readme', 'generated_samples/epoch_best.png': 'mine',
          'generated_samples/epoch_99.png': 'mine too',
          'final_generated_images/img_5000.png': 'mine as well'}
  for name, text in mine.items():
    (workdir / name).write_text(text)
  lines = []
  trainer.train_and_evaluate(_config(workdir, mock_data_dir, classifier_dir, epochs=1,
                                     overwrite=True, tensorboard=False), log=lines.append)
  said, = [l for l in lines if l.startswith('--overwrite')]
  assert 'checkpoints (2 entries)' in said and 'anything else stays' in said
  for name, text in mine.items():
    assert (workdir / name).read_text() == text, name
  assert sorted(os.listdir(workdir / 'plots')) == ['figure1.txt', 'label_distribution.png',
                                                   'losses.png', 'quality.png']
  assert _steps(workdir) == ['1'] and _epochs_logged(workdir) == [1]


# --- Resuming with other settings, and a deliberate stop ---------------------------------------


def test_resume_refuses_another_eval_samples_and_fewer_epochs(tmp_path, trained, mock_data_dir,
                                                              classifier_dir):
  workdir = _copy(trained, tmp_path)
  config = _config(workdir, mock_data_dir, classifier_dir, epochs=3)
  with pytest.raises(trainer.RunError, match=r'eval_samples: checkpoint 100, now 200'):
    trainer.train_and_evaluate(config.replace(eval_samples=200), log=_quiet)
  with pytest.raises(trainer.RunError) as info:
    trainer.train_and_evaluate(config.replace(epochs=1), log=_quiet)
  assert _one_line(info.value).startswith(
      f'the checkpoint in {workdir / "checkpoints"} is of epoch 2, beyond --epochs=1; '
      'pass --epochs=2 or more')
  with open(workdir / 'report.json') as f:
    assert json.load(f)['epochs'] == 2  # Untouched.


def test_a_deliberate_stop_is_not_called_an_error(tmp_path, monkeypatch, capsys):
  cli = _cli_in_process(tmp_path, monkeypatch)

  def stopped(config):
    raise trainer.Interrupted('after epoch 2/4 on a signal; checkpoint saved')

  monkeypatch.setattr(trainer, 'train_and_evaluate', stopped)
  with pytest.raises(SystemExit) as info:
    cli._run_mode(Config(workdir=str(tmp_path)))
  assert info.value.code == 130
  assert capsys.readouterr().err == 'stopped: after epoch 2/4 on a signal; checkpoint saved\n'

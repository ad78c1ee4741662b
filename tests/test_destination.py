"""--mode=sample and --mode=export never replace what they did not write:
a folder that appears while they draw, two commands into one folder, a
signal while they write, what a kill -9 leaves, an earlier sample.

In-process on a copy of one trained run (the fake data of tests/mock_tfds.py);
the signals through the command line in a subprocess, as a user sends them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gan_jax import destination, export, outputs, sampling, trainer, workdir_lock
from gan_jax.config import Config

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON_FAKE_DATA = [os.path.join(REPO_ROOT, 'tests', 'mock_tfds.py'), os.path.join(REPO_ROOT, 'run.py')]


def _config(workdir, classifier_dir, **kw):
  base = dict(arch='mlp', epochs=2, save_interval=1, batch_size=64, limit=256,
              eval_samples=100, workdir=str(workdir), data_dir='/nonexistent/mock_tfds',
              classifier_dir=classifier_dir, progress=False, cas=False)
  base.update(kw)
  return Config(**base)


@pytest.fixture
def run(trained_run, tmp_path):
  shutil.copytree(trained_run, tmp_path / 'run')
  return tmp_path / 'run'


def _hidden(folder):
  return sorted(n for n in os.listdir(folder) if n.startswith('.'))


def _env():
  path = os.pathsep.join([REPO_ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p])
  return dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=path)


# --- A destination that appears while the images are drawn ---------------------------


def test_a_folder_made_while_an_export_draws_is_kept_and_the_set_goes_beside_it(
    run, tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  dest = tmp_path / 'set'
  real_draw = export.draw

  def draw_while_the_user_makes_dest(*args):  # The race, made deterministic.
    dest.mkdir()
    (dest / 'precious.txt').write_text('notes')
    return real_draw(*args)

  monkeypatch.setattr(export, 'draw', draw_while_the_user_makes_dest)
  lines = []
  export.export_from_run(_config(run, classifier_dir, num_samples=20, export_dir=str(dest)),
                         log=lines.append)
  assert os.listdir(dest) == ['precious.txt'] and (dest / 'precious.txt').read_text() == 'notes'
  warning, = [l for l in lines if l.startswith('warning:')]
  assert warning == (f'warning: {dest} appeared while the export was being written and holds '
                     'files that are not an export of gan_jax; it is kept as it is, and the '
                     f'export went to {dest}-2 instead')
  assert any(l.startswith(f'Exported 20 images of epoch 2 to {dest}-2 in ') for l in lines)
  assert export.is_export(f'{dest}-2')
  assert sorted(os.listdir(tmp_path)) == ['run', 'set', 'set-2']  # No lock, no temporary.


def test_overwrite_keeps_a_file_added_to_the_earlier_export_while_drawing(
    run, tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  dest = tmp_path / 'set'
  config = _config(run, classifier_dir, num_samples=10, export_dir=str(dest))
  export.export_from_run(config, log=lambda _: None)
  real_draw = export.draw

  def draw_while_the_user_adds_a_file(*args):
    (dest / 'notes.txt').write_text('mine')
    return real_draw(*args)

  monkeypatch.setattr(export, 'draw', draw_while_the_user_adds_a_file)
  lines = []
  export.export_from_run(config.replace(overwrite=True, seed=1), log=lines.append)
  assert (dest / 'notes.txt').read_text() == 'mine' and export.is_export(dest)
  with open(dest / 'manifest.json') as f:
    assert json.load(f)['seed'] == 0  # The earlier export, untouched.
  with open(tmp_path / 'set-2' / 'manifest.json') as f:
    assert json.load(f)['seed'] == 1
  assert any('now holds files besides an export of gan_jax (notes.txt)' in l for l in lines)


def test_a_sample_folder_made_meanwhile_is_kept_and_a_later_sample_never_mixes(
    run, tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  config = _config(run, classifier_dir, num_samples=6)
  samples = run / 'samples'
  first = sampling.sample_from_run(config, log=lambda _: None)
  assert sorted(os.listdir(samples)) == ['.gan_jax-sample.json'] + [
      f'sample_00{i}.png' for i in range(6)]
  # Fewer images into the same folder: refused without --overwrite ...
  with pytest.raises(trainer.RunError) as info:
    sampling.sample_from_run(config.replace(num_samples=2, seed=1), log=lambda _: None)
  assert str(info.value) == (
      f'--sample_dir={samples} exists and is not empty; pass --overwrite to replace the '
      'earlier sample it holds (kept until then), or choose another folder')
  assert [os.path.join(samples, n) for n in sorted(os.listdir(samples))][1:] == first
  # ... and with it, the earlier sample's files all go: none are left beside the new ones.
  (samples / '.tmp-xyzsample_009.png').write_bytes(b'half')  # What a kill -9 left.
  again = sampling.sample_from_run(config.replace(num_samples=2, seed=1, overwrite=True),
                                   log=lambda _: None)
  assert sorted(os.listdir(samples)) == ['.gan_jax-sample.json', 'sample_000.png',
                                         'sample_001.png']
  assert again == [str(samples / 'sample_000.png'), str(samples / 'sample_001.png')]
  # A user's folder that appears while the images are drawn is kept.
  mine = tmp_path / 'mine'
  real_generate = sampling.generate

  def generate_while_the_user_makes_it(*args, **kwargs):
    mine.mkdir(exist_ok=True)
    (mine / 'photo.png').write_bytes(b'mine')
    return real_generate(*args, **kwargs)

  monkeypatch.setattr(sampling, 'generate', generate_while_the_user_makes_it)
  lines = []
  paths = sampling.sample_from_run(config.replace(sample_dir=str(mine)), log=lines.append)
  assert os.listdir(mine) == ['photo.png']
  assert paths[0] == f'{mine}-2/sample_000.png' and len(os.listdir(f'{mine}-2')) == 7
  assert lines[0].startswith(f'warning: {mine} appeared while the sample was being written')
  assert not _hidden(tmp_path) and not [n for n in os.listdir(run) if n.startswith('.sample')]


def test_a_folder_of_other_files_or_another_output_is_refused_as_a_sample_folder(
    run, tmp_path, classifier_dir):
  config = _config(run, classifier_dir, num_samples=2)
  (tmp_path / 'photos').mkdir()
  (tmp_path / 'photos' / 'cat.png').write_bytes(b'mine')
  for overwrite in (False, True):
    with pytest.raises(trainer.RunError) as info:
      sampling.sample_from_run(config.replace(sample_dir=str(tmp_path / 'photos'),
                                              overwrite=overwrite), log=lambda _: None)
    assert str(info.value) == (
        f'--sample_dir={tmp_path / "photos"} holds files that are not a sample of gan_jax; '
        'they are kept; --overwrite only replaces a sample written by gan_jax, so choose '
        'another folder (or an empty one)')
  assert os.listdir(tmp_path / 'photos') == ['cat.png']
  # A sample folder with a user's file beside the sample: --overwrite would mix them.
  sampling.sample_from_run(config.replace(sample_dir=str(tmp_path / 's')), log=lambda _: None)
  (tmp_path / 's' / 'notes.txt').write_text('mine')
  with pytest.raises(trainer.RunError, match=r'holds files besides a sample of gan_jax '
                     r'\(notes.txt\); --overwrite replaces only what gan_jax wrote'):
    sampling.sample_from_run(config.replace(sample_dir=str(tmp_path / 's'), overwrite=True),
                             log=lambda _: None)


# --- Two commands into one folder ------------------------------------------------------


def _holding(dest, kind='export'):
  """A child process that holds `dest` as a command writing it would; returns it once held."""
  code = textwrap.dedent(f'''
      import time
      from gan_jax import destination, export, sampling
      kind = {{'export': export.KIND, 'sample': sampling.KIND}}[{kind!r}]
      with destination.reserved(kind, {str(dest)!r}, False, print):
        print('held', flush=True)
        time.sleep(600)
  ''')
  proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True,
                          env=_env())
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_two_exports_into_one_folder_one_is_refused_and_a_killed_ones_lock_blocks_nothing(
    run, tmp_path, mock_data_dir, classifier_dir):
  dest = tmp_path / 'set'
  first = _holding(dest)
  try:
    config = _config(run, classifier_dir, num_samples=10, export_dir=str(dest), seed=2)
    with pytest.raises(workdir_lock.WorkdirBusy) as info:
      export.export_from_run(config, log=lambda _: None)
    message = str(info.value)
    assert message.startswith(f'{dest} is being written by another gan_jax command '
                              f'(pid {first.pid} on ')
    assert message.endswith(', --mode=export); it is left to it; wait for it to finish, or '
                            'choose another --export_dir')
    # A sample into the same folder waits its turn too.
    with pytest.raises(workdir_lock.WorkdirBusy, match='is being written by another'):
      sampling.sample_from_run(config.replace(sample_dir=str(dest)), log=lambda _: None)
    assert not dest.exists()
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  assert _hidden(tmp_path) == ['.set.gan_jax-lock']  # The kill -9 left its lock file ...
  export.export_from_run(config, log=lambda _: None)  # ... which blocks nothing.
  assert export.is_export(dest) and not _hidden(tmp_path)


# --- What a kill -9 leaves, cleared by the next command and by --overwrite -----------------


def test_leftovers_of_a_kill_are_cleared_by_the_next_export_and_by_overwrite(
    run, tmp_path, mock_data_dir, classifier_dir):
  left = {'.export-tmp-export-abcd1234': 'data.npz', '.export-old-export-abcd1234': 'old',
          '.sample-tmp-samples-zz_z9999': 'sample_000.png'}
  for name, inside in left.items():
    (run / name).mkdir()
    (run / name / inside).write_bytes(b'x' * 1000)
  (run / '.export.gan_jax-lock').write_text('{"pid": 1, "host": "gone"}\n')
  mine = run / '.export-tmp-notes'  # Not named as gan_jax names its own: kept.
  mine.write_text('mine')
  lines = []
  export.export_from_run(_config(run, classifier_dir, num_samples=10), log=lines.append)
  assert export.is_export(run / 'export')
  assert _hidden(run) == ['.export-tmp-notes', '.gan_jax-outputs', '.gan_jax.lock',
                          '.sample-tmp-samples-zz_z9999']
  assert (f'Removed what an interrupted sample or export left beside {run / "export"}: '
          '.export-old-export-abcd1234, .export-tmp-export-abcd1234') in lines
  # --overwrite of the run clears the sample's, but not one a live command is writing.
  live = _holding(run / 'export')
  (run / '.export-tmp-export-live1234').mkdir()  # Its temporary folder.
  try:
    lines = []
    trainer.train_and_evaluate(_config(run, classifier_dir, epochs=1, overwrite=True),
                               log=lines.append)
  finally:
    live.kill()
    live.wait()
  assert '.sample-tmp-samples-zz_z9999' not in os.listdir(run)
  assert (run / '.export-tmp-export-live1234').is_dir() and mine.read_text() == 'mine'
  assert any(l.startswith('--overwrite: removing what interrupted samples or exports left in '
                          f'{run}: .sample-tmp-samples-zz_z9999') for l in lines)


# --- A signal while the images are written ----------------------------------------------------


def _stopped_by_sigterm(args, cwd, prefix):
  """Runs the command line, sends SIGTERM once a temporary folder `prefix`* is
  in `cwd`; returns (exit code, stderr)."""
  proc = subprocess.Popen([sys.executable, *ON_FAKE_DATA, *args], cwd=cwd, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 180
  while not [n for n in os.listdir(cwd) if n.startswith(prefix)]:
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  return proc.returncode, err


@pytest.mark.parametrize('mode', ['export', 'sample'])
def test_sigterm_while_writing_leaves_nothing_and_says_the_command_starts_over(
    run, tmp_path, mode):
  dest = tmp_path / 'out'
  args = [f'--mode={mode}', f'--workdir={run}', f'--{mode}_dir={dest}', '--num_samples=3000']
  code, err = _stopped_by_sigterm(args + (['--nocas'] if mode == 'export' else []), tmp_path,
                                  f'.{mode}-tmp-out-')
  assert code == 130, err
  line, = [l for l in err.splitlines() if l.strip()]
  assert line == (f'stopped: --mode={mode} ended on SIGTERM before its {mode} was complete; '
                  f'nothing was written to {dest} (the partial one is removed); run the same '
                  'command again to start it over')
  assert sorted(os.listdir(tmp_path)) == ['run']  # No temporary folder, lock or partial set.


def test_the_inside_of_another_output_is_refused_before_anything_is_drawn(
    run, tmp_path, classifier_dir, monkeypatch):
  def never(*_):
    raise AssertionError('drawn although the destination is refused')
  monkeypatch.setattr(sampling, 'load_latest_run', never)
  config = _config(run, classifier_dir, num_samples=5)
  cases = [(dict(export_dir=str(run / 'checkpoints' / '7')), export.export_from_run,
            f'--export_dir={run}/checkpoints/7 is refused: it is inside {run}/checkpoints, the '
            f'checkpoints of the run in {run}, which only that run writes; writing there could '
            'damage it, so nothing was written; choose a folder outside it'),
           (dict(sample_dir=str(run / 'checkpoints' / '2')), sampling.sample_from_run,
            f'--sample_dir={run}/checkpoints/2 is refused: it is inside {run}/checkpoints'),
           (dict(export_dir=str(run)), export.export_from_run,
            f'--export_dir={run} is the workdir of a run written by gan_jax, not a place for '
            'this output; it is kept as it is; choose another folder'),
           (dict(sample_dir=classifier_dir + '/x'), sampling.sample_from_run,
            f'--sample_dir={classifier_dir}/x is refused: it is inside {classifier_dir}, a '
            'classifier folder of gan_jax')]
  for changes, command, words in cases:
    with pytest.raises((trainer.RunError, export.ExportError)) as info:
      command(config.replace(**changes), log=lambda _: None)
    assert str(info.value).startswith(words) and '\n' not in str(info.value)
  assert sorted(os.listdir(run / 'checkpoints')) == ['1', '2']
  assert outputs.what_is(str(run)) == outputs.RUN
  assert destination.lock_path(str(run / 'x')) == str(run / '.x.gan_jax-lock')

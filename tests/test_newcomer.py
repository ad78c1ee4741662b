"""The README's main command as a newcomer runs it: an empty HOME (no classifier
cache), the data only through TFDS_DATA_DIR, and nothing else set up.

Only shortened by --epochs=1 and --limit; the command itself is read from the
README, so this test fails wherever a newcomer would.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from gan_jax import classifier_store

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def readme_commands():
  """The README's indented `python3 -m venv ...` command lines, in order."""
  with open(os.path.join(REPO_ROOT, 'README.md')) as f:
    return [line.strip() for line in f if line.startswith('    python3 -m venv')]


def test_readme_starts_with_the_install_and_run_and_the_test_command():
  with open(os.path.join(REPO_ROOT, 'README.md')) as f:
    head = f.read().split('---')[0]
  install_and_run, tests = readme_commands()[:2]
  assert install_and_run in head and tests in head
  assert 'pip install' in install_and_run and 'run.py --dataset=mnist --epochs=30' in install_and_run
  assert tests.endswith('-m pytest')
  with open(os.path.join(REPO_ROOT, '.ci', 'run')) as f:
    assert tests in f.read()


def test_readme_main_command_on_a_fresh_home(tmp_path, data_dir):
  command = readme_commands()[0].split(' && ')[-1]
  assert re.search(r'--epochs=\d+', command), command
  command = re.sub(r'--epochs=\d+', '--epochs=1', command) + ' --limit=1280'
  # The venv the README creates is the one running these tests.
  command = command.replace('.venv/bin/python', shlex.quote(sys.executable))
  command = command.replace(' run.py', ' ' + shlex.quote(os.path.join(REPO_ROOT, 'run.py')))
  # A checkout of our own with ../shared beside it, so that the command's
  # relative paths resolve and its outputs land here, not in the repository.
  checkout, home = tmp_path / 'gan_jax', tmp_path / 'home'
  checkout.mkdir(), home.mkdir(), (tmp_path / 'shared').mkdir()
  os.symlink(data_dir, tmp_path / 'shared' / 'tfds')
  env = {k: v for k, v in os.environ.items()
         if k not in ('TFDS_DATA_DIR', 'XDG_CACHE_HOME', 'PYTHONPATH')}
  env['HOME'] = str(home)
  result = subprocess.run(['bash', '-c', command], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
  assert 'Epoch 1/1 | D_loss: ' in result.stdout
  assert 'Summary' in result.stdout
  assert result.stderr == '', result.stderr[-3000:]  # No library chatter on a clean run.
  with open(checkout / 'report.json') as f:
    report = json.load(f)
  shipped = classifier_store.load('mnist', classifier_store.shipped_dir('mnist'))
  assert report['classifier']['sha256'] == shipped.meta['params_sha256']
  assert report['classifier']['shipped'] is True
  with open(checkout / 'run.json') as f:
    assert json.load(f)['classifier']['sha256'] == shipped.meta['params_sha256']
  assert len(os.listdir(checkout / 'final_generated_images')) >= 100
  # Nothing was trained or cached in the newcomer's HOME.
  assert not (home / '.cache' / 'gan_jax').exists()

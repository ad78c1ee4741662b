"""gan_jax as an installed package: `pip install` into a new virtual environment,
then the console command and `python -m gan_jax` from outside the checkout.

The new venv sees the dependencies of the environment running the tests (a
.pth line), so pip resolves them without downloading several hundred MB again;
gan_jax itself is built and installed from a copy of the checkout.
"""

import json
import os
import subprocess

import pytest

from fresh_env import clean_env, copy_of_checkout, make_venv_with_our_dependencies

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pip_install_gives_the_command_and_the_shipped_classifiers(tmp_path, data_dir):
  source = copy_of_checkout(tmp_path / 'src')
  python = make_venv_with_our_dependencies(tmp_path / 'venv')
  outside = tmp_path / 'elsewhere'
  (outside / 'home').mkdir(parents=True)
  env = clean_env(outside / 'home')
  install = subprocess.run([python, '-m', 'pip', 'install', '-q', source], env=env,
                           capture_output=True, text=True, timeout=600)
  assert install.returncode == 0, install.stderr[-3000:]

  where = subprocess.run(
      [python, '-c', 'import gan_jax.classifier_store as s, gan_jax; '
       'print(gan_jax.__file__); print(s.shipped_dir("fashion"))'],
      cwd=outside, env=env, capture_output=True, text=True, check=True).stdout.split()
  venv = str(tmp_path / 'venv')
  assert where[0].startswith(venv) and where[1].startswith(venv), where
  assert os.path.exists(os.path.join(where[1], 'classifier.json'))

  command = str(tmp_path / 'venv' / 'bin' / 'gan-jax')
  help_text = subprocess.run([command, '--helpshort'], cwd=outside, env=env,
                             capture_output=True, text=True, timeout=120)
  assert 'Try --helpfull' in help_text.stdout, help_text.stderr[-2000:]  # absl exits 1 after help.
  for flag in ('--dataset', '--epochs', '--batch_size', '--classifier_dir', '--[no]distributed'):
    assert flag in help_text.stdout, flag
  module_help = subprocess.run([python, '-m', 'gan_jax', '--helpshort'], cwd=outside, env=env,
                               capture_output=True, text=True, timeout=120)
  assert '--classifier_dir' in module_help.stdout, module_help.stderr[-2000:]

  run = subprocess.run([command, '--epochs=1', '--limit=640', '--batch_size=64',
                        '--eval_samples=200', f'--data_dir={data_dir}', '--workdir=run'],
                       cwd=outside, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'Epoch 1/1 | D_loss: ' in run.stdout
  with open(outside / 'run' / 'report.json') as f:
    assert json.load(f)['classifier']['shipped'] is True

  # The shipped generators, on this empty HOME with no data folder: images at once.
  from gan_jax import pretrained
  assert pretrained.names(), 'no generator ships with the package'
  conditional = [n for n in pretrained.names() if n.endswith('-conditional')][0]
  sample = subprocess.run([command, '--mode=sample', f'--pretrained={conditional}', '--label=3',
                           '--num_samples=5', '--sample_dir=threes'], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=300)
  assert sample.returncode == 0, sample.stderr[-3000:]
  assert len([n for n in os.listdir(outside / 'threes') if n.endswith('.png')]) == 5
  export = subprocess.run([command, '--mode=export', f'--pretrained={conditional}',
                           '--num_samples=100', '--export_dir=synthetic'], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=300)
  assert export.returncode == 0, export.stderr[-3000:]
  assert 'and are skipped (give --data_dir=DIR to add them)' in export.stdout, export.stdout
  with open(outside / 'synthetic' / 'manifest.json') as f:
    manifest = json.load(f)
  shipped = os.path.join(where[0].rsplit(os.sep, 1)[0], 'generators', conditional,
                         pretrained.PARAMS)
  assert manifest['source']['pretrained']['params_sha256'] == pretrained.file_sha256(shipped)
  assert manifest['cas'] is None and manifest['quality']['fd'] is not None
  assert sorted(os.listdir(outside)) == ['home', 'run', 'synthetic', 'threes']  # Nothing else.

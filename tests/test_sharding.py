"""Data parallelism over several devices (8 forced CPU devices, in subprocesses:
the device count is fixed when jax starts)."""

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def _env():
  return dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
              PYTHONPATH=REPO_ROOT)


def test_one_step_on_8_devices_has_the_gradients_and_losses_of_one_device():
  script = os.path.join(REPO_ROOT, 'tests', 'on_eight_devices.py')
  result = subprocess.run([sys.executable, script], capture_output=True, text=True,
                          env=_env(), timeout=600, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'mlp same gradients and losses' in result.stdout
  assert 'dcgan same gradients and losses' in result.stdout


def test_short_run_on_8_devices(tmp_path, data_dir, classifier_dir):
  args = ['--arch=mlp', '--epochs=1', '--batch_size=64', '--limit=640', '--eval_samples=100',
          f'--workdir={tmp_path}/run', f'--data_dir={data_dir}',
          f'--classifier_dir={classifier_dir}']
  result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args],
                          capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Epoch 1/1 | D_loss:' in result.stdout
  bad = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args[:2],
                        '--batch_size=60', *args[3:]], capture_output=True, text=True,
                       env=_env(), timeout=600, cwd=tmp_path)
  assert bad.returncode != 0 and 'must divide by the 8 devices' in bad.stderr

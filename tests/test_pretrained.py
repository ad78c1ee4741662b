"""The generators shipped with the package (gan_jax/pretrained.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gan_jax import pretrained, presets, sampling
from gan_jax.config import Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_preset_ships_a_generator():
  assert pretrained.names() == [p.name for p in presets.PRESETS.values()]


@pytest.mark.parametrize('name', pretrained.names())
def test_a_shipped_generator_is_the_one_its_figures_describe(name):
  """Its weights match their SHA-256, and 1,000 images drawn as generator.json
  says give its recorded FD and label agreement. The same computation on
  another CPU differs only by float rounding (float32 matmuls, another
  summation order): FD within 1%, label agreement within 0.3 points (3 of
  1,000 images near a decision boundary)."""
  meta = pretrained.read_meta(name)
  assert meta['params_sha256'] == pretrained.file_sha256(
      os.path.join(pretrained.directory(name), pretrained.PARAMS))
  again = pretrained.check_figures(name)
  assert again['fd'] == pytest.approx(meta['check']['fd'], rel=0.01)
  if 'label_agreement' in meta['check']:
    assert again['label_agreement'] == pytest.approx(meta['check']['label_agreement'],
                                                     abs=0.003)
  # The 5,000-image figures of its run are recorded beside it.
  assert meta['figures']['fd'] > 0 and meta['command'].startswith('python run.py ')


def test_pretrained_draws_the_requested_class_as_a_workdir_run_would():
  name = [n for n in pretrained.names() if n.endswith('-conditional')][0]
  state, run_config, epoch = sampling.load_latest_run(Config(pretrained=name), log=print)
  assert run_config.conditional and epoch == run_config.epochs
  z = sampling.sample_noise(sampling.keys(0)['sample'], 4, run_config.noise_dim)
  sevens = sampling.generate(state, z, np.full(4, 7))
  threes = sampling.generate(state, z, np.full(4, 3))
  assert sevens.shape == (4, 28, 28, 1) and not np.allclose(sevens, threes)


def _cli(*args, cwd):
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args],
                        capture_output=True, text=True, timeout=120, cwd=cwd,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'})


@pytest.mark.parametrize('args, words', [
    (['--mode=sample', '--pretrained=cifar'], 'no such shipped generator \'cifar\'; use one of '
     + ', '.join(pretrained.names())),
    (['--mode=sample', '--pretrained=mnist', '--workdir=run'], 'both name the generator'),
    (['--mode=export', '--pretrained=mnist', '--epochs=3'], '--epochs is a setting of training'),
    (['--mode=export', '--pretrained=mnist', '--dataset=fashion'],
     '--dataset is a setting of training'),
    (['--pretrained=mnist'], 'is a setting of --mode=sample and --mode=export'),
])
def test_bad_pretrained_flags_are_one_line_and_write_nothing(tmp_path, args, words):
  out = _cli(*args, cwd=tmp_path)
  assert out.returncode == 2 and out.stderr.count('\n') == 1, out.stderr
  assert words in out.stderr, out.stderr
  assert os.listdir(tmp_path) == []


def test_the_figures_in_the_docs_are_the_shipped_ones():
  with open(os.path.join(REPO_ROOT, 'docs', 'pretrained.md')) as f:
    text = f.read()
  for name in pretrained.names():
    meta = pretrained.read_meta(name)
    row = [line for line in text.splitlines() if line.startswith(f'| `{name}` |')]
    assert row, name
    assert f'{meta["figures"]["fd"]:.2f}' in row[0] and meta['params_sha256'][:12] in row[0]
    assert f'{meta["check"]["fd"]:.2f}' in row[0], (name, row[0])

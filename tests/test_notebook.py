"""experiments/colab.ipynb as a Colab or Kaggle user meets it, headless.

A fresh user: HOME a new empty folder, no TFDS_DATA_DIR, the data only in
~/tensorflow_datasets (TFDS's own default folder), a kernel whose Python is a
new environment, and gan_jax installed into it by the notebook's first cell
(from a copy of this checkout, standing in for the repository URL), not
imported from the checkout.
"""

import json
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from fresh_env import copy_of_checkout, make_venv_with_our_dependencies

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def test_notebook_installs_trains_and_shows_the_outputs(tmp_path, data_dir, monkeypatch):
  source = copy_of_checkout(tmp_path / 'src')
  python = make_venv_with_our_dependencies(tmp_path / 'venv')
  kernels = tmp_path / 'jupyter' / 'kernels' / 'fresh'
  kernels.mkdir(parents=True)
  with open(kernels / 'kernel.json', 'w') as f:
    json.dump({'argv': [python, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
               'display_name': 'fresh', 'language': 'python'}, f)
  home, work = tmp_path / 'home', tmp_path / 'work'
  work.mkdir()
  shutil.copytree(os.path.join(data_dir, 'mnist'), home / 'tensorflow_datasets' / 'mnist')
  for name in ('TFDS_DATA_DIR', 'XDG_CACHE_HOME', 'PYTHONPATH'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv('HOME', str(home))
  monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
  monkeypatch.setenv('GAN_JAX_SOURCE', source)

  nb = nbformat.read(os.path.join(REPO_ROOT, 'experiments', 'colab.ipynb'), as_version=4)
  params = [c for c in nb.cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
  assert len(params) == 1
  assert 'DATA_DIR = None' in params[0].source  # Nothing to set when TFDS has the data.
  params[0].source += ("\nEPOCHS = 2\nBATCH_SIZE = 64\nSAVE_INTERVAL = 1\nLIMIT = 640\n"
                       "EVAL_SAMPLES = 200\n")
  client = NotebookClient(nb, timeout=600, kernel_name='fresh',
                          resources={'metadata': {'path': str(work)}})
  client.execute()
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
  text = ''.join(o.get('text', '') for o in outputs)
  assert f'gan_jax from {tmp_path / "venv"}' in text, text[:2000]
  images = [o for o in outputs
            if 'image/png' in o.get('data', {}) or 'image/gif' in o.get('data', {})]
  assert len(images) == 5  # The GIF, the labelled grid and three plots.
  assert 'Epoch 2/2 | D_loss:' in text and '/10 classes' in text
  assert os.path.exists(work / 'runs' / 'colab' / 'report.json')

"""experiments/colab.ipynb runs headless, top to bottom, in a tiny configuration."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def test_notebook_executes_and_shows_the_outputs(tmp_path, data_dir, classifier_dir):
  nb = nbformat.read(os.path.join(REPO_ROOT, 'experiments', 'colab.ipynb'), as_version=4)
  params = [c for c in nb.cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
  assert len(params) == 1
  params[0].source += (
      f"\nARCH = 'mlp'\nEPOCHS = 2\nBATCH_SIZE = 64\nSAVE_INTERVAL = 1\nLIMIT = 640\n"
      f"EVAL_SAMPLES = 200\nWORKDIR = {str(tmp_path / 'run')!r}\nDATA_DIR = {data_dir!r}\n"
      f"CLASSIFIER_DIR = {classifier_dir!r}\n")
  client = NotebookClient(nb, timeout=600, kernel_name='python3',
                          resources={'metadata': {'path': REPO_ROOT}})
  client.execute()
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
  images = [o for o in outputs if 'image/png' in o.get('data', {}) or 'image/gif' in o.get('data', {})]
  assert len(images) == 5  # The GIF, the labelled grid and three plots.
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'Epoch 2/2 | D_loss:' in text and '/10 classes' in text

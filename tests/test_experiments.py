"""Every script in experiments/ still starts: its --help, in a subprocess.

The scripts measure things (speed, quality, exports) on real runs, too long
for the tests; --help at least imports each one and parses its flags, so a
renamed module or flag in gan_jax breaks a test, not the next measurement.
A new script is covered when it is added (the list is a glob).
"""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO_ROOT, 'experiments')
SCRIPTS = sorted(os.path.relpath(p, REPO_ROOT) for pattern in ('*.py', '*.sh')
                 for p in glob.glob(os.path.join(EXPERIMENTS, pattern)))
# Run elsewhere: tests/test_notebook.py executes the notebook cell by cell.
ELSEWHERE = {'experiments/colab.ipynb': 'tests/test_notebook.py'}
FLAG = re.compile(r"""add_argument\(\s*['"](--[\w-]+)['"]""")


def _read(path: str) -> str:
  with open(os.path.join(REPO_ROOT, path), encoding='utf-8') as f:
    return f.read()


def _squeezed(text: str) -> str:
  """Without whitespace: argparse rewraps a description to the terminal."""
  return ''.join(text.split())


def expected_in_help(path: str) -> list[str]:
  """What the script's --help must show: the first line of its description
  (module docstring, or a shell script's opening comment) and every --flag
  its argparse parser defines."""
  source = _read(path)
  if path.endswith('.sh'):
    first = next(line for line in source.splitlines()[1:] if line.startswith('#'))
    return [_squeezed(first.lstrip('#'))]
  docstring = re.match(r'\s*(?:#.*\n\s*)*"""(.*)', source)
  assert docstring, f'{path} has no module docstring to describe it'
  return [_squeezed(docstring.group(1))] + FLAG.findall(source)


def test_the_list_is_every_script_but_the_notebook():
  assert 'experiments/benchmark.py' in SCRIPTS and 'experiments/compare_peers.sh' in SCRIPTS
  others = {os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(EXPERIMENTS, '*'))
            } - set(SCRIPTS)
  assert others <= set(ELSEWHERE), f'{sorted(others - set(ELSEWHERE))}: run by no test'
  for script, test in ELSEWHERE.items():
    assert script in _read(test), (script, test)


@pytest.mark.slow
@pytest.mark.parametrize('script', SCRIPTS)
def test_help_answers_and_names_what_the_script_does(script):
  command = ['bash' if script.endswith('.sh') else sys.executable, script, '--help']
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, COLUMNS='100')
  result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  shown = _squeezed(result.stdout)
  for expected in expected_in_help(script):
    assert expected in shown, f'{script} --help does not show {expected!r}:\n{result.stdout}'


@pytest.mark.slow
def test_the_accelerator_check_runs_on_cpu_and_prints_a_json_line_per_network(data_dir):
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, 'experiments/accelerator_check.py', '--limit=64',
                           '--num_samples=20', '--dtypes=float32'], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]
  runs = [l for l in lines if 'network' in l and 'mode' not in l]
  assert [r['network'] for r in runs] == ['mlp_bn', 'mlp_wide', 'dcgan']
  for r in runs:
    assert r['device'].startswith('cpu') and r['images_per_s'] > 0 and r['epoch_s'] > 0
    assert r['compile_s'] >= 0 and 'peak_memory_bytes' in r
  assert [(l['mode'], l['images']) for l in lines if 'mode' in l] == [('sample', 20),
                                                                       ('export', 20)]

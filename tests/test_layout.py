"""The codebase's layout rules (docs/development.md), read from the source with `ast`:
modules use each other's public names only, nothing assigns to gan_jax's
attributes, modules stay short, and process 0's work is decided in few places."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = sorted((ROOT / 'gan_jax').glob('*.py'))
SOURCES = PACKAGE + sorted((ROOT / 'experiments').glob('*.py'))
MODULES = {p.stem for p in PACKAGE}

MAX_MODULE_LINES = 450
MAX_TRAINER_LINES = 300
MAX_IS_MAIN_SITES = 5  # The definition included.


def _module_names(tree: ast.Module) -> set[str]:
  """The local names bound to gan_jax modules by this file's imports."""
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module == 'gan_jax':
      names |= {a.asname or a.name for a in node.names if a.name in MODULES}
    elif isinstance(node, ast.Import):
      names |= {a.asname for a in node.names
                if a.asname and a.name.startswith('gan_jax.')}
  return names


def _violations(path: pathlib.Path) -> list[str]:
  tree = ast.parse(path.read_text(), str(path))
  modules = _module_names(tree)
  found = []

  def is_module(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in modules

  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and is_module(node.value)
        and node.attr.startswith('_') and not node.attr.startswith('__')):
      found.append(f'{path.name}:{node.lineno}: private {node.value.id}.{node.attr}')
    if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('gan_jax'):
      found += [f'{path.name}:{node.lineno}: imports private {a.name}' for a in node.names
                if a.name.startswith('_')]
    targets = (node.targets if isinstance(node, ast.Assign) else
               [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
    for target in targets:
      while isinstance(target, ast.Attribute):
        if is_module(target.value):
          found.append(f'{path.name}:{node.lineno}: assigns to {target.value.id}.{target.attr}')
        target = target.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id in ('setattr', 'delattr') and node.args and is_module(node.args[0])):
      found.append(f'{path.name}:{node.lineno}: {node.func.id} on {node.args[0].id}')
  return found


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_only_public_names_of_other_modules_and_no_patching(path):
  assert _violations(path) == []


def test_the_check_finds_private_use_and_patching(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('from gan_jax import trainer, train as t\nimport gan_jax.export as ex\n'
                 'from gan_jax.sampling import _sample\n'
                 'trainer._keys(0)\nt.run_chunk = None\nsetattr(ex, "MAX_DRAWS", 1)\n'
                 'ok = trainer.train_and_evaluate\n')
  assert sorted(v.split(": ", 1)[1] for v in _violations(bad)) == [
      'assigns to t.run_chunk', 'imports private _sample', 'private trainer._keys',
      'setattr on ex']


def test_modules_are_short():
  """(Functions: tests/test_docs.py keeps each under its limit.)"""
  long = []
  for path in PACKAGE:
    lines = path.read_text().count('\n')
    limit = MAX_TRAINER_LINES if path.name == 'trainer.py' else MAX_MODULE_LINES
    if lines > limit:
      long.append(f'{path.name}: {lines} lines > {limit}')
  assert long == []


def test_process_zero_work_is_decided_in_few_places():
  sites = [f'{p.name}:{i}' for p in PACKAGE
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if re.search(r'\bis_main\(\)', line)]
  assert len(sites) <= MAX_IS_MAIN_SITES, sites

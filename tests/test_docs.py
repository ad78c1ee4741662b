"""The prose stays in shape: a short README, links that resolve, short
docstrings, and no story of how the work was done (only of the project)."""

import ast
import glob
import os
import re

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

README_MAX_LINES = 250
# The results page: figures first; the runs in full live in quality-trials.md.
QUALITY_MAX_LINES = 400
DOCSTRING_MAX_LINES = 15
# Narration: who did what when. Upstream references such as jax-ml/jax#12868
# are citations and allowed (see `narration`).
NARRATION = [re.compile(p, re.IGNORECASE) for p in (
    r'\bsessions?\b',
    r'\bissues? ?#? ?\d+',
    r'\bwe (found|measured|tried|noticed|decided)\b',
    r'\bbefore this change\b',
    r'\bpreviously\b',
    r'\bnow that\b',
    r"\banother engineer'?s?\b",
)]
ISSUE_NUMBER = re.compile(r'#\d+')
UPSTREAM = re.compile(r'[\w.-]+/[\w.-]+$')  # owner/repo right before '#123'.
LINK = re.compile(r'\]\(([^)\s]+)\)')


def markdown_files(root=REPO_ROOT):
  return [os.path.join(root, 'README.md')] + sorted(
      glob.glob(os.path.join(root, 'docs', '**', '*.md'), recursive=True))


def python_files(root=REPO_ROOT):
  return sorted(glob.glob(os.path.join(root, 'gan_jax', '**', '*.py'), recursive=True))


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def _anchor(heading):
  """GitHub's anchor for a Markdown heading."""
  text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return text.replace(' ', '-')


def broken_links(root=REPO_ROOT):
  """'file: link' for each relative link to a missing file or heading."""
  broken = []
  for path in markdown_files(root):
    text = _read(path)
    for target in LINK.findall(text):
      if re.match(r'[a-z][a-z0-9+.-]*:', target):  # http:, https:, mailto: ...
        continue
      file_part, _, anchor = target.partition('#')
      linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) \
          if file_part else path
      if not os.path.exists(linked):
        broken.append(f'{os.path.relpath(path, root)}: {target}')
      elif anchor and linked.endswith('.md'):
        headings = re.findall(r'(?m)^#+ (.+)$', _read(linked))
        if anchor not in {_anchor(h) for h in headings}:
          broken.append(f'{os.path.relpath(path, root)}: {target} (no such heading)')
  return broken


def long_docstrings(root=REPO_ROOT):
  """'file:line name (n lines)' for each docstring over the limit."""
  found = []
  for path in python_files(root):
    tree = ast.parse(_read(path))
    for node in ast.walk(tree):  # The module itself first.
      if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                               ast.AsyncFunctionDef)):
        continue
      body = node.body
      if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
              and isinstance(body[0].value.value, str)):
        continue
      lines = body[0].end_lineno - body[0].lineno + 1
      if lines > DOCSTRING_MAX_LINES:
        name = getattr(node, 'name', '(module)')
        found.append(f'{os.path.relpath(path, root)}:{body[0].lineno} {name} ({lines} lines)')
  return found


def narration(root=REPO_ROOT):
  """'file:line: text' for each line of the README, docs/ or gan_jax/ that
  tells the story of the work instead of the project."""
  found = []
  for path in markdown_files(root) + python_files(root):
    for number, line in enumerate(_read(path).splitlines(), 1):
      hits = [p.pattern for p in NARRATION if p.search(line)]
      hits += [m.group() for m in ISSUE_NUMBER.finditer(line)
               if not UPSTREAM.search(line[:m.start()])]
      if hits:
        found.append(f'{os.path.relpath(path, root)}:{number}: {line.strip()} {hits}')
  return found


def test_readme_is_short():
  with open(os.path.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
    lines = len(f.readlines())
  assert lines <= README_MAX_LINES, f'README.md has {lines} lines; move detail into docs/'


def test_the_quality_page_is_short():
  with open(os.path.join(REPO_ROOT, 'docs', 'quality.md'), encoding='utf-8') as f:
    lines = len(f.readlines())
  assert lines <= QUALITY_MAX_LINES, (
      f'docs/quality.md has {lines} lines; move trial tables into docs/quality-trials.md')


def test_every_relative_link_points_to_an_existing_file_and_heading():
  assert broken_links() == []


def test_docstrings_are_at_most_15_lines():
  assert long_docstrings() == []


def test_prose_tells_of_the_project_not_of_how_the_work_was_done():
  assert narration() == []


def test_the_narration_check_allows_upstream_references_only():
  upstream = 'they became naive loops (jax-ml/jax#12868).'
  assert not any(p.search(upstream) for p in NARRATION)
  assert all(UPSTREAM.search(upstream[:m.start()]) for m in ISSUE_NUMBER.finditer(upstream))
  for line in ('short of issue #11', 'fixed in (#42)', 'found this session', 'issue 12'):
    assert any(p.search(line) for p in NARRATION) or any(
        not UPSTREAM.search(line[:m.start()]) for m in ISSUE_NUMBER.finditer(line)), line


FUNCTION_MAX_LINES = 60


def long_functions(paths=None) -> list[str]:
  """'path:name (N lines)' of every function in gan_jax/ over FUNCTION_MAX_LINES."""
  found = []
  for path in paths or sorted(glob.glob(os.path.join(REPO_ROOT, 'gan_jax', '*.py'))):
    with open(path, encoding='utf-8') as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > FUNCTION_MAX_LINES:
          found.append(f'{os.path.relpath(path, REPO_ROOT)}:{node.name} ({lines} lines)')
  return found


def test_no_function_is_over_60_lines(tmp_path):
  assert long_functions() == []
  # The check sees a long one.
  long = tmp_path / 'long.py'
  long.write_text('def f():\n' + '  x = 1\n' * 60)
  assert long_functions([str(long)]) == [f'{os.path.relpath(long, REPO_ROOT)}:f (61 lines)']


def readme_flag_rows() -> list[tuple[list[str], str]]:
  """The README's flag table: (flag names, default cell) per row."""
  rows = []
  for line in _read(os.path.join(REPO_ROOT, 'README.md')).splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if line.startswith('| `--') and len(cells) >= 3:
      rows.append((re.findall(r'`--(\w+)`', cells[0]), cells[1]))
  return rows


def test_the_readme_flag_table_names_real_flags_with_their_defaults():
  from gan_jax import cli, config
  rows = readme_flag_rows()
  assert len(rows) >= 10
  fields = {f.name: f for f in config.FIELDS}
  for names, default in rows:
    for name in names:
      assert name in cli.FLAGS, name
    field = fields.get(names[0])
    literal = default.strip('`')
    # A setting whose default is decided by others (None) shows the full-split run's.
    value = (None if field is None else field.default if field.default is not None
             else getattr(config.resolve(config.Config()), field.name))
    if field is not None and re.fullmatch(r'[\w.-]+', literal) and literal not in ('off', 'on'):
      assert literal == str(value) or float(literal) == value, names
    elif field is not None and literal in ('off', 'on'):
      assert field.default is (literal == 'on'), names

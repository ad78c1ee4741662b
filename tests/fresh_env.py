"""Helpers for tests that meet gan_jax as a new user does: a new venv, a copy of
the checkout, an empty HOME."""

import os
import subprocess
import sys
import sysconfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_venv_with_our_dependencies(path):
  """A new venv whose Python also sees this environment's packages."""
  subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True, timeout=300)
  python = str(path / 'bin' / 'python')
  site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                        check=True, capture_output=True, text=True).stdout.strip()
  with open(os.path.join(site, '_test_dependencies.pth'), 'w') as f:
    f.write(sysconfig.get_paths()['purelib'] + '\n')
  return python


def copy_of_checkout(dst):
  """The files git would ship (tracked, or new and not ignored), copied to dst."""
  names = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                         cwd=REPO_ROOT, check=True, capture_output=True).stdout.split(b'\0')
  for name in filter(None, (n.decode() for n in names)):
    src = os.path.join(REPO_ROOT, name)
    if os.path.isfile(src):
      os.makedirs(os.path.dirname(os.path.join(dst, name)), exist_ok=True)
      with open(src, 'rb') as fin, open(os.path.join(dst, name), 'wb') as fout:
        fout.write(fin.read())
  return str(dst)


def clean_env(home):
  env = {k: v for k, v in os.environ.items()
         if k not in ('TFDS_DATA_DIR', 'XDG_CACHE_HOME', 'PYTHONPATH')}
  env['HOME'] = str(home)
  return env



"""Data parallelism over several devices (forced CPU devices in a subprocess)."""

import os
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow

_SAME_STEP = textwrap.dedent('''
    import jax, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from gan_jax import train
    from gan_jax.config import Config
    assert jax.device_count() == 8, jax.devices()
    for arch in ('mlp', 'dcgan'):
      config = Config(arch=arch, batch_size=32)
      images = jax.random.uniform(jax.random.PRNGKey(3), (64, 28, 28, 1), minval=-1, maxval=1)
      idx = train.epoch_batches(jax.random.PRNGKey(0), 64, 2, 32)
      rng = jax.random.PRNGKey(7)
      single, m1 = train.run_chunk(train.create_state(config, jax.random.PRNGKey(0)),
                                   images, idx, rng)
      mesh = train.make_mesh()
      sharded_state = train.replicate(train.create_state(config, jax.random.PRNGKey(0)), mesh)
      multi, m8 = train.run_chunk(sharded_state, train.replicate(images, mesh), idx, rng,
                                  NamedSharding(mesh, P('data')))
      leaf = jax.tree_util.tree_leaves(multi.generator.params)[0]
      assert len(leaf.sharding.device_set) == 8, leaf.sharding
      # Summation order differs across devices; Adam's first steps (g/sqrt(g^2))
      # can turn that rounding into up to 2 * lr for near-zero gradients. So:
      # all but a few values (~1e-4 measured) equal to rounding, none further off.
      a = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(single)])
      b = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(multi)])
      off = ~np.isclose(a, b, rtol=1e-3, atol=1e-5)
      assert off.mean() < 1e-3, (arch, off.sum(), a.size)
      np.testing.assert_allclose(a, b, rtol=0, atol=2.5 * config.learning_rate)
      for k in m1:
        np.testing.assert_allclose(m1[k], m8[k], rtol=1e-4)
      print(arch, 'same')
''')


def _env():
  return dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
              PYTHONPATH=REPO_ROOT)


def test_one_step_on_8_devices_equals_one_device():
  result = subprocess.run([sys.executable, '-c', _SAME_STEP], capture_output=True, text=True,
                          env=_env(), timeout=600, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'mlp same' in result.stdout and 'dcgan same' in result.stdout


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

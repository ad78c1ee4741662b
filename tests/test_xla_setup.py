"""The XLA:CPU settings the entry points apply."""

import os
import subprocess
import sys

import numpy as np

from gan_jax import xla_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Three scanned train steps of the default MNIST network; saves the parameters.
_CHUNK = '''
import sys
import jax, jax.numpy as jnp, numpy as np
from gan_jax import config, train
state = train.create_state(config.Config(dataset='mnist', batch_size=8), jax.random.PRNGKey(0))
batches = {'image': jax.random.uniform(jax.random.PRNGKey(1), (3, 8, 28, 28, 1), minval=-1),
           'label': jnp.arange(24, dtype=jnp.int32).reshape(3, 8) % 10}
state, _ = train.run_chunk(state, batches, jax.random.PRNGKey(2))
leaves = jax.tree_util.tree_leaves((state.generator.params, state.discriminator.params,
                                    state.generator.opt_state, state.generator_ema))
np.savez(sys.argv[1], *[np.asarray(x) for x in leaves])
'''


def test_settings_are_added_once_and_leave_the_users_own_alone(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_copy_insertion_use_region_analysis=false')
  assert xla_setup.use_fast_cpu_settings() == [xla_setup.CPU_FLAGS[0]]
  flags = os.environ['XLA_FLAGS'].split()
  assert flags == ['--xla_cpu_copy_insertion_use_region_analysis=false',
                   xla_setup.CPU_FLAGS[0]]
  assert xla_setup.use_fast_cpu_settings() == []


def test_train_chunk_is_the_same_with_and_without_the_settings(tmp_path):
  # The settings change how XLA places buffers (and where convolutions run,
  # none here), not the arithmetic: the scanned steps give identical bits.
  results = {}
  for name, flags in (('plain', ''), ('fast', ' '.join(xla_setup.CPU_FLAGS))):
    out = tmp_path / f'{name}.npz'
    subprocess.run([sys.executable, '-c', _CHUNK, str(out)], check=True, cwd=ROOT,
                   env={**os.environ, 'XLA_FLAGS': flags, 'JAX_PLATFORMS': 'cpu'})
    results[name] = np.load(out)
  assert len(results['plain'].files) > 10
  for key in results['plain'].files:
    np.testing.assert_array_equal(results['plain'][key], results['fast'][key])

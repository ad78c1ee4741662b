"""The generator as a file: loaded and called by a process that has jax but
never imports gan_jax; and every network's train chunk lowers for GPU and TPU."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax import sampling, serialize, train
from gan_jax.config import ARCHS, Config

# Only jax and numpy: what a user of an exported generator has.
_LOAD_AND_CALL = """
import sys
import jax, numpy as np
exported = jax.export.deserialize(bytearray(open(sys.argv[1], 'rb').read()))
inputs = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(exported.call(inputs['z'], inputs['labels'])))
assert not [m for m in sys.modules if m.startswith('gan_jax')], 'gan_jax was imported'
print(','.join(exported.platforms))
"""


@pytest.mark.slow
def test_serialized_generator_gives_the_librarys_images_in_a_process_without_gan_jax(
    tmp_path):
  # BatchNorm's statistics go in too; the encoder of --reconstruction stays out.
  config = Config(arch='mlp_bn', conditional=True, reconstruction=1.0)
  state = train.create_state(config, jax.random.PRNGKey(1))
  path = tmp_path / serialize.FILE
  path.write_bytes(serialize.export_generator(state).serialize())
  rng = np.random.default_rng(0)
  z = rng.normal(size=(7, config.noise_dim)).astype(np.float32)
  labels = np.array([0, 1, 2, 3, 7, 8, 9], np.int32)
  np.savez(tmp_path / 'inputs.npz', z=z, labels=labels)
  script = tmp_path / 'load.py'
  script.write_text(_LOAD_AND_CALL)
  result = subprocess.run([sys.executable, str(script), str(path), str(tmp_path / 'inputs.npz'),
                           str(tmp_path / 'out.npy')], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split()[-1] == 'cpu,cuda,tpu'
  out = np.load(tmp_path / 'out.npy')
  assert out.shape == (7, 28, 28, 1)
  np.testing.assert_allclose(out, sampling.generate(state, z, labels), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCHS)
def test_a_train_chunk_of_every_network_lowers_for_gpu_and_tpu(arch):
  """Code that only compiles on CPU is caught here, without an accelerator."""
  config = Config(arch=arch, conditional=True, class_loss_weight=1.0, reconstruction=1.0,
                  dtype='bfloat16')
  state = train.create_state(config, jax.random.PRNGKey(0))
  batches = {'image': jax.ShapeDtypeStruct((2, 8, 28, 28, 1), np.float32),
             'label': jax.ShapeDtypeStruct((2, 8), np.int32)}
  exported = jax.export.export(jax.jit(train.train_chunk), platforms=('cuda', 'tpu'))(
      state, batches, jax.random.PRNGKey(0))
  assert exported.platforms == ('cuda', 'tpu')
  assert 'stablehlo' in exported.mlir_module()

"""Checks that need 8 devices; tests/test_sharding.py runs this file in a
subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8 (the
device count is fixed when jax starts, so it cannot run in the test process).

Run by hand: XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/on_eight_devices.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from gan_jax import train  # noqa: E402
from gan_jax.config import Config  # noqa: E402


def recorded_gradients() -> optax.GradientTransformation:
  """An 'optimizer' that leaves the parameters alone and keeps the last
  gradient as its state: a train step then returns exactly its gradients."""
  return optax.GradientTransformation(
      init=lambda params: jax.tree_util.tree_map(jnp.zeros_like, params),
      update=lambda grads, state, params=None: (
          jax.tree_util.tree_map(jnp.zeros_like, grads), grads))


def gradient_state(arch: str) -> train.GANState:
  state = train.create_state(Config(arch=arch, batch_size=32), jax.random.PRNGKey(0))
  tx = recorded_gradients()
  g, d = state.generator, state.discriminator
  return state.replace(
      generator=g.replace(tx=tx, opt_state=tx.init(g.params)),
      discriminator=d.replace(tx=tx, opt_state=tx.init(d.params)))


def check_one_step_on_8_devices_has_the_gradients_and_losses_of_one():
  """Sharding the batch must not change the maths: the same losses and the same
  gradients of both networks, up to float32 summation order.

  A gradient entry is a sum of up to a few thousand products (batch x pixels);
  summed in another order it moves by ~sqrt(n) float32 roundings of the
  largest terms, far below 1e-3 of the leaf's largest entry, which is the
  tolerance. (Parameters after Adam are not compared: Adam's first step maps a
  rounding-sized change of a near-zero gradient to up to +-lr.)
  """
  assert jax.device_count() == 8, jax.devices()
  mesh = train.make_mesh()
  step = jax.jit(train.train_step)
  images = {'image': jax.random.uniform(jax.random.PRNGKey(3), (32, 28, 28, 1),
                                       minval=-1, maxval=1),
            'label': jnp.arange(32, dtype=jnp.int32) % 10}
  rng = jax.random.PRNGKey(7)
  for arch in ('mlp', 'dcgan'):
    one, m1 = step(gradient_state(arch), images, rng)
    eight, m8 = step(train.replicate(gradient_state(arch), mesh),
                     jax.device_put(images, NamedSharding(mesh, P('data'))), rng)
    leaf = jax.tree_util.tree_leaves(eight.generator.params)[0]
    assert len(leaf.sharding.device_set) == 8, leaf.sharding
    for net in ('generator', 'discriminator'):
      g1 = jax.tree_util.tree_leaves(getattr(one, net).opt_state)
      g8 = jax.tree_util.tree_leaves(getattr(eight, net).opt_state)
      for a, b in zip(g1, g8):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a).max() > 0, (arch, net)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-3 * np.abs(a).max(),
                                   err_msg=f'{arch} {net} gradient')
    for k in m1:
      np.testing.assert_allclose(m8[k], m1[k], rtol=1e-5, err_msg=f'{arch} {k}')
    print(arch, 'same gradients and losses')


if __name__ == '__main__':
  check_one_step_on_8_devices_has_the_gradients_and_losses_of_one()
  print('all checks passed')

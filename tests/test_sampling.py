"""Drawing images: the generator in inference mode, its standing statistics,
the noise and the key streams, the grids' noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import presets, sampling, train
from gan_jax.config import Config


def _state(arch, **kw):
  return train.create_state(Config(arch=arch, **kw), jax.random.PRNGKey(0))


def _batches(n=64, steps=4, batch_size=16):
  """(steps, batch_size, ...) batches of a permutation of n random images."""
  images = jax.random.uniform(jax.random.PRNGKey(3), (n, 28, 28, 1), minval=-1, maxval=1)
  batch = {'image': images, 'label': jnp.arange(n, dtype=jnp.int32) % 10}
  rows = train.epoch_batches(jax.random.PRNGKey(0), n, steps, batch_size)
  return jax.tree_util.tree_map(lambda x: x[rows], batch)


def test_key_streams_are_distinct_and_fixed_by_the_seed():
  keys = sampling.keys(0)
  assert list(keys) == list(sampling.KEY_STREAMS)
  assert len({tuple(np.asarray(k).tolist()) for k in keys.values()}) == len(keys)
  for name in keys:
    np.testing.assert_array_equal(keys[name], sampling.keys(0)[name])
    assert not np.array_equal(keys[name], sampling.keys(1)[name])


def test_grid_noise_is_25_vectors_or_one_row_of_noise_per_class():
  plain = np.asarray(sampling.grid_noise(Config(), sampling.keys(0)['grid']))
  assert plain.shape == (25, 100) and sampling.grid_shape(Config()) == (5, 5)
  conditional = Config(conditional=True)
  noise = np.asarray(sampling.grid_noise(conditional, sampling.keys(0)['grid']))
  assert noise.shape == (100, 100) and sampling.grid_shape(conditional) == (10, 10)
  np.testing.assert_array_equal(noise[:10], noise[90:])  # A column keeps its noise.
  assert sampling.class_rows(conditional, 3).tolist() == [c for c in range(10) for _ in range(3)]
  assert sampling.class_rows(Config(), 3) is None


def test_sample_noise_is_standard_normal_times_its_scale():
  key = jax.random.PRNGKey(3)
  z = np.asarray(sampling.sample_noise(key, 4000, 50))
  assert abs(z.std() - 1) < 0.02 and abs(z.mean()) < 0.02  # 200,000 draws: 5 sigma.
  np.testing.assert_allclose(np.asarray(sampling.sample_noise(key, 4000, 50, 0.5)), 0.5 * z,
                             rtol=1e-6)


def test_generate_in_batches_with_an_uneven_last_batch():
  state = _state('mlp')
  z = jax.random.normal(jax.random.PRNGKey(0), (7, 100))
  out = sampling.generate(state, z, batch_size=4)
  assert out.shape == (7, 28, 28, 1)
  np.testing.assert_allclose(out[4:], sampling.generate(state, z[4:], batch_size=4), atol=1e-6)


@pytest.mark.parametrize('conditional', [False, True])
@pytest.mark.parametrize('arch', ['dcgan', 'mlp', 'mlp_bn'])
def test_an_image_depends_on_its_own_noise_and_label_only(arch, conditional):
  state = _state(arch, conditional=conditional)
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (1000, 100)))
  mixed = np.arange(1000) % 10
  variables = sampling.inference_variables(state)  # What generate computes: the same each call.
  alone = sampling.generate(state, z[:1], mixed[:1], variables=variables)[0]
  in_mixed_batch = sampling.generate(state, z, mixed, batch_size=1000, variables=variables)[0]
  own = np.full(1000, mixed[0])  # A batch of its own label (the same noise everywhere).
  in_own_batch = sampling.generate(state, np.repeat(z[:1], 1000, axis=0), own, batch_size=1000,
                                variables=variables)[0]
  # float32 rounding of a few layers of products of length <= 12,800 (the DCGAN's
  # dense input is 100 or 132 wide, its convolutions 25 * 256): far below 1e-4.
  np.testing.assert_allclose(in_mixed_batch, alone, atol=1e-4)
  np.testing.assert_allclose(in_own_batch, alone, atol=1e-4)
  # A single image still spreads over the pixel range (not a flat grey square).
  assert alone.std() > 0.05


def test_standing_statistics_are_the_mean_batch_statistics_of_the_sampling_weights():
  state = _state('mlp_bn', conditional=True, ema_decay=0.9)
  state, _ = train.run_chunk(state, _batches(), jax.random.PRNGKey(7))
  running = jax.device_get(state.generator.batch_stats)
  stats = sampling.inference_variables(state)['batch_stats']['bn0']
  # The plain definition for the first BatchNorm: its input is dense0 of
  # [noise, label embedding], under the EMA weights, over each standing batch.
  ema = jax.device_get(state.generator_ema)
  # A conditional generator's: batches of 500, as many as make 100,000 images.
  size = state.standing_stats_batch_size
  assert size == presets.get('mnist', True).standing_batch == 500
  # An unconditional one's: batches of the training batch size.
  unconditional = _state('mlp_bn', batch_size=48)
  assert unconditional.standing_stats_batch_size == 48
  assert unconditional.standing_stats_batches == -(-100_000 // 48)
  assert state.standing_stats_batches * size >= 100_000
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(state.standing_stats_batches))
  zs = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (size, 100)))(keys))
  labels = np.arange(zs.shape[0] * size).reshape(-1, size) % 10
  x = np.concatenate([zs, ema['label_embedding']['embedding'][labels]], axis=-1)
  h = x @ ema['dense0']['kernel'] + ema['dense0']['bias']  # (batches, size, 256)
  means, variances = h.mean(axis=1), h.var(axis=1)
  np.testing.assert_allclose(stats['mean'], np.mean(means, axis=0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stats['var'], np.mean(variances, axis=0), rtol=1e-4, atol=1e-5)
  # Sampling reads the running averages of training, and leaves them as they are.
  sampling.generate(state, np.zeros((4, 100), np.float32), [0, 1, 2, 3])
  for a, b in zip(jax.tree_util.tree_leaves(running),
                  jax.tree_util.tree_leaves(state.generator.batch_stats)):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(running['bn0']['mean'], stats['mean'], atol=1e-3)

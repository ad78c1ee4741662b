"""The pure train steps and the scanned device epoch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib, sampling, train
from gan_jax.config import Config


def _state(arch, **kw):
  return train.create_state(Config(arch=arch, **kw), jax.random.PRNGKey(0))


def _batch(n=16):
  return {'image': jax.random.uniform(jax.random.PRNGKey(3), (n, 28, 28, 1),
                                      minval=-1, maxval=1),
          'label': jnp.arange(n, dtype=jnp.int32) % 10}


def _rows(batches, rows):
  return jax.tree_util.tree_map(lambda x: x[rows], batches)


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize('arch', ['dcgan', 'mlp', 'mlp_bn'])
def test_train_step_gives_finite_losses_and_changes_both_networks(arch):
  state = _state(arch)
  g_before = jax.device_get(state.generator.params)
  d_before = jax.device_get(state.discriminator.params)
  new, metrics = jax.jit(train.train_step)(state, _batch(), jax.random.PRNGKey(1))
  assert set(metrics) == {'d_loss', 'd_acc', 'g_loss'}
  for value in metrics.values():
    assert value.shape == () and np.isfinite(value)
  assert 0.0 <= float(metrics['d_acc']) <= 1.0
  assert _changed(g_before, new.generator.params)
  assert _changed(d_before, new.discriminator.params)
  assert int(new.generator.step) == 1 and int(new.discriminator.step) == 1


@pytest.mark.parametrize('arch', ['dcgan', 'mlp', 'mlp_bn'])
def test_each_step_changes_only_its_own_network(arch):
  state = _state(arch)
  rng = jax.random.PRNGKey(1)
  after_d, m = jax.jit(train.discriminator_step)(state, _batch(), rng)
  assert set(m) == {'d_loss', 'd_acc'}
  assert _changed(state.discriminator.params, after_d.discriminator.params)
  assert not _changed(state.generator.params, after_d.generator.params)
  after_g, m = jax.jit(train.generator_step)(state, _batch(), rng)
  assert set(m) == {'g_loss'}
  assert _changed(state.generator.params, after_g.generator.params)
  assert not _changed(state.discriminator.params, after_g.discriminator.params)
  if arch != 'mlp':  # BatchNorm running statistics move in the generator step.
    assert _changed(state.generator.batch_stats, after_g.generator.batch_stats)


def test_bfloat16_train_step_gives_finite_losses_and_float32_parameters():
  state = _state('dcgan', dtype='bfloat16')
  new, m = jax.jit(train.train_step)(state, _batch(8), jax.random.PRNGKey(1))
  assert all(np.isfinite(v) for v in m.values())
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(new.generator.params))


def test_epoch_batches_is_a_permutation_cut_into_full_batches():
  idx = np.asarray(train.epoch_batches(jax.random.PRNGKey(0), 103, 10, 10))
  assert idx.shape == (10, 10)
  assert len(set(idx.ravel().tolist())) == 100   # No repeats.
  assert idx.min() >= 0 and idx.max() < 103
  other = np.asarray(train.epoch_batches(jax.random.PRNGKey(1), 103, 10, 10))
  assert not np.array_equal(idx, other)


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _assert_states_close(a, b):
  """Equal to float32 rounding after a few Adam steps.

  Adam's first steps move each parameter by about lr * g / (|g| + eps), so a
  gradient entry near eps (1e-8) turns rounding into up to ~2 lr. So: all but
  a few values equal to rounding, none further off than that.
  """
  x = np.concatenate([np.ravel(t) for t in jax.tree_util.tree_leaves(a)])
  y = np.concatenate([np.ravel(t) for t in jax.tree_util.tree_leaves(b)])
  assert x.shape == y.shape
  off = ~np.isclose(x, y, rtol=1e-4, atol=1e-6)
  assert off.mean() < 1e-4, (off.sum(), x.size)
  np.testing.assert_allclose(x, y, rtol=0, atol=2.5 * Config().learning_rate)


def _batches(n=64, steps=4, batch_size=16):
  """(steps, batch_size, ...) batches of a permutation of n random images."""
  return _rows(_batch(n), train.epoch_batches(jax.random.PRNGKey(0), n, steps, batch_size))


def test_run_chunk_sums_metrics_and_does_not_depend_on_chunking():
  batches = _batches()
  rng = jax.random.PRNGKey(7)
  one, m_one = train.run_chunk(_state('mlp'), batches, rng)
  two, m_a = train.run_chunk(_state('mlp'), _rows(batches, slice(None, 2)), rng)
  two, m_b = train.run_chunk(two, _rows(batches, slice(2, None)), rng)
  assert int(one.generator.step) == 4
  np.testing.assert_allclose(m_one['g_loss'], m_a['g_loss'] + m_b['g_loss'], rtol=1e-5)
  _assert_trees_close(one.generator.params, two.generator.params)


@pytest.mark.parametrize('arch', ['mlp', 'mlp_bn', 'dcgan'])
def test_scanned_chunk_equals_per_step_train_batch_calls(arch):
  # The scan must compute what separate jitted steps compute (XLA compiles a
  # loop body on its own; rounding may differ, nothing else).
  batches = _batches(12, 3, 4)
  rng = jax.random.PRNGKey(7)
  scanned, m_scan = train.run_chunk(_state(arch), batches, rng)
  state, sums = _state(arch), {k: 0.0 for k in train.METRIC_NAMES}
  step = jax.jit(train.train_batch)
  for i in range(3):
    state, m = step(state, _rows(batches, i), rng)
    sums = {k: sums[k] + m[k] for k in sums}
  assert int(scanned.generator.step) == int(state.generator.step) == 3
  for k in train.METRIC_NAMES:
    np.testing.assert_allclose(m_scan[k], sums[k], rtol=1e-5, atol=1e-6)
  _assert_states_close(scanned, state)


@pytest.mark.parametrize('arch', ['mlp', 'mlp_bn', 'dcgan'])
def test_train_step_equals_discriminator_then_generator_step(arch):
  # train_step shares one generator forward pass between its two updates;
  # the result must be what the two steps compute one after the other.
  _assert_train_step_is_the_two_steps(_state(arch), _batch(8), jax.random.PRNGKey(1))


def _assert_train_step_is_the_two_steps(state, batch, rng):
  fused, m_fused = jax.jit(train.train_step)(state, batch, rng)
  after_d, m_d = jax.jit(train.discriminator_step)(state, batch, rng)
  after_g, m_g = jax.jit(train.generator_step)(after_d, batch, rng)
  for k, v in {**m_d, **m_g}.items():
    np.testing.assert_allclose(m_fused[k], v, rtol=1e-5, atol=1e-6)
  _assert_states_close(fused, after_g)


def test_training_is_deterministic_given_the_seed():
  batches = _batches()
  a, _ = train.run_chunk(_state('mlp'), batches, jax.random.PRNGKey(7))
  b, _ = train.run_chunk(_state('mlp'), batches, jax.random.PRNGKey(7))
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_generator_ema_follows_the_parameters_with_a_warm_up():
  state = _state('mlp', ema_decay=0.999)
  init = jax.device_get(state.generator.params)
  new, _ = jax.jit(train.train_step)(state, _batch(), jax.random.PRNGKey(1))
  # Step 1: decay min(0.999, 2/11), so the EMA is 2/11 * init + 9/11 * new params.
  for e, p, i in zip(jax.tree_util.tree_leaves(new.generator_ema),
                     jax.tree_util.tree_leaves(new.generator.params),
                     jax.tree_util.tree_leaves(init)):
    np.testing.assert_allclose(e, 2 / 11 * i + 9 / 11 * p, rtol=1e-5, atol=1e-7)
  # generator_step moves the EMA the same way.
  after_g, _ = jax.jit(train.generator_step)(state, _batch(), jax.random.PRNGKey(1))
  assert _changed(init, after_g.generator_ema)


def test_samples_use_the_ema_unless_it_is_off():
  z = jax.random.normal(jax.random.PRNGKey(0), (8, 100))
  batches = _batches()
  with_ema, _ = train.run_chunk(_state('mlp', ema_decay=0.9), batches, jax.random.PRNGKey(7))
  without, _ = train.run_chunk(_state('mlp', ema_decay=0.0), batches, jax.random.PRNGKey(7))
  # The same training either way; only what generate() samples with differs.
  for a, b in zip(jax.tree_util.tree_leaves(with_ema.generator.params),
                  jax.tree_util.tree_leaves(without.generator.params)):
    np.testing.assert_array_equal(a, b)
  raw = without.replace(ema_decay=0.0)
  np.testing.assert_allclose(sampling.generate(without, z), sampling.generate(with_ema.replace(
      generator_ema=with_ema.generator.params), z), atol=1e-6)
  assert not np.allclose(sampling.generate(with_ema, z), sampling.generate(raw, z), atol=1e-4)


def test_label_smoothing_lowers_the_target_for_real_images():
  # With label_smoothing s the real-image loss is BCE against 1 - s, so on the
  # same batch and weights the loss differs by exactly s * mean(real logits)
  # (BCE(x, t) = softplus(x) - t * x).
  rng = jax.random.PRNGKey(1)
  images = _batch()
  plain, m0 = jax.jit(train.discriminator_step)(_state('mlp', label_smoothing=0.0), images, rng)
  smooth, m1 = jax.jit(train.discriminator_step)(_state('mlp', label_smoothing=0.1), images, rng)
  d = _state('mlp').discriminator
  real_logits = d.apply_fn({'params': d.params}, images['image'], train=True,
                           rngs={'dropout': jax.random.fold_in(rng, 1)})
  np.testing.assert_allclose(m1['d_loss'] - m0['d_loss'], 0.1 * real_logits.mean(),
                             rtol=1e-4, atol=1e-6)
  assert _changed(plain.discriminator.params, smooth.discriminator.params)


@pytest.mark.parametrize('arch', ['dcgan', 'mlp', 'mlp_bn'])
def test_one_conditional_step_changes_both_networks_and_their_label_layers(arch):
  state = _state(arch, conditional=True)
  assert state.num_classes == 10
  new, metrics = jax.jit(train.train_step)(state, _batch(), jax.random.PRNGKey(1))
  assert all(np.isfinite(v) for v in metrics.values())
  assert _changed(state.generator.params['label_embedding'],
                  new.generator.params['label_embedding'])
  assert _changed(state.discriminator.params['label_projection'],
                  new.discriminator.params['label_projection'])
  assert _changed(state.discriminator.params['class_logits'],
                  new.discriminator.params['class_logits'])
  assert _changed(state.generator.params, new.generator.params)
  assert _changed(state.discriminator.params, new.discriminator.params)


def test_class_loss_is_the_cross_entropy_of_the_requested_class():
  # Softmax of (0, 0, ln 2) gives class 2 probability 2/4; of (ln 3, 0, 0),
  # class 1 gets 1/5. The loss is the mean of -ln p: (ln 2 + ln 5) / 2.
  logits = jnp.log(jnp.array([[1.0, 1.0, 2.0], [3.0, 1.0, 1.0]]))
  np.testing.assert_allclose(train.class_loss(logits, jnp.array([2, 1])),
                             np.log(10.0) / 2, rtol=1e-6)


def test_discriminator_class_loss_is_weighted_and_on_real_images_only():
  # The same state and batch with and without the class loss: the D loss
  # differs by exactly weight * class_loss(D's class logits of the real images).
  rng = jax.random.PRNGKey(1)
  batch = _batch()
  state = _state('mlp', conditional=True, class_loss_weight=0.5)
  _, with_loss = jax.jit(train.discriminator_step)(state, batch, rng)
  _, without = jax.jit(train.discriminator_step)(state.replace(class_loss_weight=0.0),
                                                  batch, rng)
  d = state.discriminator
  _, class_logits = d.apply_fn({'params': d.params}, batch['image'], batch['label'],
                               train=True)  # The MLP has no dropout.
  np.testing.assert_allclose(with_loss['d_loss'] - without['d_loss'],
                             0.5 * train.class_loss(class_logits, batch['label']),
                             rtol=1e-4, atol=1e-6)


def test_generator_class_loss_grows_with_its_weight():
  rng = jax.random.PRNGKey(1)
  batch = _batch()
  state = _state('mlp_bn', conditional=True)
  g_loss = {w: jax.jit(train.generator_step)(state.replace(class_loss_weight=w), batch,
                                               rng)[1]['g_loss'] for w in (0.0, 0.5, 1.0)}
  # Cross-entropy is positive, and the added term is linear in the weight.
  assert g_loss[0.5] > g_loss[0.0]
  np.testing.assert_allclose(g_loss[1.0] - g_loss[0.0], 2 * (g_loss[0.5] - g_loss[0.0]),
                             rtol=1e-4)


def test_unconditional_state_has_no_class_loss():
  assert _state('mlp', class_loss_weight=1.0).class_loss_weight == 0.0
  assert _state('mlp', conditional=True, class_loss_weight=1.0).class_loss_weight == 1.0


def test_conditional_generator_needs_labels_and_follows_them():
  state = _state('mlp', conditional=True)
  z = jnp.zeros((4, 100))
  with pytest.raises(ValueError, match='needs the labels'):
    sampling.generate(state, z)
  threes, sevens = sampling.generate(state, z, [3] * 4), sampling.generate(state, z, [7] * 4)
  assert threes.shape == (4, 28, 28, 1)
  assert not np.allclose(threes, sevens)  # The same noise, another class.
  # An unconditional generator ignores labels.
  plain = _state('mlp')
  np.testing.assert_array_equal(sampling.generate(plain, z, [3] * 4), sampling.generate(plain, z))


def test_each_loss_is_its_formula_on_a_tiny_input():
  real, fake, t = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0]), 0.9
  sig = lambda x: 1 / (1 + np.exp(-np.asarray(x)))
  bce = lambda x, y: -np.mean(y * np.log(sig(x)) + (1 - y) * np.log(1 - sig(x)))
  expected = {
      'ns': (bce(real, t) + bce(fake, 0.0), bce(fake, 1.0)),
      # relu(1 - 2) = 0, relu(1 + 1) = 2; relu(1.5) = 1.5, relu(-2) = 0.
      'hinge': ((0 + 2) / 2 + (1.5 + 0) / 2, -(0.5 - 3.0) / 2),
      'ls': (0.5 * (((2 - t) ** 2 + (-1 - t) ** 2) / 2 + (0.25 + 9) / 2),
             0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2),
  }
  assert set(train.LOSSES) == set(expected) == set(config_lib.LOSSES)
  for name, (d, g) in expected.items():
    loss = train.LOSSES[name]
    np.testing.assert_allclose(loss.discriminator(real, fake, t), d, rtol=1e-6)
    np.testing.assert_allclose(loss.generator(fake), g, rtol=1e-6)


@pytest.mark.parametrize('loss', ['hinge', 'ls'])
def test_a_step_with_each_loss_gives_finite_losses_and_changes_both_networks(loss):
  state = _state('mlp', loss=loss)
  new, metrics = jax.jit(train.train_step)(state, _batch(), jax.random.PRNGKey(1))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for old, changed in ((state.generator.params, new.generator.params),
                       (state.discriminator.params, new.discriminator.params)):
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(old),
                                                     jax.tree_util.tree_leaves(changed)))
  # The loss decides the step: the same inputs under 'ns' give other losses.
  _, ns = jax.jit(train.train_step)(_state('mlp'), _batch(), jax.random.PRNGKey(1))
  assert float(ns['d_loss']) != float(metrics['d_loss'])


def test_mode_seeking_loss_is_its_formula_and_falls_as_images_spread():
  z = jnp.array([[0.0, 0.0], [1.0, 3.0], [2.0, 0.0], [1.0, 1.0]])  # Pairs (0, 2), (1, 3).
  fake = jnp.zeros((4, 28, 28, 1)).at[2].set(0.5).at[3].set(-0.25)
  # |G(z1) - G(z2)| / |z1 - z2|, mean absolute differences: 0.5 / 1 and 0.25 / 1.
  np.testing.assert_allclose(train.mode_seeking_loss(fake, z), 1 / (0.375 + 1e-5), rtol=1e-6)
  assert train.mode_seeking_loss(2 * fake, z) < train.mode_seeking_loss(fake, z)


def test_mode_seeking_adds_its_weighted_term_to_the_generator_loss_only():
  state, batch, rng = _state('mlp'), _batch(), jax.random.PRNGKey(1)
  runs = {w: jax.jit(train.train_step)(state.replace(mode_seeking=w), batch, rng)
          for w in (0.0, 0.5, 1.0)}
  g_loss = {w: float(m['g_loss']) for w, (_, m) in runs.items()}
  # The term is positive and linear in its weight; the discriminator's step is unchanged.
  assert g_loss[0.5] > g_loss[0.0]
  np.testing.assert_allclose(g_loss[1.0] - g_loss[0.0], 2 * (g_loss[0.5] - g_loss[0.0]),
                             rtol=1e-4)
  assert float(runs[1.0][1]['d_loss']) == float(runs[0.0][1]['d_loss'])
  assert _changed(runs[1.0][0].generator.params, runs[0.0][0].generator.params)
  # The fused step still equals the two steps one after the other.
  with_term = state.replace(mode_seeking=1.0)
  after_d, _ = jax.jit(train.discriminator_step)(with_term, batch, rng)
  _, m_g = jax.jit(train.generator_step)(after_d, batch, rng)
  np.testing.assert_allclose(m_g['g_loss'], g_loss[1.0], rtol=1e-5)


def test_conditional_mode_seeking_pairs_images_of_one_class():
  batch, rng = _batch(), jax.random.PRNGKey(1)
  state = _state('mlp', conditional=True, mode_seeking=1.0)
  labels = train.generator_labels(state, batch['label'])
  # The second half repeats the first, so each pair of the term has one class.
  np.testing.assert_array_equal(labels[8:], labels[:8])
  np.testing.assert_array_equal(labels[:8], batch['label'][:8])
  for other in (state.replace(mode_seeking=0.0), _state('mlp', mode_seeking=1.0)):
    np.testing.assert_array_equal(train.generator_labels(other, batch['label']),
                                  batch['label'])
  # The generator's loss is the term's on images drawn with those labels.
  z = train._noise(state, rng, 16)  # pylint: disable=protected-access
  g = state.generator
  fake = g.apply_fn({'params': g.params}, z, labels, train=True)
  _, m_g = jax.jit(train.generator_step)(state, batch, rng)
  expected = train._fooling_loss(state, fake, z, labels, rng)  # pylint: disable=protected-access
  np.testing.assert_allclose(m_g['g_loss'], expected, rtol=1e-5)
  # Both steps and the fused step draw the same labels.
  _assert_train_step_is_the_two_steps(state, batch, rng)


def test_reconstruction_adds_its_weighted_term_to_the_generator_loss_only():
  batch, rng = _batch(), jax.random.PRNGKey(1)
  state = _state('mlp', conditional=True, reconstruction=1.0)
  runs = {w: jax.jit(train.train_step)(state.replace(reconstruction=w), batch, rng)
          for w in (0.0, 2.0)}
  g = state.generator
  term = float(train.reconstruction_loss(g, g.params, batch))
  assert term > 0
  np.testing.assert_allclose(runs[2.0][1]['g_loss'] - runs[0.0][1]['g_loss'], 2 * term,
                             rtol=1e-4)
  assert float(runs[2.0][1]['d_loss']) == float(runs[0.0][1]['d_loss'])
  # Its gradient trains the encoder, which nothing else does.
  encoder = lambda s: s.generator.params['encoder']
  assert _changed(encoder(state), encoder(runs[2.0][0]))
  assert not _changed(encoder(state), encoder(runs[0.0][0]))
  # The fused step still equals the two steps one after the other.
  _assert_train_step_is_the_two_steps(state.replace(reconstruction=2.0), batch, rng)


@pytest.mark.parametrize('arch', ['mlp', 'mlp_bn'])
def test_training_on_the_reconstruction_loss_alone_rebuilds_the_real_batch(arch):
  # The manifold step can do its job: the generator learns to draw the real
  # images back from the encoder's codes, and the codes move towards N(0, 1).
  batch = _batch()
  g = _state(arch, conditional=True, reconstruction=1.0).generator
  step = jax.jit(lambda g: g.apply_gradients(
      grads=jax.grad(train.reconstruction_loss, argnums=1)(g, g.params, batch)))
  first = float(train.reconstruction_loss(g, g.params, batch))
  for _ in range(100):
    g = step(g)
  assert float(train.reconstruction_loss(g, g.params, batch)) < 0.5 * first

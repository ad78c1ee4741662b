"""The discriminator's differentiable augmentation (DiffAugment)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augment, train
from gan_jax.config import Config


def _images(n=8):
  return jax.random.uniform(jax.random.PRNGKey(0), (n, 28, 28, 1), minval=-1, maxval=1)


@pytest.mark.parametrize('policy', [('translation',), ('cutout',), ('translation', 'cutout')])
def test_each_policy_keeps_shapes_and_range_and_draws_per_image(policy):
  x = _images()
  y = augment.apply(policy, x, jax.random.PRNGKey(1))
  assert y.shape == x.shape and y.dtype == x.dtype
  assert float(y.min()) >= -1 and float(y.max()) <= 1
  # Each image its own draw: the same image repeated comes out different.
  same = augment.apply(policy, jnp.repeat(x[:1], 8, axis=0), jax.random.PRNGKey(1))
  assert len({np.asarray(im).tobytes() for im in same}) > 1


def test_translation_is_a_shift_with_background_fill():
  x = np.asarray(_images(1))
  key = jax.random.PRNGKey(5)
  y = np.asarray(augment.translation(jnp.asarray(x), key))
  r = round(28 * augment.SHIFT_RATIO)
  dy, dx = np.asarray(jax.random.randint(key, (1, 2), 0, 2 * r + 1))[0] - r
  padded = np.pad(x[0, ..., 0], r, constant_values=-1)
  expected = padded[r + dy:r + dy + 28, r + dx:r + dx + 28]
  np.testing.assert_array_equal(y[0, ..., 0], expected)


def test_cutout_sets_one_square_to_background():
  x = jnp.full((64, 28, 28, 1), 0.5)
  y = np.asarray(augment.cutout(x, jax.random.PRNGKey(2)))
  erased = (y == -1).sum(axis=(1, 2, 3))
  assert erased.max() == 14 * 14  # A whole square where it fits inside.
  assert (erased > 0).all() and set(np.unique(y)) <= {-1.0, 0.5}


def test_the_gradient_flows_through_to_the_images():
  x = _images()
  grad = jax.grad(lambda im: jnp.sum(augment.apply(('translation', 'cutout'), im,
                                                   jax.random.PRNGKey(3)) ** 2))(x)
  assert float(jnp.abs(grad).sum()) > 0
  assert np.any(np.asarray(grad) == 0)  # Cut-out and shifted-out pixels get none.


def test_none_is_the_identity_and_an_unknown_name_is_refused():
  x = _images()
  assert augment.parse('none') == () and augment.parse('') == ()
  assert augment.apply((), x, jax.random.PRNGKey(0)) is x
  with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
    augment.parse('translation,flip')


def test_a_step_with_augmentation_trains_the_generator_through_it():
  state = train.create_state(Config(arch='mlp', augment='translation,cutout'),
                             jax.random.PRNGKey(0))
  assert state.augment == ('translation', 'cutout')
  batch = {'image': _images(16), 'label': jnp.zeros(16, jnp.int32)}
  new, metrics = jax.jit(train.train_step)(state, batch, jax.random.PRNGKey(1))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for a, b in ((state.generator.params, new.generator.params),
               (state.discriminator.params, new.discriminator.params)):
    assert any(not np.array_equal(p, q) for p, q in
               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
  # The fused step still equals the discriminator step then the generator step.
  d_state, _ = jax.jit(train.discriminator_step)(state, batch, jax.random.PRNGKey(1))
  both, _ = jax.jit(train.generator_step)(d_state, batch, jax.random.PRNGKey(1))
  for p, q in zip(jax.tree_util.tree_leaves(new.generator.params),
                  jax.tree_util.tree_leaves(both.generator.params)):
    np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)


def test_augmentation_changes_what_the_discriminator_learns():
  """augment='none' (the default on the full split) gives a state without a
  policy, whose discriminator sees the images as they are (`apply` of () is
  the identity); a policy changes its update."""
  plain = train.create_state(Config(arch='mlp'), jax.random.PRNGKey(0))
  assert plain.augment == ()
  batch = {'image': _images(16), 'label': jnp.zeros(16, jnp.int32)}
  a, _ = jax.jit(train.train_step)(plain, batch, jax.random.PRNGKey(1))
  with_aug = plain.replace(augment=('cutout',))
  b, _ = jax.jit(train.train_step)(with_aug, batch, jax.random.PRNGKey(1))
  assert any(not np.array_equal(p, q) for p, q in
             zip(jax.tree_util.tree_leaves(a.discriminator.params),
                 jax.tree_util.tree_leaves(b.discriminator.params)))

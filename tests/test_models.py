"""Shapes and parameter counts of the generator and discriminator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import datasets, models, sampling, train
from gan_jax.config import ARCHS, Config


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('noise_dim', [1, 64, 100, 128])
def test_generator_output_is_image_shape_in_range(arch, noise_dim):
  generator, _ = models.make_models(arch)
  z = jax.random.normal(jax.random.PRNGKey(0), (3, noise_dim))
  variables = generator.init(jax.random.PRNGKey(1), z, train=False)
  out = generator.apply(variables, z, train=False)
  assert out.shape == (3,) + datasets.IMAGE_SHAPE
  assert out.dtype == jnp.float32
  assert float(jnp.abs(out).max()) <= 1.0


@pytest.mark.parametrize('arch', ARCHS)
def test_discriminator_gives_one_logit_per_image(arch):
  _, discriminator = models.make_models(arch)
  x = jnp.zeros((5,) + datasets.IMAGE_SHAPE)
  variables = discriminator.init(jax.random.PRNGKey(0), x, train=False)
  logits = discriminator.apply(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(1)})
  assert logits.shape == (5,)
  assert logits.dtype == jnp.float32


def test_dcgan_parameter_counts_match_the_tf_tutorial():
  state = train.create_state(Config(arch='dcgan'), jax.random.PRNGKey(0))
  assert train.param_count(state.generator.params) == 2_305_472
  assert train.param_count(state.discriminator.params) == 212_865
  # BatchNorm running statistics of the three BN layers (not trainable).
  assert train.param_count(state.generator.batch_stats) == 2 * (12544 + 128 + 64)


def test_mlp_parameter_counts():
  state = train.create_state(Config(arch='mlp'), jax.random.PRNGKey(0))
  g = (100 * 256 + 256) + (256 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
  d = (784 * 512 + 512) + (512 * 256 + 256) + (256 + 1)
  assert train.param_count(state.generator.params) == g
  assert train.param_count(state.discriminator.params) == d
  # mlp_bn: the same layers, and a BatchNorm scale and bias per hidden unit of G.
  bn = train.create_state(Config(arch='mlp_bn'), jax.random.PRNGKey(0))
  assert train.param_count(bn.generator.params) == g + 2 * (256 + 512 + 1024)
  assert train.param_count(bn.generator.batch_stats) == 2 * (256 + 512 + 1024)
  assert train.param_count(bn.discriminator.params) == d
  # mlp_wide: mlp's generator, a discriminator 784 -> 1024 -> 512 -> 256 -> 1.
  wide = train.create_state(Config(arch='mlp_wide'), jax.random.PRNGKey(0))
  assert train.param_count(wide.generator.params) == g
  assert train.param_count(wide.discriminator.params) == (
      (784 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 256 + 256) + (256 + 1))


@pytest.mark.parametrize('arch', ['dcgan', 'mlp', 'mlp_bn'])
def test_bfloat16_compute_keeps_float32_parameters_and_outputs(arch):
  state = train.create_state(Config(arch=arch, dtype='bfloat16'), jax.random.PRNGKey(0))
  leaves = jax.tree_util.tree_leaves(state.generator.params)
  assert all(leaf.dtype == jnp.float32 for leaf in leaves)
  images = sampling.generate(state, jnp.zeros((2, 100)))
  assert images.shape == (2, 28, 28, 1) and images.dtype == jnp.float32


def test_unknown_arch_is_rejected():
  with pytest.raises(ValueError, match='unknown arch'):
    models.make_models('resnet')


@pytest.mark.parametrize('arch', ARCHS)
def test_conditional_networks_take_a_label_batch(arch):
  generator, discriminator = models.make_models(arch, num_classes=10)
  z = jax.random.normal(jax.random.PRNGKey(0), (6, 100))
  labels = jnp.array([0, 1, 2, 7, 8, 9])
  g_vars = generator.init(jax.random.PRNGKey(1), z, labels, train=False)
  images = generator.apply(g_vars, z, labels, train=False)
  assert images.shape == (6,) + datasets.IMAGE_SHAPE
  assert g_vars['params']['label_embedding']['embedding'].shape == (10, models.LABEL_EMBEDDING)
  d_vars = discriminator.init(jax.random.PRNGKey(2), images, labels, train=False)
  logits, class_logits = discriminator.apply(d_vars, images, labels, train=False)
  assert logits.shape == (6,) and logits.dtype == jnp.float32
  assert class_logits.shape == (6, 10) and class_logits.dtype == jnp.float32
  # The projection term: other labels, other logits for the same images; the
  # auxiliary classifier does not see the label.
  other, other_classes = discriminator.apply(d_vars, images, (labels + 1) % 10, train=False)
  assert not jnp.allclose(logits, other)
  np.testing.assert_array_equal(class_logits, other_classes)


@pytest.mark.parametrize('arch', ['mlp', 'mlp_bn'])
def test_a_reconstructing_generator_draws_as_its_generator_and_codes_images_into_noise(arch):
  plain, _ = models.make_models(arch, num_classes=10)
  wrapped, _ = models.make_models(arch, num_classes=10, encoder_noise_dim=100)
  z = jax.random.normal(jax.random.PRNGKey(0), (6, 100))
  labels = jnp.array([0, 1, 2, 7, 8, 9])
  variables = wrapped.init(jax.random.PRNGKey(1), z, labels, train=False)
  assert set(variables['params']) == {'generator', 'encoder'}
  # Called, it is the generator with the generator's own parameters.
  inner = {k: v['generator'] for k, v in variables.items()}
  np.testing.assert_array_equal(wrapped.apply(variables, z, labels, train=False),
                                plain.apply(inner, z, labels, train=False))
  images = jnp.tanh(jax.random.normal(jax.random.PRNGKey(2), (6,) + datasets.IMAGE_SHAPE))
  rebuilt, codes = wrapped.apply(variables, images, labels, train=False,
                                 method=models.Reconstructing.reconstruct)
  assert rebuilt.shape == images.shape and codes.shape == (6, 100)
  np.testing.assert_allclose(rebuilt, plain.apply(inner, codes, labels, train=False),
                             atol=1e-6)
  # The code depends on the label too.
  _, other = wrapped.apply(variables, images, (labels + 1) % 10, train=False,
                           method=models.Reconstructing.reconstruct)
  assert not jnp.allclose(codes, other)

"""Generator and discriminator networks, in Flax linen:
* ``dcgan``: the TensorFlow DCGAN tutorial network (`gan_jax.layers`). G: Dense
  7*7*256 -> BN -> LeakyReLU(0.3) -> ConvTranspose 128 s1 / 64 s2 / 1 s2 (5x5,
  BN+LeakyReLU between) -> tanh; D: Conv 64 / 128 (5x5 s2, LeakyReLU, Dropout 0.3).
* ``mlp``: the Keras/PyTorch labs' GAN. G: noise -> 256 -> 512 -> 1024 -> 784
  (LeakyReLU 0.2, tanh out); D: 784 -> 512 -> 256 -> 1 (LeakyReLU 0.2).
* ``mlp_bn``: ``mlp`` with BatchNorm+ReLU after each hidden layer of G;
  ``mlp_wide``: ``mlp`` with D 784 -> 1024 -> 512 -> 256 -> 1, which finds
  more of what G leaves out (docs/quality.md, "Recall on Fashion-MNIST").
With ``num_classes`` > 0 both take a label: G appends a label embedding to its
noise; D adds a projection term (Miyato & Koyama 2018) and class logits, an
auxiliary classifier (AC-GAN, Odena et al. 2017). With --reconstruction, G is
`Reconstructing`, beside an `Encoder` of real images into its noise. ``dtype``
is the compute dtype; parameters and outputs stay float32.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import config, datasets, layers
Dtype = Any
Array = jnp.ndarray

# Size of the generator's label embedding in a conditional GAN.
LABEL_EMBEDDING = 32


def _with_label(module: nn.Module, z: Array, labels: Array | None) -> Array:
  """The generator input: noise, followed by the label's embedding if conditional."""
  if not module.num_classes:
    return z
  embedding = nn.Embed(module.num_classes, LABEL_EMBEDDING, name='label_embedding')
  return jnp.concatenate([z, embedding(labels).astype(z.dtype)], axis=-1)


def _logit(module: nn.Module, h: Array, labels: Array | None
           ) -> Array | tuple[Array, Array]:
  """A linear logit of features `h`, float32, shape (B,).

  If conditional: the logit plus the projection <embed(label), h>, and the
  auxiliary classifier's class logits (B, num_classes), as a pair.
  """
  logit = nn.Dense(1, dtype=module.dtype, name='logit')(h)[:, 0]
  if not module.num_classes:
    return logit.astype(jnp.float32)
  # Initialised like the logit's Dense (LeCun normal), so the projection
  # starts on the scale of the linear term.
  embedding = nn.Embed(module.num_classes, h.shape[-1], name='label_projection',
                       embedding_init=nn.initializers.normal(h.shape[-1] ** -0.5))
  logit += jnp.sum(embedding(labels).astype(h.dtype) * h, axis=-1)
  class_logits = nn.Dense(module.num_classes, dtype=module.dtype, name='class_logits')(h)
  return logit.astype(jnp.float32), class_logits.astype(jnp.float32)

# Keras' BatchNormalization epsilon, so the DCGAN matches the TF tutorial.
_BN_EPSILON = 1e-3


class DCGANGenerator(nn.Module):
  """The TF DCGAN tutorial generator: noise (B, noise_dim) -> images (B, 28, 28, 1) in [-1, 1].

  `batch_norm_momentum`: of the BatchNorm running averages (Keras' 0.99); 0
  makes a training-mode call store exactly its batch's statistics.
  `standing_stats_images`: how many images the sampling statistics average
  (`sampling.inference_variables`); fewer than the MLP's, as each costs ~40x more.
  """
  standing_stats_images: ClassVar[int] = 10_000
  dtype: Dtype = jnp.float32
  num_classes: int = 0
  batch_norm_momentum: float = 0.99

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, train: bool = True) -> Array:
    z = _with_label(self, z, labels)
    bn = lambda name: nn.BatchNorm(use_running_average=not train, dtype=self.dtype,
                                   momentum=self.batch_norm_momentum, epsilon=_BN_EPSILON,
                                   name=name)
    x = nn.Dense(7 * 7 * 256, use_bias=False, dtype=self.dtype, name='dense')(z)
    x = nn.leaky_relu(bn('bn0')(x), 0.3)
    x = x.reshape((-1, 7, 7, 256))
    x = layers.ConvTranspose(128, (5, 5), strides=(1, 1), padding='SAME', use_bias=False,
                             dtype=self.dtype, name='deconv1')(x)
    x = nn.leaky_relu(bn('bn1')(x), 0.3)
    x = layers.ConvTranspose(64, (5, 5), strides=(2, 2), padding='SAME', use_bias=False,
                             dtype=self.dtype, name='deconv2')(x)
    x = nn.leaky_relu(bn('bn2')(x), 0.3)
    x = layers.ConvTranspose(1, (5, 5), strides=(2, 2), padding='SAME', use_bias=False,
                             dtype=self.dtype, name='deconv3')(x)
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  """The TF DCGAN tutorial discriminator: images (B, 28, 28, 1) -> logits (B,)
  (conditional: and class logits (B, num_classes))."""
  dtype: Dtype = jnp.float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, train: bool = True) -> Array:
    x = x.astype(self.dtype)
    x = layers.Conv(64, (5, 5), strides=(2, 2), padding='SAME', dtype=self.dtype, name='conv1')(x)
    x = nn.Dropout(0.3, deterministic=not train)(nn.leaky_relu(x, 0.3))
    x = layers.Conv(128, (5, 5), strides=(2, 2), padding='SAME', dtype=self.dtype, name='conv2')(x)
    x = nn.Dropout(0.3, deterministic=not train)(nn.leaky_relu(x, 0.3))
    return _logit(self, x.reshape((x.shape[0], -1)), labels)


class MLPGenerator(nn.Module):
  """Fully connected generator: noise -> `widths` (256 -> 512 -> 1024) -> 784 -> (28, 28, 1).

  Hidden layers: LeakyReLU(0.2), or with `batch_norm` BatchNorm then ReLU
  (`batch_norm_momentum` as in `DCGANGenerator`). Its sampling statistics
  average 100,000 images (docs/quality.md, "Sampling statistics").
  """
  standing_stats_images: ClassVar[int] = 100_000
  dtype: Dtype = jnp.float32
  num_classes: int = 0
  batch_norm: bool = False
  batch_norm_momentum: float = 0.9
  widths: tuple[int, ...] = (256, 512, 1024)

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, train: bool = True) -> Array:
    x = _with_label(self, z, labels)
    for i, width in enumerate(self.widths):
      x = nn.Dense(width, dtype=self.dtype, name=f'dense{i}')(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.batch_norm_momentum,
                         dtype=self.dtype, name=f'bn{i}')(x)
        x = nn.relu(x)
      else:
        x = nn.leaky_relu(x, 0.2)
    x = nn.Dense(28 * 28, dtype=self.dtype, name='out')(x)
    return jnp.tanh(x.astype(jnp.float32)).reshape((-1,) + datasets.IMAGE_SHAPE)


class MLPDiscriminator(nn.Module):
  """Fully connected discriminator: (28, 28, 1) -> `widths` -> 1 logit
  (conditional: and class logits (B, num_classes)); LeakyReLU(0.2)."""
  dtype: Dtype = jnp.float32
  num_classes: int = 0
  widths: tuple[int, ...] = (512, 256)

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, train: bool = True) -> Array:
    del train
    x = x.reshape((x.shape[0], -1)).astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype, name=f'dense{i}')(x), 0.2)
    return _logit(self, x, labels)


class Encoder(nn.Module):
  """Images (B, 28, 28, 1) (conditional: and their labels, one-hot) ->
  generator noise (B, noise_dim), through `widths` (512 -> 256), LeakyReLU(0.2)."""
  noise_dim: int
  dtype: Dtype = jnp.float32
  num_classes: int = 0
  widths: tuple[int, ...] = (512, 256)

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None) -> Array:
    x = x.reshape((x.shape[0], -1)).astype(self.dtype)
    if self.num_classes:
      x = jnp.concatenate([x, jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)], -1)
    for i, width in enumerate(self.widths):
      x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype, name=f'dense{i}')(x), 0.2)
    return nn.Dense(self.noise_dim, dtype=self.dtype, name='code')(x).astype(jnp.float32)


class Reconstructing(nn.Module):
  """`generator` beside an `encoder` of real images into its noise, in one set
  of parameters, so the generator's optimizer trains both. Called, it is the
  generator; `reconstruct` draws images back from their codes."""
  generator: nn.Module
  encoder: Encoder

  @property
  def standing_stats_images(self) -> int:
    return self.generator.standing_stats_images

  def __call__(self, z: Array, labels: Array | None = None, train: bool = True) -> Array:
    if self.is_initializing():  # The encoder's parameters are made with the generator's.
      self.encoder(jnp.zeros((z.shape[0],) + datasets.IMAGE_SHAPE), labels)
    return self.generator(z, labels, train)

  def reconstruct(self, images: Array, labels: Array | None = None, train: bool = True
                  ) -> tuple[Array, Array]:
    """G(E(x), y) and the codes E(x)."""
    codes = self.encoder(images, labels)
    return self.generator(codes, labels, train), codes


def batch_statistics_network(generator: nn.Module) -> nn.Module:
  """`generator` with BatchNorm momentum 0 (`sampling.inference_variables`)."""
  if isinstance(generator, Reconstructing):
    return generator.clone(generator=batch_statistics_network(generator.generator))
  return generator.clone(batch_norm_momentum=0.0)


def make_models(arch: str, dtype: Dtype = jnp.float32, num_classes: int = 0,
                encoder_noise_dim: int = 0) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for an arch of `config.ARCHS`;
  conditional on a label in [0, num_classes) if num_classes > 0; the
  generator `Reconstructing` with an encoder into noise of that size if
  `encoder_noise_dim` > 0."""
  if arch == 'dcgan':
    generator, discriminator = (DCGANGenerator(dtype=dtype, num_classes=num_classes),
                                DCGANDiscriminator(dtype=dtype, num_classes=num_classes))
  elif arch in ('mlp', 'mlp_bn'):
    generator, discriminator = (
        MLPGenerator(dtype=dtype, num_classes=num_classes, batch_norm=arch == 'mlp_bn'),
        MLPDiscriminator(dtype=dtype, num_classes=num_classes))
  elif arch == 'mlp_wide':
    generator, discriminator = (
        MLPGenerator(dtype=dtype, num_classes=num_classes),
        MLPDiscriminator(dtype=dtype, num_classes=num_classes, widths=(1024, 512, 256)))
  else:
    raise ValueError(f'unknown arch {arch!r}; use {", ".join(config.ARCHS)}')
  if encoder_noise_dim:
    generator = Reconstructing(generator, Encoder(encoder_noise_dim, dtype=dtype,
                                                  num_classes=num_classes))
  return generator, discriminator

"""run.py with the network and optimizer variants that the quality sweep tried.

The sweeps behind docs/quality.md compared, on 10-epoch runs, changes
to the default GAN that are not (or not all) in the package: they were
measured and most were rejected, so they live here. $VARIANT names them,
comma-separated; every other flag is run.py's:

  VARIANT=bnG,mbstd python experiments/quality_variants.py --epochs=10 --workdir=runs/x

  bnG        BatchNorm + ReLU in the MLP generator (the package's `--arch=mlp_bn`)
  wideD      MLP discriminator 1024 -> 512 -> 256 (the package's `--arch=mlp_wide`)
  widerG     MLP generator 512 -> 1024 -> 1024 (instead of 256 -> 512 -> 1024)
  dropD=P    dropout P after each hidden layer of the MLP discriminator
  Dw=A-B-..  MLP discriminator with hidden widths A, B, ...
  mbstd      the minibatch standard deviation as an extra discriminator feature
  pack=M     PacGAN (Lin et al. 2018): the MLP discriminator judges M images of one
             kind (real or generated) at once, each getting their pack's logit
  convD=W    a conv discriminator: Conv W 4x4 s2 -> Conv 2W 4x4 s2 -> Dense
             (conditional runs: any arch, with the package's projection and
             class head)
  glr=X,dlr=Y  separate Adam learning rates for G and D (TTUR)
  lrdecay    both learning rates decay linearly to 0 over the run
  r1=G       R1 penalty (Mescheder et al. 2018): G/2 times the mean squared norm of
             the discriminator's gradient on real images, added to its loss
  Gw=A-B-..  the package's MLP generator with hidden widths A, B, ... (any MLP
             arch, conditional runs too)
  convG=W    a slim conv generator beside the arch's discriminator (conditional
             runs too): Dense 7x7x2W -> BN -> ConvTranspose W 5x5 s2 -> BN ->
             ConvTranspose 1 5x5 s2 -> tanh, LeakyReLU(0.2) between

Those above not marked otherwise apply to --arch=mlp (unconditional); they
replace its networks. These five change the package's networks (conditional
runs, or an --arch other than mlp) and were tried on conditional runs:
  snD        spectral normalization (Miyato et al. 2018) of the MLP
             discriminator's hidden and logit layers (the projection and class
             head are the package's)
  msD        the mode-seeking term on the discriminator's last hidden features
             instead of pixels
  tac        TAC-GAN (Gong et al. 2019, "Twin Auxiliary Classifiers GAN"): a
             twin class head on the discriminator's features learns the class
             of generated images, and the generator subtracts its loss from the
             auxiliary classifier's, so that it matches each class's
             distribution instead of drawing only its most easily classified
             images (both weighted --class_loss_weight)
  labelG     the conditional MLP generator takes the label's embedding at every
             hidden layer's input, not only beside the noise
  resG=W     the MLP generator plus a conv branch from its last hidden layer
             (Dense 7x7xW -> ConvTranspose W/2 5x5 s2 -> ConvTranspose 1 5x5
             s2, LeakyReLU(0.2) between) added to its output before the tanh
"""

from __future__ import annotations

import os
import sys
from typing import ClassVar

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from gan_jax import xla_setup  # pylint: disable=g-import-not-at-top

xla_setup.use_fast_cpu_settings()  # Before jax is imported.

import jax  # pylint: disable=g-import-not-at-top
import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top

from gan_jax import cli, layers, models, train  # pylint: disable=g-import-not-at-top

VARIANT = set(filter(None, os.environ.get('VARIANT', '').split(',')))


def option(name: str, default):
  """The value of NAME=value in $VARIANT, else `default`."""
  for v in VARIANT:
    if v.startswith(name + '='):
      return type(default)(v.split('=', 1)[1])
  return default


class Generator(nn.Module):
  standing_stats_images: ClassVar[int] = models.MLPGenerator.standing_stats_images
  dtype: object = jnp.float32
  num_classes: int = 0
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    x = z
    widths = (512, 1024, 1024) if 'widerG' in VARIANT else (256, 512, 1024)
    for i, w in enumerate(widths):
      x = nn.Dense(w, name=f'dense{i}')(x)
      if 'bnG' in VARIANT:
        x = nn.relu(nn.BatchNorm(use_running_average=not train,
                                 momentum=self.batch_norm_momentum)(x))
      else:
        x = nn.leaky_relu(x, 0.2)
    return jnp.tanh(nn.Dense(784, name='out')(x)).reshape((-1, 28, 28, 1))


class Discriminator(nn.Module):
  dtype: object = jnp.float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    n = x.shape[0]
    pack = option('pack', 1)
    if n % pack:  # Initialisation's single image: a pack of copies.
      x = jnp.repeat(x, pack, axis=0)
    x = x.reshape((x.shape[0] // pack, -1))
    drop = option('dropD', 0.0)
    widths = (1024, 512, 256) if 'wideD' in VARIANT else (512, 256)
    if option('Dw', ''):
      widths = tuple(int(w) for w in option('Dw', '').split('-'))
    for i, w in enumerate(widths):
      x = nn.leaky_relu(nn.Dense(w, name=f'dense{i}')(x), 0.2)
      if drop:
        x = nn.Dropout(drop, deterministic=not train)(x)
    if 'mbstd' in VARIANT:
      sd = jnp.sqrt(jnp.var(x, axis=0) + 1e-8).mean()
      x = jnp.concatenate([x, jnp.full((x.shape[0], 1), sd)], 1)
    return jnp.repeat(nn.Dense(1, name='logit')(x)[:, 0], pack)[:n]


class ConvGenerator(nn.Module):
  standing_stats_images: ClassVar[int] = 10_000
  dtype: object = jnp.float32
  num_classes: int = 0
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    w = option('convG', 32)
    bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=self.batch_norm_momentum)
    x = models._with_label(self, z, labels)  # pylint: disable=protected-access
    x = nn.leaky_relu(bn()(nn.Dense(7 * 7 * 2 * w, use_bias=False)(x)), 0.2)
    x = x.reshape((-1, 7, 7, 2 * w))
    x = layers.ConvTranspose(w, (5, 5), strides=(2, 2), padding='SAME', use_bias=False)(x)
    x = nn.leaky_relu(bn()(x), 0.2)
    x = layers.ConvTranspose(1, (5, 5), strides=(2, 2), padding='SAME')(x)
    return jnp.tanh(x.astype(jnp.float32))


class ConvDiscriminator(nn.Module):
  dtype: object = jnp.float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    w = option('convD', 32)
    x = nn.leaky_relu(layers.Conv(w, (4, 4), strides=(2, 2))(x), 0.2)
    x = nn.leaky_relu(layers.Conv(2 * w, (4, 4), strides=(2, 2))(x), 0.2)
    if self.num_classes:  # The package's logit, projection and class head.
      return models._logit(self, x.reshape((x.shape[0], -1)), labels)  # pylint: disable=protected-access
    return nn.Dense(1)(x.reshape((x.shape[0], -1)))[:, 0]


def _spectral_norm(kernel, iterations=10):
  """`kernel` (in, out) over its largest singular value, estimated by power
  iteration from a fixed vector (no state kept between steps)."""
  u = jax.random.normal(jax.random.PRNGKey(0), (kernel.shape[1],), kernel.dtype)
  w = jax.lax.stop_gradient(kernel)
  for _ in range(iterations):
    v = w @ u
    v /= jnp.linalg.norm(v) + 1e-12
    u = (v[None] @ w)[0]  # v @ w: XLA:CPU runs this form ~10x faster than w.T @ v.
    u /= jnp.linalg.norm(u) + 1e-12
  return kernel / (v @ kernel @ u)


class SNDense(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return x @ _spectral_norm(kernel) + bias


def _hidden_features(x, widths, dense=nn.Dense):
  """The MLP discriminator's hidden layers (`dense{i}`, LeakyReLU 0.2) on
  images x; called inside a compact module, which owns the layers."""
  h = x.reshape((x.shape[0], -1))
  for i, w in enumerate(widths):
    h = nn.leaky_relu(dense(w, name=f'dense{i}')(h), 0.2)
  return h


class SNDiscriminator(nn.Module):
  """The package's MLP discriminator with spectrally normalized layers."""
  dtype: object = jnp.float32
  num_classes: int = 0
  widths: tuple = (512, 256)

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    h = _hidden_features(x, self.widths, SNDense)
    logit = SNDense(1, name='logit')(h)[:, 0]
    if not self.num_classes:
      return logit
    embedding = nn.Embed(self.num_classes, h.shape[-1], name='label_projection',
                         embedding_init=nn.initializers.normal(h.shape[-1] ** -0.5))
    logit += jnp.sum(embedding(labels) * h, axis=-1)
    return logit, nn.Dense(self.num_classes, name='class_logits')(h)


class LabelEveryLayerGenerator(nn.Module):
  """The package's MLP generator (no BatchNorm) with the label embedding
  appended to the input of every layer."""
  standing_stats_images: ClassVar[int] = models.MLPGenerator.standing_stats_images
  dtype: object = jnp.float32
  num_classes: int = 0
  batch_norm_momentum: float = 0.9
  widths: tuple = (256, 512, 1024)

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    e = nn.Embed(self.num_classes, models.LABEL_EMBEDDING, name='label_embedding')(labels)
    x = z
    for i, w in enumerate(self.widths):
      x = nn.leaky_relu(nn.Dense(w, name=f'dense{i}')(jnp.concatenate([x, e], -1)), 0.2)
    x = nn.Dense(28 * 28, name='out')(jnp.concatenate([x, e], -1))
    return jnp.tanh(x).reshape((-1, 28, 28, 1))


class MLPConvGenerator(nn.Module):
  """The package's MLP generator (no BatchNorm) with a conv branch from its
  last hidden layer added to its output before the tanh."""
  standing_stats_images: ClassVar[int] = models.MLPGenerator.standing_stats_images
  dtype: object = jnp.float32
  num_classes: int = 0
  batch_norm_momentum: float = 0.9
  widths: tuple = (256, 512, 1024)

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    w = option('resG', 32)
    x = models._with_label(self, z, labels)  # pylint: disable=protected-access
    for i, width in enumerate(self.widths):
      x = nn.leaky_relu(nn.Dense(width, name=f'dense{i}')(x), 0.2)
    out = nn.Dense(28 * 28, name='out')(x).reshape((-1, 28, 28, 1))
    y = nn.leaky_relu(nn.Dense(7 * 7 * w, name='branch')(x), 0.2).reshape((-1, 7, 7, w))
    y = nn.leaky_relu(layers.ConvTranspose(w // 2, (5, 5), strides=(2, 2), padding='SAME')(y), 0.2)
    y = layers.ConvTranspose(1, (5, 5), strides=(2, 2), padding='SAME')(y)
    return jnp.tanh(out + y)


class TACDiscriminator(nn.Module):
  """The package's MLP discriminator with a twin class head: its class logits
  are (B, 2C), the auxiliary classifier's then the twin's."""
  dtype: object = jnp.float32
  num_classes: int = 0
  widths: tuple = (512, 256)

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    h = _hidden_features(x, self.widths)
    logit, class_logits = models._logit(self, h, labels)  # pylint: disable=protected-access
    twin = nn.Dense(self.num_classes, name='twin_logits')(h)
    return logit, jnp.concatenate([class_logits, twin], axis=-1)


_make_models = models.make_models
_create_state = train.create_state


def make_models(arch, dtype=jnp.float32, num_classes=0, encoder_noise_dim=0):
  if arch != 'mlp' or num_classes or option('convG', 0) or option('Gw', ''):
    generator, discriminator = _make_models(arch, dtype, num_classes, encoder_noise_dim)
    if option('convG', 0):
      generator = ConvGenerator(num_classes=num_classes)
    if option('Gw', ''):
      generator = generator.clone(widths=tuple(int(w) for w in option('Gw', '').split('-')))
    if num_classes and option('convD', 0):
      discriminator = ConvDiscriminator(num_classes=num_classes)
    if option('resG', 0):
      generator = MLPConvGenerator(num_classes=num_classes)
    if 'labelG' in VARIANT and num_classes:
      generator = LabelEveryLayerGenerator(num_classes=num_classes)
    if encoder_noise_dim and not isinstance(generator, models.Reconstructing):
      sys.exit(f'VARIANT={",".join(sorted(VARIANT))} replaces the generator, which then '
               'has no encoder for --reconstruction; add --reconstruction=0')
    if 'tac' in VARIANT:
      discriminator = TACDiscriminator(num_classes=num_classes, widths=discriminator.widths)
    if 'snD' in VARIANT:
      discriminator = SNDiscriminator(num_classes=num_classes, widths=discriminator.widths)
    return generator, discriminator
  return Generator(), ConvDiscriminator() if option('convD', 0) else Discriminator()


def create_state(config, rng):
  state = _create_state(config, rng)
  g_lr = option('glr', 0.0) or config.learning_rate
  d_lr = option('dlr', 0.0) or config.learning_rate
  if 'lrdecay' in VARIANT:
    total = config.epochs * ((config.limit or 60000) // config.batch_size)
    g_lr, d_lr = (optax.linear_schedule(lr, 0.0, total) for lr in (g_lr, d_lr))
  g = state.generator.replace(tx=optax.adam(g_lr, b1=config.beta1))
  d = state.discriminator.replace(tx=optax.adam(d_lr, b1=config.beta1))
  return state.replace(generator=g.replace(opt_state=g.tx.init(g.params)),
                       discriminator=d.replace(opt_state=d.tx.init(d.params)))


_discriminator_update = train._discriminator_update  # pylint: disable=protected-access


def _update_discriminator(state, batch, fake, fake_labels, rng, extra_loss):
  """train._discriminator_update's adversarial loss plus `extra_loss(params,
  class_logits)` (in place of its class loss), the same update and metrics."""
  n = batch['image'].shape[0]
  images = jnp.concatenate([batch['image'], jax.lax.stop_gradient(fake)])
  labels = jnp.concatenate([batch['label'], fake_labels])
  d = state.discriminator

  def loss_fn(params):
    logits, class_logits = train._discriminate(state, params, images, labels,  # pylint: disable=protected-access
                                               jax.random.fold_in(rng, 1))
    real, fake_logits = logits[:n], logits[n:]
    loss = train.LOSSES[state.loss].discriminator(real, fake_logits, 1.0 - state.label_smoothing)
    loss += extra_loss(params, class_logits)
    return loss, (real, fake_logits)

  (loss, (real, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
  accuracy = 0.5 * (jnp.mean(real > 0) + jnp.mean(fake_logits < 0))
  return (state.replace(discriminator=d.apply_gradients(grads=grads)),
          {'d_loss': loss, 'd_acc': accuracy})


def discriminator_update(state, batch, fake, fake_labels, rng):
  """train._discriminator_update, with the R1 penalty in its loss (`r1`,
  unconditional runs) or the twin head learning the generated images' classes
  (`tac`)."""
  n = batch['image'].shape[0]
  if 'tac' in VARIANT:
    c = state.num_classes
    return _update_discriminator(
        state, batch, fake, fake_labels, rng,
        lambda params, class_logits: state.class_loss_weight * (
            train.class_loss(class_logits[:n, :c], batch['label'])
            + train.class_loss(class_logits[n:, c:], fake_labels)))
  gamma = option('r1', 0.0)
  if not gamma or state.num_classes:
    return _discriminator_update(state, batch, fake, fake_labels, rng)

  def r1_penalty(params, class_logits):
    del class_logits
    grads = jax.grad(lambda x: train._discriminate(  # pylint: disable=protected-access
        state, params, x, batch['label'], jax.random.fold_in(rng, 1))[0].sum())(batch['image'])
    return 0.5 * gamma * jnp.mean(jnp.sum(grads ** 2, axis=(1, 2, 3)))

  return _update_discriminator(state, batch, fake, fake_labels, rng, r1_penalty)


_fooling_loss = train._fooling_loss  # pylint: disable=protected-access


def tac_fooling_loss(state, fake, z, labels, rng):
  """train._fooling_loss with the twin head's class loss subtracted."""
  c = state.num_classes
  logits, class_logits = train._discriminate(state, state.discriminator.params, fake,  # pylint: disable=protected-access
                                             labels, jax.random.fold_in(rng, 2))
  loss = train.LOSSES[state.loss].generator(logits)
  loss += state.class_loss_weight * (train.class_loss(class_logits[:, :c], labels)
                                     - train.class_loss(class_logits[:, c:], labels))
  if state.mode_seeking:
    loss += state.mode_seeking * train.mode_seeking_loss(fake, z)
  return loss


def feature_mode_seeking_fooling_loss(state, fake, z, labels, rng):
  """train._fooling_loss with the mode-seeking term on the discriminator's last
  hidden features (before the activation), each feature's distance measured in
  units of the batch's mean absolute feature, so weights compare with pixels'."""
  last = f'dense{len(state.discriminator.apply_fn.__self__.widths) - 1}'
  out, inter = state.discriminator.apply_fn(
      {'params': state.discriminator.params}, fake, labels, train=True,
      rngs={'dropout': jax.random.fold_in(rng, 2)}, mutable=['intermediates'],
      capture_intermediates=lambda mdl, _: mdl.name == last)
  logits, class_logits = out if state.num_classes else (out, None)
  h = inter['intermediates'][last]['__call__'][0]
  loss = train.LOSSES[state.loss].generator(logits)
  if state.class_loss_weight:
    loss += state.class_loss_weight * train.class_loss(class_logits, labels)
  half = h.shape[0] // 2
  scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(h))) + 1e-8
  features = jnp.mean(jnp.abs(h[:half] - h[half:2 * half]), axis=1) / scale
  noise = jnp.mean(jnp.abs(z[:half] - z[half:2 * half]), axis=1)
  return loss + state.mode_seeking / (jnp.mean(features / noise) + 1e-5)


def fooling_loss(state, fake, z, labels, rng):
  """train._fooling_loss, or the `tac` or `msD` variant's."""
  if 'tac' in VARIANT:
    return tac_fooling_loss(state, fake, z, labels, rng)
  if 'msD' in VARIANT and state.mode_seeking:
    return feature_mode_seeking_fooling_loss(state, fake, z, labels, rng)
  return _fooling_loss(state, fake, z, labels, rng)


models.make_models = make_models
train.create_state = create_state
train._discriminator_update = discriminator_update  # pylint: disable=protected-access
train._fooling_loss = fooling_loss  # pylint: disable=protected-access

if __name__ == '__main__':
  cli.run()

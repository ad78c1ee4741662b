"""Train state, pure train steps, and the device-side epoch loop.

The steps are pure ``(state, batch, rng) -> (state, metrics)`` with ``batch =
{'image': (B, 28, 28, 1) in [-1, 1], 'label': (B,)}`` (labels are read by
conditional GANs only): `discriminator_step` (real -> 1, generated -> 0) and
`generator_step` (generated -> 1) in the terms of a loss of `LOSSES` (--loss),
each plus the weighted AC-GAN `class_loss` if conditional (the generator's also
`mode_seeking_loss`, `reconstruction_loss`), and `train_step`, both in one.

`run_chunk` runs many steps in one jitted `lax.scan` with the state donated,
so Python touches the loop once per chunk, on every backend (`gan_jax.layers`
keeps XLA:CPU's convolutions fast inside it). Batches come sharded over a
``'data'`` mesh axis with the state replicated, on one device or many, in one
process or several (`gan_jax.multihost`); XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax import augment as augment_lib
from gan_jax import config as config_lib, datasets, models, presets
from gan_jax.config import Config

Metrics = dict[str, jnp.ndarray]
Batch = dict[str, jax.Array]  # {'image': (B, 28, 28, 1), 'label': (B,) int32}
METRIC_NAMES = ('d_loss', 'd_acc', 'g_loss')


class TrainState(train_state.TrainState):
  """A Flax TrainState that also carries BatchNorm statistics ({} if none)."""
  batch_stats: Any = None


@struct.dataclass
class GANState:
  """Both networks' states, and an exponential moving average of the generator.

  `generator_ema` holds the EMA of the generator's parameters; samples and
  evaluations use it when `ema_decay` > 0. `noise_dim`, `ema_decay`,
  `label_smoothing`, `num_classes` (0: unconditional), `class_loss_weight`,
  `mode_seeking` (the weight of `mode_seeking_loss`), `reconstruction` (of
  `reconstruction_loss`) and the standing statistics' settings are static.
  """
  generator: TrainState
  discriminator: TrainState
  generator_ema: Any
  noise_dim: int = struct.field(pytree_node=False, default=100)
  ema_decay: float = struct.field(pytree_node=False, default=0.0)
  label_smoothing: float = struct.field(pytree_node=False, default=0.0)
  loss: str = struct.field(pytree_node=False, default='ns')  # A key of LOSSES.
  num_classes: int = struct.field(pytree_node=False, default=0)
  class_loss_weight: float = struct.field(pytree_node=False, default=0.0)
  mode_seeking: float = struct.field(pytree_node=False, default=0.0)
  reconstruction: float = struct.field(pytree_node=False, default=0.0)
  # What the discriminator sees of real and generated images goes through
  # this differentiable augmentation policy (`augment.parse`); () none.
  augment: tuple[str, ...] = struct.field(pytree_node=False, default=())
  # The generator's apply function with BatchNorm momentum 0: a training-mode
  # call stores its batch's statistics (`sampling.inference_variables`). None without BatchNorm.
  batch_statistics_fn: Any = struct.field(pytree_node=False, default=None)
  # Those statistics average this many batches of this many images.
  standing_stats_batches: int = struct.field(pytree_node=False, default=0)
  standing_stats_batch_size: int = struct.field(pytree_node=False, default=32)

  @property
  def sampling_params(self) -> Any:
    """The generator parameters to sample with: the EMA if one is kept."""
    return self.generator_ema if self.ema_decay > 0 else self.generator.params


@functools.partial(jax.jit, static_argnums=0)
def _init(module: Any, rng: jax.Array, *inputs: jax.Array) -> dict[str, Any]:
  """`module.init` compiled once per network (eagerly, each operation is
  compiled on its own: seconds on CPU); the module is a static argument, so
  a second state of the same network reuses the compilation."""
  return module.init(rng, *inputs, train=False)


def create_state(config: Config, rng: jax.Array) -> GANState:
  """Initialises both networks and their Adam optimizers.

  Args:
    config: uses arch (unset: the dataset's default), dtype, noise_dim,
      learning_rate, beta1, ema_decay, label_smoothing, loss, conditional,
      class_loss_weight, mode_seeking and reconstruction (> 0: the generator
      has an encoder, `models.Reconstructing`).
    rng: the initialisation key.
  """
  config = config_lib.resolve(config)
  num_classes = datasets.get(config.dataset).num_classes if config.conditional else 0
  generator, discriminator = models.make_models(
      config.arch, jnp.dtype(config.dtype), num_classes,
      encoder_noise_dim=config.noise_dim if config.reconstruction else 0)
  g_rng, d_rng = jax.random.split(rng)
  labels = jnp.zeros((1,), jnp.int32)
  g_vars = _init(generator, g_rng, jnp.zeros((1, config.noise_dim)), labels)
  d_vars = _init(discriminator, d_rng, jnp.zeros((1,) + datasets.IMAGE_SHAPE), labels)

  def make(module, variables):
    return TrainState.create(
        apply_fn=module.apply, params=variables['params'],
        batch_stats=variables.get('batch_stats', {}),
        tx=optax.adam(config.learning_rate, b1=config.beta1))

  g_state = make(generator, g_vars)
  has_batch_norm = bool(g_vars.get('batch_stats'))
  # The images per batch of the standing statistics (None: the training batch's).
  standing = (presets.get(config.dataset, config.conditional).standing_batch
              or config.batch_size)
  return GANState(generator=g_state,
                  discriminator=make(discriminator, d_vars),
                  generator_ema=jax.tree_util.tree_map(jnp.copy, g_state.params),
                  noise_dim=config.noise_dim, ema_decay=config.ema_decay,
                  label_smoothing=config.label_smoothing, loss=config.loss,
                  num_classes=num_classes,
                  class_loss_weight=config.class_loss_weight,
                  mode_seeking=config.mode_seeking,
                  reconstruction=config.reconstruction,
                  augment=augment_lib.parse(config.augment),
                  batch_statistics_fn=(models.batch_statistics_network(generator).apply
                                       if has_batch_norm else None),
                  standing_stats_batches=-(-generator.standing_stats_images // standing),
                  standing_stats_batch_size=standing)


def _with_generator(state: GANState, g: TrainState) -> GANState:
  """Puts the updated generator in `state` and moves its EMA towards it.

  The decay ramps up as min(ema_decay, (1 + t) / (10 + t)) with t the
  generator's step (as tf.train.ExponentialMovingAverage with num_updates), so
  early evaluations are not dominated by the random initial weights.
  """
  if state.ema_decay <= 0:
    return state.replace(generator=g)
  t = g.step.astype(jnp.float32)
  decay = jnp.minimum(state.ema_decay, (1.0 + t) / (10.0 + t))
  ema = optax.incremental_update(g.params, state.generator_ema, step_size=1.0 - decay)
  return state.replace(generator=g, generator_ema=ema)


def _variables(state: TrainState, params: Any) -> dict[str, Any]:
  if state.batch_stats:
    return {'params': params, 'batch_stats': state.batch_stats}
  return {'params': params}


def _noise(state: GANState, rng: jax.Array, batch_size: int) -> jax.Array:
  # Both steps of one train_step derive the same noise from the step rng.
  return jax.random.normal(jax.random.fold_in(rng, 0), (batch_size, state.noise_dim))


def generate_train(g: TrainState, params: Any, z: jax.Array, labels: jax.Array
                    ) -> tuple[jax.Array, Any]:
  """Generator forward in training mode; returns images and new batch stats."""
  images, updates = g.apply_fn(_variables(g, params), z, labels, train=True,
                               mutable=['batch_stats'])
  return images, updates.get('batch_stats', g.batch_stats)


def _bce(logits: jax.Array, label: float) -> jax.Array:
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


@dataclasses.dataclass(frozen=True)
class Loss:
  """An adversarial loss on the discriminator's logits.

  `discriminator(real, fake, real_target)`: its loss on real and generated
  logits (B,), with `real_target` the smoothed target of real images (1 -
  --label_smoothing; the hinge loss has no target and ignores it);
  `generator(fake)`: the generator's loss on the logits of its images.
  """
  discriminator: Callable[[jax.Array, jax.Array, float], jax.Array]
  generator: Callable[[jax.Array], jax.Array]


# --loss: name -> formula. Each is a few lines; tests/test_train.py checks each
# on a tiny input.
LOSSES: dict[str, Loss] = {
    # Non-saturating (Goodfellow et al. 2014): BCE, real -> target, fake -> 0;
    # the generator maximises log D(G(z)).
    'ns': Loss(discriminator=lambda real, fake, t: _bce(real, t) + _bce(fake, 0.0),
               generator=lambda fake: _bce(fake, 1.0)),
    # Hinge (Lim & Ye 2017; Miyato et al. 2018).
    'hinge': Loss(discriminator=lambda real, fake, t: (jax.nn.relu(1.0 - real).mean()
                                                        + jax.nn.relu(1.0 + fake).mean()),
                  generator=lambda fake: -fake.mean()),
    # Least squares (Mao et al. 2017): real -> target, fake -> 0, generator -> 1.
    'ls': Loss(discriminator=lambda real, fake, t: 0.5 * (jnp.mean((real - t) ** 2)
                                                          + jnp.mean(fake ** 2)),
               generator=lambda fake: 0.5 * jnp.mean((fake - 1.0) ** 2)),
}


def class_loss(class_logits: jax.Array, labels: jax.Array) -> jax.Array:
  """The auxiliary classifier's loss (AC-GAN): the mean softmax cross-entropy
  of class logits (B, C) against integer labels (B,)."""
  return optax.softmax_cross_entropy_with_integer_labels(class_logits, labels).mean()


def mode_seeking_loss(fake: jax.Array, z: jax.Array) -> jax.Array:
  """The mode-seeking term (Mao et al. 2019, "Mode Seeking Generative
  Adversarial Networks"): 1 / (mean over pairs of |G(z1) - G(z2)| / |z1 - z2|),
  mean absolute differences, the pairs being images i and i + B/2 of a batch.

  Small when different noise gives different images, so the generator is
  pushed to spread its images over more of the data rather than a few kinds
  of each (docs/quality.md, "Recall on Fashion-MNIST").
  """
  half = fake.shape[0] // 2
  images = jnp.mean(jnp.abs(fake[:half] - fake[half:2 * half]), axis=(1, 2, 3))
  noise = jnp.mean(jnp.abs(z[:half] - z[half:2 * half]), axis=1)
  return 1.0 / (jnp.mean(images / noise) + 1e-5)


def reconstruction_loss(g: TrainState, params: Any, batch: Batch) -> jax.Array:
  """MDGAN's manifold step (Che et al. 2017): the mean squared pixel error of
  G(E(x), y) on the real batch, so that every real image has noise that draws
  it, plus the codes' batch mean and variance against the noise's 0 and 1, so
  that those are codes the noise draws. BatchNorm normalises with the codes'
  batch and its running averages are left as they are."""
  (rebuilt, codes), _ = g.apply_fn(_variables(g, params), batch['image'], batch['label'],
                                   train=True, mutable=['batch_stats'],
                                   method=models.Reconstructing.reconstruct)
  moments = jnp.mean(jnp.mean(codes, 0) ** 2) + jnp.mean((jnp.var(codes, 0) - 1) ** 2)
  return jnp.mean((rebuilt - batch['image']) ** 2) + moments


def generator_labels(state: GANState, labels: jax.Array) -> jax.Array:
  """The labels the generator draws for a batch whose real labels are `labels`.

  The same labels, except that a conditional GAN with the mode-seeking term
  repeats the first half's labels in the second half: the term then compares
  two images of one class from different noise (as Mao et al. pair noise under
  one condition), rather than images that differ mostly by their class.
  """
  if not (state.num_classes and state.mode_seeking):
    return labels
  half = labels.shape[0] // 2
  return jnp.concatenate([labels[:half], labels[:half], labels[2 * half:]])


def _discriminate(state: GANState, params: Any, images: jax.Array, labels: jax.Array,
                  rng: jax.Array) -> tuple[jax.Array, jax.Array | None]:
  """The discriminator in training mode: real/fake logits (B,) and, if the GAN
  is conditional, class logits (B, C) (else None)."""
  out = state.discriminator.apply_fn({'params': params}, images, labels, train=True,
                                     rngs={'dropout': rng})
  return out if state.num_classes else (out, None)


def _discriminator_update(state: GANState, batch: Batch, fake: jax.Array,
                          fake_labels: jax.Array, rng: jax.Array) -> tuple[GANState, Metrics]:
  """Updates the discriminator on real `batch` (-> 1) and generated `fake`
  of classes `fake_labels` (-> 0)."""
  n = batch['image'].shape[0]
  images = jnp.concatenate([batch['image'], jax.lax.stop_gradient(fake)])
  images = augment_lib.apply(state.augment, images, jax.random.fold_in(rng, 3))
  labels = jnp.concatenate([batch['label'], fake_labels])
  d = state.discriminator

  def loss_fn(params):
    # Real and fake in one call: one larger batch is faster than two.
    logits, class_logits = _discriminate(state, params, images, labels,
                                         jax.random.fold_in(rng, 1))
    real, fake_logits = logits[:n], logits[n:]
    # One-sided label smoothing: real images -> 1 - label_smoothing.
    loss = LOSSES[state.loss].discriminator(real, fake_logits, 1.0 - state.label_smoothing)
    if state.class_loss_weight:
      # The classifier learns from real images only, so it is not taught the
      # generator's mistakes.
      loss += state.class_loss_weight * class_loss(class_logits[:n], batch['label'])
    return loss, (real, fake_logits)

  (loss, (real, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
  accuracy = 0.5 * (jnp.mean(real > 0) + jnp.mean(fake_logits < 0))
  return (state.replace(discriminator=d.apply_gradients(grads=grads)),
          {'d_loss': loss, 'd_acc': accuracy})


def _fooling_loss(state: GANState, fake: jax.Array, z: jax.Array, labels: jax.Array,
                  rng: jax.Array) -> jax.Array:
  """The generator's adversarial loss (`LOSSES[state.loss]`), plus the
  weighted class loss of D's classifier against the requested `labels` and
  the weighted `mode_seeking_loss` of `fake` made from noise `z`. The
  discriminator judges `fake` through `state.augment`, as it learned to."""
  seen = augment_lib.apply(state.augment, fake, jax.random.fold_in(rng, 4))
  logits, class_logits = _discriminate(state, state.discriminator.params, seen, labels,
                                       jax.random.fold_in(rng, 2))
  loss = LOSSES[state.loss].generator(logits)
  if state.class_loss_weight:
    loss += state.class_loss_weight * class_loss(class_logits, labels)
  if state.mode_seeking:
    loss += state.mode_seeking * mode_seeking_loss(fake, z)
  return loss


def discriminator_step(state: GANState, batch: Batch, rng: jax.Array
                       ) -> tuple[GANState, Metrics]:
  """One discriminator update: real -> 1, generated -> 0.

  Args:
    state: both networks; only the discriminator changes.
    batch: {'image': real images (B, 28, 28, 1) in [-1, 1], 'label': (B,)}.
    rng: the step's key.

  Returns:
    The new state and {'d_loss', 'd_acc'} (accuracy over real and fake).
  """
  labels = generator_labels(state, batch['label'])
  fake, _ = generate_train(state.generator, state.generator.params,
                            _noise(state, rng, batch['image'].shape[0]), labels)
  return _discriminator_update(state, batch, fake, labels, rng)


def generator_step(state: GANState, batch: Batch, rng: jax.Array
                   ) -> tuple[GANState, Metrics]:
  """One generator update (generated -> 1, in the terms of `state.loss`).

  Args:
    state: both networks; only the generator (and its BatchNorm stats) changes.
    batch: the number of images and their labels (and, with a reconstruction
      weight, the real images the encoder codes).
    rng: the step's key (the same as the discriminator step's: same noise).

  Returns:
    The new state and {'g_loss'}.
  """
  g = state.generator
  z = _noise(state, rng, batch['image'].shape[0])
  labels = generator_labels(state, batch['label'])

  def loss_fn(params):
    fake, batch_stats = generate_train(g, params, z, labels)
    loss = _fooling_loss(state, fake, z, labels, rng)
    if state.reconstruction:
      loss += state.reconstruction * reconstruction_loss(g, params, batch)
    return loss, batch_stats

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
  g = g.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
  return _with_generator(state, g), {'g_loss': loss}


def train_step(state: GANState, batch: Batch, rng: jax.Array
               ) -> tuple[GANState, Metrics]:
  """`discriminator_step` then `generator_step`, with one generator forward pass.

  Computes what the two steps compute one after the other (the generator is
  judged by the updated discriminator; tests check the equality), but the
  generated batch is made once: its `jax.vjp` is kept and the generator's
  gradient is pulled back through it, which XLA does not do by itself.
  """
  g = state.generator
  z = _noise(state, rng, batch['image'].shape[0])
  labels = generator_labels(state, batch['label'])
  fake, pull_back, batch_stats = jax.vjp(
      lambda params: generate_train(g, params, z, labels), g.params, has_aux=True)
  state, d_metrics = _discriminator_update(state, batch, fake, labels, rng)
  g_loss, d_fake = jax.value_and_grad(_fooling_loss, argnums=1)(
      state, fake, z, labels, rng)
  (grads,) = pull_back(d_fake)
  if state.reconstruction:
    rebuilt, rebuilt_grads = jax.value_and_grad(
        lambda params: state.reconstruction * reconstruction_loss(g, params, batch))(g.params)
    g_loss += rebuilt
    grads = jax.tree_util.tree_map(jnp.add, grads, rebuilt_grads)
  g = g.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
  return _with_generator(state, g), {**d_metrics, 'g_loss': g_loss}


def train_batch(state: GANState, batch: Batch, rng: jax.Array
                ) -> tuple[GANState, Metrics]:
  """`train_step` with the step number folded into the run's key, so results do
  not depend on how an epoch is cut into chunks or resumed."""
  return train_step(state, batch, jax.random.fold_in(rng, state.generator.step))


def train_chunk(state: GANState, batches: Batch, rng: jax.Array
                ) -> tuple[GANState, Metrics]:
  """Runs one `train_batch` per row of `batches` ({'image': (steps, batch, 28,
  28, 1), 'label': (steps, batch)}) in one `lax.scan`, so Python touches the
  loop once per chunk.

  Returns:
    The new state and the sums over the chunk's steps of each metric.
  """
  state, metrics = jax.lax.scan(lambda s, batch: train_batch(s, batch, rng), state, batches)
  return state, jax.tree_util.tree_map(jnp.sum, metrics)


# The state is donated: the chunk updates it in place.
run_chunk = jax.jit(train_chunk, donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=('num_examples', 'steps', 'batch_size'))
def epoch_batches(key: jax.Array, num_examples: int, steps: int, batch_size: int
                  ) -> jax.Array:
  """Fresh permutations of the training set, cut into (steps, batch_size) rows.

  One permutation of `key` when steps * batch_size fits in the set, else as
  many more (each of its own key) as the steps need: an epoch of several
  passes over a small set. The last partial batch is dropped (a different
  subset each epoch), so every step has a full batch.
  """
  passes = max(1, -(-steps * batch_size // num_examples))
  perm = jnp.concatenate([jax.random.permutation(key if p == 0 else jax.random.fold_in(key, p),
                                                 num_examples) for p in range(passes)])
  return perm[:steps * batch_size].reshape(steps, batch_size).astype(jnp.int32)


def make_mesh() -> Mesh:
  """A 1-D mesh over every device, axis 'data'."""
  return Mesh(np.asarray(jax.devices()), ('data',))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Puts every array of `tree` on every device of `mesh`."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def param_count(params: Any) -> int:
  """The number of scalars in a parameter tree."""
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))

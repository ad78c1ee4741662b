"""The domain classifier: a small Flax CNN per dataset, its training, and inference.

As in TF-GAN's MNIST example, sample quality is judged by a classifier trained
on the real data: its penultimate-layer features feed the Fréchet distance and
its class probabilities the classifier Inception Score (`gan_jax.quality`),
and it labels the final images (`gan_jax.labels`). Trained classifiers are
kept, shipped and loaded by `gan_jax.classifier_store`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import datasets, input_pipeline, layers

# Bump when the network, preprocessing or default training change: stored
# classifiers of another version are refused (classifier_store).
MODEL_VERSION = 'cnn16-32-d128-v1'

NUM_CLASSES = 10  # The built-in datasets'; a folder's classifier has one output per class.
EVAL_BATCH_SIZE = 500  # Inference batch: every call pads to it, one compile.

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the classifier is trained (recorded in classifier.json).

  Attributes:
    epochs: passes over the training split.
    batch_size: training batch size.
    learning_rate: peak Adam learning rate (cosine-decayed to 0).
    max_shift: random translation of up to this many pixels (0: none).
    seed: seeds initialisation, shuffling, dropout and shifts.
    train_limit: use only the first `train_limit` training examples (tests).
    test_limit: measure accuracy on only the first `test_limit` test examples.
    steps: train exactly this many steps instead of `epochs` passes, so that
      sets of different sizes get the same training (the augmentation check).
  """
  epochs: int = 4
  batch_size: int = 128
  learning_rate: float = 2e-3
  max_shift: int = 0
  seed: int = 0
  train_limit: int | None = None
  test_limit: int | None = None
  steps: int | None = None


def default_train_config(dataset: str) -> TrainConfig:
  """The settings of the shipped classifiers (figures in docs/quality.md)."""
  record = datasets.get(dataset)
  return TrainConfig(epochs=record.classifier_epochs, steps=record.classifier_steps)


class CNN(nn.Module):
  """conv3x3(16)-pool-conv3x3(32)-pool-dense(128)-dropout-dense(10).

  Returns (logits, features); the features are the 128 post-ReLU activations
  of the penultimate layer.
  """
  channels: tuple[int, ...] = (16, 32)
  hidden: int = 128
  dropout: float = 0.5
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False
               ) -> tuple[jax.Array, jax.Array]:
    for c in self.channels:
      x = nn.relu(layers.Conv(c, (3, 3))(x))  # flax's Conv, fast on XLA:CPU.
      x = _max_pool_2x2(x)
    x = x.reshape((x.shape[0], -1))
    features = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(features)
    return nn.Dense(self.num_classes)(x), features


def _max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling by reshape + max: nn.max_pool's result for even sizes,
  with a gradient that avoids XLA:CPU's slow select-and-scatter."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def init_params(key: jax.Array, num_classes: int = NUM_CLASSES) -> Any:
  return CNN(num_classes=num_classes).init(key, jnp.zeros((1,) + datasets.IMAGE_SHAPE))


def params_digest(params: Any) -> str:
  """SHA-256 over every weight (path, shape, dtype, bytes): names a classifier."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    arr = np.asarray(leaf)
    h.update(f'{jax.tree_util.keystr(path)}|{arr.shape}|{arr.dtype}'.encode())
    h.update(np.ascontiguousarray(arr).tobytes())
  return h.hexdigest()


def _to_model_input(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images, np.float32)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1:] != datasets.IMAGE_SHAPE:
    raise ValueError('expected images of shape (N, 28, 28, 1) or (N, 28, 28) '
                     f'in [-1, 1], got {images.shape}')
  return images


class Classifier:
  """Trained weights and what they compute: features, probabilities, labels.

  Inference runs jitted in batches of `batch_size`, the last one padded, so
  only one input shape is ever compiled.
  """

  def __init__(self, params: Any, dataset: str, batch_size: int = EVAL_BATCH_SIZE):
    self.params = params
    self.dataset = datasets.canonical_name(dataset)
    self.class_names = list(datasets.get(self.dataset).class_names)
    self.batch_size = batch_size
    model = CNN(num_classes=len(self.class_names))

    @jax.jit
    def forward(params, x):
      logits, features = model.apply(params, x)
      return features, jax.nn.softmax(logits)
    self._forward = forward

  def features_and_probs(self, images: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, 128) and class probabilities (N, 10), one pass.

    Args:
      images: shape (N, 28, 28, 1) or (N, 28, 28), float in [-1, 1].
    """
    images = _to_model_input(images)
    n, b = len(images), self.batch_size
    feats, probs = [], []
    for start in range(0, n, b):
      batch = images[start:start + b]
      if len(batch) < b:  # Pad so the jitted function sees one shape only.
        batch = np.concatenate(
            [batch, np.zeros((b - len(batch),) + batch.shape[1:], np.float32)])
      f, p = self._forward(self.params, batch)
      feats.append(np.asarray(f))
      probs.append(np.asarray(p))
    if not feats:
      return (np.zeros((0, CNN.hidden), np.float32),
              np.zeros((0, len(self.class_names)), np.float32))
    return np.concatenate(feats)[:n], np.concatenate(probs)[:n]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def predict_proba(self, images: np.ndarray) -> np.ndarray:
    """Class probabilities, shape (N, classes), for images in [-1, 1]."""
    return self.features_and_probs(images)[1]

  def features(self, images: np.ndarray) -> np.ndarray:
    """Penultimate-layer features, shape (N, 128), for images in [-1, 1]."""
    return self.features_and_probs(images)[0]

  def predict(self, images: np.ndarray) -> np.ndarray:
    """Predicted labels, shape (N,), int."""
    return self.predict_proba(images).argmax(axis=1)

  def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
    """The share of `images` whose predicted label is `labels`."""
    return float(np.mean(self.predict(images) == np.asarray(labels)))


def _random_shift(images: jax.Array, key: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image by up to max_shift pixels, filling with background (-1)."""
  m = max_shift
  padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), constant_values=-1.0)
  offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * m + 1)
  h, w, c = images.shape[1:]
  crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def train_classifier(dataset: str, data_dir: str, config: TrainConfig | None = None,
                     progress: bool = True, log: Log = print
                     ) -> tuple[Classifier, dict[str, Any]]:
  """Trains the CNN on the train split and measures its test accuracy.

  Deterministic for a given config on one machine (seeded throughout).

  Args:
    dataset: a name of the dataset table (`datasets.DATASETS`) or an alias.
    data_dir: the TFDS data folder.
    config: training settings; None: `default_train_config(dataset)`.
    progress: a tqdm bar on a terminal, else one log line per epoch.
    log: where status lines go.

  Returns:
    The `Classifier` and what to record about it (test accuracy, training
    settings and time, the weights' SHA-256); `classifier_store` saves both.
  """
  name = datasets.canonical_name(dataset)
  config = config or default_train_config(name)
  t0 = time.time()
  train = input_pipeline.load_split(name, 'train', data_dir, config.train_limit)
  test = input_pipeline.load_split(name, 'test', data_dir, config.test_limit)

  params = fit(train.images, train.labels, config, name, progress, log,
               datasets.get(name).num_classes)
  clf = Classifier(params, name)
  accuracy = clf.accuracy(test.images, test.labels)
  meta = {
      'model_version': MODEL_VERSION,
      'dataset': datasets.get(name).key,
      'dataset_version': input_pipeline.prepared_version(name, data_dir),
      'test_accuracy': accuracy,
      'test_examples': len(test.images),
      'train_examples': len(train.images),
      'train_config': dataclasses.asdict(config),
      'train_seconds': round(time.time() - t0, 1),
      'params_sha256': params_digest(params),
  }
  log(f'classifier ({name}) test accuracy {100 * accuracy:.2f}% '
      f'on {len(test.images)} test images, trained in {time.time() - t0:.0f}s')
  return clf, meta


def training_steps(n: int, config: TrainConfig) -> int:
  """The steps `fit` trains on `n` images: `config.steps`, else `epochs` passes."""
  return config.steps or max(n // config.batch_size, 1) * config.epochs


def fit(images: np.ndarray, labels: np.ndarray, config: TrainConfig, name: str = '',
        progress: bool = True, log: Log = print, num_classes: int = NUM_CLASSES) -> Any:
  """Trains a new CNN on `images` (N, 28, 28, 1) in [-1, 1] and integer `labels`
  in [0, num_classes) with `config`'s recipe (the test limits aside); returns
  its parameters. Deterministic for a given config on one machine."""
  model = CNN(num_classes=num_classes)
  key = jax.random.key(config.seed)
  init_key, key = jax.random.split(key)
  params = init_params(init_key, num_classes)
  steps_per_epoch = max(len(images) // config.batch_size, 1)
  total_steps = training_steps(len(images), config)
  epochs = -(-total_steps // steps_per_epoch)  # The last one cut short with `steps`.
  # Cosine decay: a higher start for speed, a low end for the last ~0.5%.
  tx = optax.adam(optax.cosine_decay_schedule(config.learning_rate, total_steps))
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, opt_state, images, labels, step_key):
    shift_key, dropout_key = jax.random.split(step_key)
    if config.max_shift:
      images = _random_shift(images, shift_key, config.max_shift)

    def loss_fn(p):
      logits, _ = model.apply(p, images, train=True, rngs={'dropout': dropout_key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  images, labels = jnp.asarray(images), jnp.asarray(labels, jnp.int32)
  rng = np.random.default_rng(config.seed)
  bar = None
  if progress and sys.stdout.isatty():
    from tqdm import tqdm
    bar = tqdm(total=total_steps, desc=f'classifier ({name})', unit='step',
               leave=False)
  for epoch in range(epochs):
    t_epoch = time.time()
    perm = rng.permutation(len(images))
    losses = []
    for i in range(min(steps_per_epoch, total_steps - epoch * steps_per_epoch)):
      idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
      step_key = jax.random.fold_in(key, epoch * steps_per_epoch + i)
      params, opt_state, loss = train_step(params, opt_state, images[idx],
                                           labels[idx], step_key)
      losses.append(loss)
      if bar is not None:
        bar.update(1)
    mean_loss = float(jnp.mean(jnp.stack(losses)))
    if bar is not None:
      bar.set_postfix(epoch=epoch + 1, loss=f'{mean_loss:.4f}')
    elif (epoch + 1) % max(1, epochs // 10) == 0 or epoch + 1 == epochs:  # At most ~10 lines.
      log(f'classifier ({name}) epoch {epoch + 1}/{epochs}: '
          f'loss {mean_loss:.4f} ({time.time() - t_epoch:.0f}s)')
  if bar is not None:
    bar.close()

  return params

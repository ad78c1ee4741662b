"""A small CNN classifier per dataset, used to measure generated samples.

As in TF-GAN's MNIST example, sample quality is judged by a classifier trained
on the real data: its penultimate-layer features feed the Fréchet distance and
its class probabilities the classifier Inception Score (see `gan_jax.quality`),
and it labels the final images (see `gan_jax.labels`).

The classifier is trained once per dataset and kept in a `classifier_dir`
(default `default_classifier_dir(dataset)`)::

  classifier_dir/
    params/            Orbax StandardCheckpointer checkpoint of the weights
    classifier.json    dataset, TFDS version, model/schema version, test
                       accuracy, training config, SHA-256 of the weights.
                       Written last: it marks the checkpoint as complete.
    reference.npz      feature mean/covariance of the real test set (for FD)
    reference.json     real-test-set IS, label entropy, coverage, confidence

Later runs only load it; anything inconsistent raises
`ClassifierCheckpointError` rather than silently retraining or scoring with the
wrong network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import sys
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import files, input_pipeline, quality

# Bump SCHEMA_VERSION when the files in classifier_dir change layout, and
# MODEL_VERSION when the network, preprocessing or default training change:
# either makes old checkpoints raise ClassifierCheckpointError.
SCHEMA_VERSION = 1
MODEL_VERSION = 'cnn16-32-d128-v1'

META_FILE = 'classifier.json'
PARAMS_DIR = 'params'
REFERENCE_NPZ = 'reference.npz'
REFERENCE_JSON = 'reference.json'

NUM_CLASSES = 10
EVAL_BATCH_SIZE = 500  # Inference batch: every call pads to it, one compile.
# Real training images behind ReferenceStats.fd_train_vs_test. 5000 matches the
# usual evaluation sample count, so it is the FD floor a perfect generator gets.
REFERENCE_TRAIN_SAMPLES = 5000

Log = Callable[[str], None]


class ClassifierCheckpointError(RuntimeError):
  """A classifier checkpoint exists but is corrupt, incomplete or mismatched."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the classifier is trained (stored in classifier.json).

  Attributes:
    epochs: passes over the training split.
    batch_size: training batch size.
    learning_rate: peak Adam learning rate (cosine-decayed to 0).
    max_shift: random translation of up to this many pixels (0: none).
    seed: seeds initialisation, shuffling, dropout and shifts.
    train_limit: use only the first `train_limit` training examples (tests).
    test_limit: measure accuracy on only the first `test_limit` test examples.
  """
  epochs: int = 4
  batch_size: int = 128
  learning_rate: float = 2e-3
  max_shift: int = 0
  seed: int = 0
  train_limit: int | None = None
  test_limit: int | None = None


# Measured on a busy 2-core CPU (~15-25 s per epoch): MNIST 99.10% test
# accuracy in 150 s, Fashion-MNIST 91.69% in 220 s. Fewer epochs fall short
# (MNIST 4 epochs: 98.93%; Fashion 8 epochs: 91.36%); wider 32/64 convs cost
# ~3x per epoch here.
DEFAULT_TRAIN_CONFIGS = {
    'mnist': TrainConfig(epochs=6),
    'fashion_mnist': TrainConfig(epochs=10),
}


class CNN(nn.Module):
  """conv3x3(16)-pool-conv3x3(32)-pool-dense(128)-dropout-dense(10).

  Returns (logits, features); the features are the 128 post-ReLU activations
  of the penultimate layer.
  """
  channels: tuple[int, ...] = (16, 32)
  hidden: int = 128
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False
               ) -> tuple[jax.Array, jax.Array]:
    for c in self.channels:
      x = nn.relu(nn.Conv(c, (3, 3))(x))
      x = _max_pool_2x2(x)
    x = x.reshape((x.shape[0], -1))
    features = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(features)
    return nn.Dense(NUM_CLASSES)(x), features


def _max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling by reshape + max.

  Same result as nn.max_pool(x, (2, 2), (2, 2)) for even sizes, but its
  gradient avoids XLA:CPU's slow select-and-scatter: ~3x faster training here.
  """
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def default_classifier_dir(dataset: str) -> str:
  """`$XDG_CACHE_HOME/gan_jax/classifiers/<tfds name>` (default ~/.cache/...)."""
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(cache, 'gan_jax', 'classifiers',
                      input_pipeline.canonical_name(dataset))


def _params_digest(params: Any) -> str:
  """SHA-256 over every weight (path, shape, dtype, bytes): detects bit rot."""
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
  if images.ndim != 4 or images.shape[1:] != input_pipeline.IMAGE_SHAPE:
    raise ValueError('expected images of shape (N, 28, 28, 1) or (N, 28, 28) '
                     f'in [-1, 1], got {images.shape}')
  return images


class Classifier:
  """A trained classifier: probabilities and penultimate features of images.

  Inference runs jitted in batches of `EVAL_BATCH_SIZE`, the last one padded,
  so only one input shape is ever compiled.
  """

  def __init__(self, params: Any, dataset: str, accuracy: float,
               meta: dict[str, Any] | None = None,
               classifier_dir: str | None = None,
               data_dir: str | None = None,
               batch_size: int = EVAL_BATCH_SIZE):
    """Wraps trained weights; use `load_or_train` or `train_classifier` instead."""
    self.params = params
    self.dataset = input_pipeline.canonical_name(dataset)
    self.accuracy = float(accuracy)
    self.class_names = list(input_pipeline.CLASS_NAMES[self.dataset])
    self.meta = dict(meta or {})
    self.classifier_dir = classifier_dir
    self.data_dir = data_dir
    self.batch_size = batch_size
    model = CNN()

    @jax.jit
    def forward(params, x):
      logits, features = model.apply(params, x)
      return features, jax.nn.softmax(logits)
    self._forward = forward
    self._reference: quality.ReferenceStats | None = None

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
      hidden = CNN().hidden
      return (np.zeros((0, hidden), np.float32),
              np.zeros((0, NUM_CLASSES), np.float32))
    return np.concatenate(feats)[:n], np.concatenate(probs)[:n]

  def predict_proba(self, images: np.ndarray) -> np.ndarray:
    """Class probabilities, shape (N, 10), for images in [-1, 1]."""
    return self.features_and_probs(images)[1]

  def features(self, images: np.ndarray) -> np.ndarray:
    """Penultimate-layer features, shape (N, 128), for images in [-1, 1]."""
    return self.features_and_probs(images)[0]

  def predict(self, images: np.ndarray) -> np.ndarray:
    """Predicted labels, shape (N,), int."""
    return self.predict_proba(images).argmax(axis=1)

  def reference(self) -> quality.ReferenceStats:
    """Statistics of the real test set (and an FD floor from training images).

    Computed once and cached in classifier_dir (reference.npz / .json), keyed
    by the weights' digest, so a retrained classifier recomputes them.

    Raises:
      ValueError: not cached and the classifier has no data_dir to compute it.
    """
    if self._reference is None:
      self._reference = self._load_reference() or self._compute_reference()
    return self._reference

  def _load_reference(self) -> quality.ReferenceStats | None:
    if not self.classifier_dir:
      return None
    json_path = os.path.join(self.classifier_dir, REFERENCE_JSON)
    npz_path = os.path.join(self.classifier_dir, REFERENCE_NPZ)
    if not (os.path.exists(json_path) and os.path.exists(npz_path)):
      return None
    try:
      with open(json_path) as f:
        info = json.load(f)
      if info.get('params_sha256') != self.meta.get('params_sha256'):
        return None  # Stale (from other weights): recompute.
      with np.load(npz_path) as z:
        mu, sigma = z['mu'], z['sigma']
      return quality.ReferenceStats(
          mu=mu, sigma=sigma, inception_score=info['is'],
          label_entropy=info['label_entropy'],
          classes_covered=info['classes_covered'],
          mean_confidence=info['mean_confidence'],
          num_examples=info['num_examples'],
          fd_train_vs_test=info.get('fd_train_vs_test'),
          fd_train_samples=info.get('fd_train_samples'))
    except (OSError, ValueError, KeyError) as e:
      # A cache, not a source of truth: a damaged one is just recomputed.
      print(f'warning: ignoring unreadable reference cache in '
            f'{self.classifier_dir} ({e}); recomputing', file=sys.stderr)
      return None

  def _compute_reference(self) -> quality.ReferenceStats:
    if self.data_dir is None:
      raise ValueError('reference statistics are not cached and the classifier '
                       'has no data_dir to compute them from')
    test = input_pipeline.load_split(self.dataset, 'test', self.data_dir)
    feats, probs = self.features_and_probs(test.images)
    m = quality.metrics_from_outputs(feats, probs, {
        'mu': np.zeros(feats.shape[1]), 'sigma': np.eye(feats.shape[1])})
    mu, sigma = quality.feature_stats(feats)
    train = input_pipeline.load_split(self.dataset, 'train', self.data_dir,
                                      limit=REFERENCE_TRAIN_SAMPLES)
    train_mu, train_sigma = quality.feature_stats(self.features(train.images))
    ref = quality.ReferenceStats(
        mu=mu, sigma=sigma, inception_score=m['is'],
        label_entropy=m['label_entropy'],
        classes_covered=m['classes_covered'],
        mean_confidence=m['mean_confidence'], num_examples=len(test.images),
        fd_train_vs_test=quality.frechet_distance(train_mu, train_sigma, mu, sigma),
        fd_train_samples=len(train.images))
    if self.classifier_dir:
      buf = io.BytesIO()
      np.savez(buf, mu=mu, sigma=sigma)
      files.write_bytes(os.path.join(self.classifier_dir, REFERENCE_NPZ),
                        buf.getvalue())
      # JSON last: it names the weights the .npz belongs to.
      files.write_json(os.path.join(self.classifier_dir, REFERENCE_JSON), {
          **ref.summary(), 'dataset': self.dataset,
          'model_version': MODEL_VERSION,
          'params_sha256': self.meta.get('params_sha256')})
    return ref


def _random_shift(images: jax.Array, key: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image by up to max_shift pixels, filling with background (-1)."""
  m = max_shift
  padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), constant_values=-1.0)
  offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * m + 1)
  h, w, c = images.shape[1:]
  crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def _accuracy(clf: Classifier, images: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(clf.predict(images) == labels))


def _dataset_version(name: str, data_dir: str | None) -> str:
  import tensorflow_datasets as tfds  # Heavy import, kept out of module load.
  try:
    return str(tfds.builder(name, data_dir=input_pipeline.resolve_data_dir(
        data_dir)).version)
  except Exception:  # Only informative metadata: never fail training on it.
    return 'unknown'


def train_classifier(dataset: str, data_dir: str | None,
                     config: TrainConfig | None = None, progress: bool = True,
                     log: Log = print) -> Classifier:
  """Trains the CNN on the train split and measures test accuracy.

  Deterministic for a given config (seeded init, shuffling and dropout).

  Args:
    dataset: 'mnist', 'fashion' or 'fashion_mnist'.
    data_dir: the TFDS data folder.
    config: training settings; None: `DEFAULT_TRAIN_CONFIGS[dataset]`.
    progress: show a tqdm bar (only when stdout is a terminal); otherwise one
      log line per epoch.
    log: where status lines go.

  Returns:
    A `Classifier` (not saved; see `load_or_train`).
  """
  name = input_pipeline.canonical_name(dataset)
  config = config or DEFAULT_TRAIN_CONFIGS[name]
  t0 = time.time()
  train = input_pipeline.load_split(name, 'train', data_dir, config.train_limit)
  test = input_pipeline.load_split(name, 'test', data_dir, config.test_limit)

  model = CNN()
  key = jax.random.key(config.seed)
  init_key, key = jax.random.split(key)
  params = model.init(init_key, jnp.zeros((1,) + input_pipeline.IMAGE_SHAPE))
  steps_per_epoch = max(len(train.images) // config.batch_size, 1)
  total_steps = steps_per_epoch * config.epochs
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

  images, labels = jnp.asarray(train.images), jnp.asarray(train.labels)
  rng = np.random.default_rng(config.seed)
  bar = None
  if progress and sys.stdout.isatty():
    from tqdm import tqdm
    bar = tqdm(total=total_steps, desc=f'classifier ({name})', unit='step',
               leave=False)
  for epoch in range(config.epochs):
    t_epoch = time.time()
    perm = rng.permutation(len(train.images))
    losses = []
    for i in range(steps_per_epoch):
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
    else:
      log(f'classifier ({name}) epoch {epoch + 1}/{config.epochs}: '
          f'loss {mean_loss:.4f} ({time.time() - t_epoch:.0f}s)')
  if bar is not None:
    bar.close()

  clf = Classifier(params, name, 0.0, data_dir=data_dir)
  clf.accuracy = _accuracy(clf, test.images, test.labels)
  clf.meta = {
      'schema_version': SCHEMA_VERSION,
      'model_version': MODEL_VERSION,
      'dataset': name,
      'dataset_version': _dataset_version(name, data_dir),
      'test_accuracy': clf.accuracy,
      'test_examples': len(test.images),
      'train_examples': len(train.images),
      'train_config': dataclasses.asdict(config),
      'train_seconds': round(time.time() - t0, 1),
      'params_sha256': _params_digest(params),
  }
  log(f'classifier ({name}) test accuracy {100 * clf.accuracy:.2f}% '
      f'on {len(test.images)} test images, trained in {time.time() - t0:.0f}s')
  return clf


def _checkpoint_error(classifier_dir: str, why: str) -> ClassifierCheckpointError:
  return ClassifierCheckpointError(
      f'classifier checkpoint at {classifier_dir} is unusable: {why}. Delete '
      f'{classifier_dir} or pass --retrain_classifier to train a new one.')


def save_classifier(clf: Classifier, classifier_dir: str) -> None:
  """Saves weights (Orbax) and classifier.json into classifier_dir.

  Old files are removed first and classifier.json is written last, so an
  interrupted save leaves a checkpoint that `load_classifier` rejects.
  """
  import orbax.checkpoint as ocp  # Heavy import, kept out of module load.

  classifier_dir = os.path.abspath(os.path.expanduser(classifier_dir))
  os.makedirs(classifier_dir, exist_ok=True)
  for name in (META_FILE, REFERENCE_JSON, REFERENCE_NPZ):
    path = os.path.join(classifier_dir, name)
    if os.path.exists(path):
      os.remove(path)
  params_dir = os.path.join(classifier_dir, PARAMS_DIR)
  if os.path.exists(params_dir):
    shutil.rmtree(params_dir)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(params_dir, clf.params)
    ckptr.wait_until_finished()  # Orbax saves asynchronously.
  files.write_json(os.path.join(classifier_dir, META_FILE), clf.meta)
  clf.classifier_dir = classifier_dir


def load_classifier(dataset: str, classifier_dir: str,
                    data_dir: str | None = None) -> Classifier:
  """Loads a saved classifier, checking it thoroughly.

  Raises:
    ClassifierCheckpointError: missing/truncated files, unreadable weights,
      another dataset, or another schema/model version.
  """
  import orbax.checkpoint as ocp  # Heavy import, kept out of module load.

  name = input_pipeline.canonical_name(dataset)
  classifier_dir = os.path.abspath(os.path.expanduser(classifier_dir))
  meta_path = os.path.join(classifier_dir, META_FILE)
  params_dir = os.path.join(classifier_dir, PARAMS_DIR)
  if not os.path.exists(meta_path):
    raise _checkpoint_error(classifier_dir, f'{META_FILE} is missing '
                            '(an interrupted save?)')
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    if not isinstance(meta, dict):
      raise ValueError('not a JSON object')
  except (OSError, ValueError) as e:
    raise _checkpoint_error(classifier_dir, f'cannot read {meta_path} ({e})') from e
  if meta.get('schema_version') != SCHEMA_VERSION:
    raise _checkpoint_error(classifier_dir, f'schema version '
                            f'{meta.get("schema_version")!r}, expected {SCHEMA_VERSION}')
  if meta.get('model_version') != MODEL_VERSION:
    raise _checkpoint_error(classifier_dir, f'model version '
                            f'{meta.get("model_version")!r}, expected {MODEL_VERSION!r}')
  if meta.get('dataset') != name:
    raise _checkpoint_error(classifier_dir, f'it was trained on '
                            f'{meta.get("dataset")!r}, not {name!r}')
  if not os.path.isdir(params_dir):
    raise _checkpoint_error(classifier_dir, f'the weights folder {params_dir} '
                            'is missing')
  abstract = jax.eval_shape(
      CNN().init, jax.random.key(0), jnp.zeros((1,) + input_pipeline.IMAGE_SHAPE))
  try:
    with ocp.StandardCheckpointer() as ckptr:
      params = ckptr.restore(params_dir, abstract)
  except Exception as e:  # Orbax/TensorStore raise many types for bad files.
    raise _checkpoint_error(
        classifier_dir, f'cannot restore the weights in {params_dir} '
        f'({type(e).__name__}: {str(e)[:300]})') from e
  if _params_digest(params) != meta.get('params_sha256'):
    raise _checkpoint_error(classifier_dir, 'the weights do not match the '
                            f'checksum in {META_FILE} (corrupted files?)')
  return Classifier(params, name, meta.get('test_accuracy', float('nan')),
                    meta=meta, classifier_dir=classifier_dir, data_dir=data_dir)


def load_or_train(dataset: str, data_dir: str | None, classifier_dir: str,
                  retrain: bool = False, progress: bool = True,
                  log: Log = print, *, config: TrainConfig | None = None
                  ) -> Classifier:
  """Loads the classifier from classifier_dir, training (and saving) it first
  if the folder holds no checkpoint, or if `retrain`.

  Args:
    dataset: 'mnist', 'fashion' or 'fashion_mnist'.
    data_dir: the TFDS data folder (for training and reference statistics).
    classifier_dir: where the checkpoint lives, e.g. `default_classifier_dir`.
    retrain: train anew and overwrite whatever is in classifier_dir.
    progress: show a tqdm bar while training (when stdout is a terminal).
    log: where status lines go.
    config: training settings (default: `DEFAULT_TRAIN_CONFIGS[dataset]`).

  Returns:
    The `Classifier`, with its reference statistics available via
    `.reference()` (computed and cached on first use).

  Raises:
    ClassifierCheckpointError: classifier_dir holds a corrupt, incomplete or
      mismatched checkpoint (and retrain is False).
  """
  classifier_dir = os.path.abspath(os.path.expanduser(classifier_dir))
  has_files = any(os.path.exists(os.path.join(classifier_dir, f))
                  for f in (META_FILE, PARAMS_DIR))
  if has_files and not retrain:
    clf = load_classifier(dataset, classifier_dir, data_dir)
    log(f'classifier ({clf.dataset}) loaded from {classifier_dir}: test '
        f'accuracy {100 * clf.accuracy:.2f}%')
    return clf
  clf = train_classifier(dataset, data_dir, config, progress=progress, log=log)
  save_classifier(clf, classifier_dir)
  log(f'classifier saved to {classifier_dir}')
  return clf

"""Where domain classifiers live: shipped inside the package, or a folder of yours.

FD and IS compare between users and machines only when everyone scores with
the same classifier, so gan_jax ships one per dataset in
``gan_jax/classifiers/<name>/`` (rebuilt by ``python -m
gan_jax.classifier_store --data_dir=DIR``). A classifier folder holds::

  params/          Orbax checkpoint of the weights
  reference.npz    feature mean/covariance of the real test set (for FD)
  reference.json   the real test set's IS, label entropy, coverage, confidence
  classifier.json  dataset, versions, test accuracy, training settings, the
                   weights' SHA-256; written last, it marks the folder complete.
Loading checks all of it: anything inconsistent raises
`ClassifierCheckpointError` rather than scoring with the wrong network.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from typing import Any, Callable

import jax
import numpy as np

from gan_jax import classifier as classifier_lib
from gan_jax import datasets, errors, files, input_pipeline, outputs, quality

# Bump when the files of a classifier folder change layout.
SCHEMA_VERSION = 2

META_FILE = 'classifier.json'
PARAMS_DIR = 'params'
REFERENCE_NPZ = 'reference.npz'
REFERENCE_JSON = 'reference.json'
SHIPPED_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'classifiers')
# Real training images behind ReferenceStats.fd_train_vs_test. 5000 matches the
# default evaluation sample count, so it is the FD floor a perfect generator gets.
REFERENCE_TRAIN_SAMPLES = 5000

Log = Callable[[str], None]


class ClassifierCheckpointError(errors.GanJaxError):
  """A classifier folder exists but is corrupt, incomplete or mismatched."""


@dataclasses.dataclass(frozen=True)
class StoredClassifier:
  """A classifier with its record and the real data's reference statistics."""
  classifier: classifier_lib.Classifier
  meta: dict[str, Any]             # The contents of classifier.json.
  reference: quality.ReferenceStats
  directory: str
  shipped: bool                    # True: the one inside the package.

  @property
  def test_accuracy(self) -> float:
    return float(self.meta['test_accuracy'])

  def describe(self) -> dict[str, Any]:
    """What run.json and report.json record: which classifier scored the run."""
    return {'sha256': self.meta['params_sha256'], 'shipped': self.shipped,
            'directory': self.directory, 'test_accuracy': self.test_accuracy,
            'model_version': self.meta['model_version']}


def shipped_dir(dataset: str) -> str:
  """The folder of the classifier that ships with the package."""
  return os.path.join(SHIPPED_ROOT, datasets.canonical_name(dataset))


def default_user_dir(dataset: str) -> str:
  """Where --retrain_classifier saves without --classifier_dir, and where a
  folder's classifier is kept: `$XDG_CACHE_HOME/gan_jax/classifiers/<key>`
  (default ~/.cache/...; the key is the TFDS name, or `folder-` and the
  folder's content digest)."""
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(cache, 'gan_jax', 'classifiers', datasets.get(dataset).key)


def compute_reference(clf: classifier_lib.Classifier, data_dir: str
                      ) -> quality.ReferenceStats:
  """The classifier's figures on the real test set, and the FD floor of
  `REFERENCE_TRAIN_SAMPLES` real training images against it."""
  test = input_pipeline.load_split(clf.dataset, 'test', data_dir)
  feats, probs = clf.features_and_probs(test.images)
  mu, sigma = quality.feature_stats(feats)
  train = input_pipeline.load_split(clf.dataset, 'train', data_dir,
                                    limit=REFERENCE_TRAIN_SAMPLES)
  train_mu, train_sigma = quality.feature_stats(clf.features(train.images))
  return quality.ReferenceStats(
      mu=mu, sigma=sigma, inception_score=quality.inception_score(probs),
      label_entropy=quality.label_entropy(probs),
      classes_covered=quality.classes_covered(probs),
      mean_confidence=quality.mean_confidence(probs), num_examples=len(test.images),
      fd_train_vs_test=quality.frechet_distance(train_mu, train_sigma, mu, sigma),
      fd_train_samples=len(train.images))


def _error(directory: str, why: str) -> ClassifierCheckpointError:
  return ClassifierCheckpointError(
      f'classifier checkpoint at {directory} is unusable: {why}. Delete '
      f'{directory} or pass --retrain_classifier to train a new one.')


def save(directory: str, clf: classifier_lib.Classifier, meta: dict[str, Any],
         reference: quality.ReferenceStats) -> None:
  """Writes a classifier folder; classifier.json last, so an interrupted save
  leaves a folder that `load` refuses."""
  import orbax.checkpoint as ocp  # Heavy import, kept out of module load.

  directory = os.path.abspath(os.path.expanduser(directory))
  os.makedirs(directory, exist_ok=True)
  for name in (META_FILE, REFERENCE_JSON, REFERENCE_NPZ):
    if os.path.exists(os.path.join(directory, name)):
      os.remove(os.path.join(directory, name))
  params_dir = os.path.join(directory, PARAMS_DIR)
  if os.path.exists(params_dir):
    shutil.rmtree(params_dir)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(params_dir, clf.params)
    ckptr.wait_until_finished()  # Orbax saves asynchronously.
  buf = io.BytesIO()
  np.savez(buf, mu=reference.mu, sigma=reference.sigma)
  files.write_bytes(os.path.join(directory, REFERENCE_NPZ), buf.getvalue())
  files.write_json(os.path.join(directory, REFERENCE_JSON), reference.summary())
  files.write_json(os.path.join(directory, META_FILE),
                   {**meta, 'schema_version': SCHEMA_VERSION})


def _read_json(directory: str, name: str) -> dict[str, Any]:
  path = os.path.join(directory, name)
  if not os.path.exists(path):
    raise _error(directory, f'{name} is missing (an interrupted save?)')
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError) as e:
    raise _error(directory, f'cannot read {path} ({e})') from e
  if not isinstance(value, dict):
    raise _error(directory, f'{path} is not a JSON object')
  return value


def _numbers(directory: str, name: str, info: dict[str, Any], keys: tuple[str, ...],
             optional: tuple[str, ...] = ()) -> None:
  """Refuses a record whose fields `keys` are not numbers (a damaged or edited file)."""
  for key in keys + optional:
    value = info.get(key)
    if key in optional and value is None:
      continue
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
      raise _error(directory, f'{os.path.join(directory, name)} has {key}={value!r}, not a '
                   'number (a damaged or edited file)')


def _load_reference(directory: str) -> quality.ReferenceStats:
  info = _read_json(directory, REFERENCE_JSON)
  _numbers(directory, REFERENCE_JSON, info, ('is', 'label_entropy', 'classes_covered',
                                              'mean_confidence', 'num_examples'),
           optional=('fd_train_vs_test', 'fd_train_samples'))
  try:
    with np.load(os.path.join(directory, REFERENCE_NPZ)) as z:
      mu, sigma = np.asarray(z['mu'], np.float64), np.asarray(z['sigma'], np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
      raise ValueError(f'mu {mu.shape} and sigma {sigma.shape} do not fit')
    return quality.ReferenceStats(
        mu=mu, sigma=sigma, inception_score=info['is'],
        label_entropy=info['label_entropy'], classes_covered=info['classes_covered'],
        mean_confidence=info['mean_confidence'], num_examples=info['num_examples'],
        fd_train_vs_test=info['fd_train_vs_test'],
        fd_train_samples=info['fd_train_samples'])
  except Exception as e:  # A damaged npz: OSError, ValueError, BadZipFile, EOFError...
    raise _error(directory, f'cannot read the reference statistics in '
                 f'{os.path.join(directory, REFERENCE_NPZ)} ({type(e).__name__}: '
                 f'{str(e)[:200]})') from e


def load(dataset: str, directory: str, shipped: bool = False) -> StoredClassifier:
  """Loads a classifier folder, checking every part of it.

  Raises:
    ClassifierCheckpointError: missing or truncated files, unreadable weights,
      weights that do not match their checksum, another dataset, or another
      schema or model version.
  """
  import orbax.checkpoint as ocp  # Heavy import, kept out of module load.

  name = datasets.canonical_name(dataset)
  directory = os.path.abspath(os.path.expanduser(directory))
  meta = _read_json(directory, META_FILE)
  if meta.get('schema_version') != SCHEMA_VERSION:
    raise _error(directory, f'schema version {meta.get("schema_version")!r}, '
                 f'expected {SCHEMA_VERSION}')
  if meta.get('model_version') != classifier_lib.MODEL_VERSION:
    raise _error(directory, f'model version {meta.get("model_version")!r}, '
                 f'expected {classifier_lib.MODEL_VERSION!r}')
  record = datasets.get(name)
  if meta.get('dataset') != record.key:
    raise _error(directory, f'it was trained on {meta.get("dataset")!r}, not {name!r}')
  _numbers(directory, META_FILE, meta, ('test_accuracy',))
  if not isinstance(meta.get('params_sha256'), str):
    raise _error(directory, f'{os.path.join(directory, META_FILE)} has params_sha256='
                 f'{meta.get("params_sha256")!r}, not a checksum (a damaged or edited file)')
  params_dir = os.path.join(directory, PARAMS_DIR)
  if not os.path.isdir(params_dir):
    raise _error(directory, f'the weights folder {params_dir} is missing')
  # Each process loads its own copy onto one of its own devices, without the
  # multi-process coordination Orbax uses for a run's checkpoints.
  local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=local),
      jax.eval_shape(lambda key: classifier_lib.init_params(key, record.num_classes),
                     jax.random.key(0)))
  this_process = ocp.options.MultiprocessingOptions(
      primary_host=jax.process_index(), active_processes={jax.process_index()})
  try:
    with ocp.StandardCheckpointer(multiprocessing_options=this_process) as ckptr:
      params = ckptr.restore(params_dir, abstract)
  except Exception as e:  # Orbax/TensorStore raise many types for bad files.
    raise _error(directory, f'cannot restore the weights in {params_dir} '
                 f'({type(e).__name__}: {str(e)[:300]})') from e
  if classifier_lib.params_digest(params) != meta.get('params_sha256'):
    raise _error(directory, f'the weights do not match the checksum in {META_FILE} '
                 '(corrupted files?)')
  return StoredClassifier(classifier=classifier_lib.Classifier(params, name), meta=meta,
                          reference=_load_reference(directory), directory=directory,
                          shipped=shipped)


def train_and_save(dataset: str, data_dir: str, directory: str,
                   config: classifier_lib.TrainConfig | None = None,
                   progress: bool = True, log: Log = print) -> StoredClassifier:
  """Trains a classifier, computes its reference statistics, saves the folder."""
  clf, meta = classifier_lib.train_classifier(dataset, data_dir, config,
                                              progress=progress, log=log)
  reference = compute_reference(clf, data_dir)
  save(directory, clf, meta, reference)
  log(f'classifier saved to {directory}')
  return load(dataset, directory)


def load_or_train(dataset: str, data_dir: str, classifier_dir: str | None = None,
                  retrain: bool = False, progress: bool = True, log: Log = print, *,
                  config: classifier_lib.TrainConfig | None = None
                  ) -> StoredClassifier:
  """The classifier a run scores with.

  * No `classifier_dir` and no `retrain`: the shipped classifier; for a
    folder of images, the one in `default_user_dir`, trained there on the
    first run (keyed by the folder's content, so later runs reuse it).
  * `classifier_dir` holding a classifier: that one.
  * `classifier_dir` empty or missing, or `retrain`: train one and save it
    there (`retrain` without a folder saves to `default_user_dir`; the
    package's own folder is never written).

  Raises:
    ClassifierCheckpointError: the folder holds a corrupt, incomplete or
      mismatched classifier (and `retrain` is False).
  """
  folder = datasets.get(dataset).folder is not None
  if classifier_dir is None and not retrain and folder:
    classifier_dir = default_user_dir(dataset)
    if not os.path.exists(os.path.join(classifier_dir, META_FILE)):
      log(f'classifier: training the domain classifier of {dataset} once; it is kept in '
          f'{classifier_dir} for later runs and modes')
  if classifier_dir is None and not retrain:
    stored = load(dataset, shipped_dir(dataset), shipped=True)
    log(f'classifier ({stored.classifier.dataset}): the one shipped with gan_jax, '
        f'test accuracy {100 * stored.test_accuracy:.2f}%')
    return stored
  directory = os.path.abspath(os.path.expanduser(classifier_dir or default_user_dir(dataset)))
  has_files = any(os.path.exists(os.path.join(directory, f)) for f in (META_FILE, PARAMS_DIR))
  if has_files and not retrain:
    stored = load(dataset, directory, shipped=directory == shipped_dir(dataset))
    log(f'classifier ({stored.classifier.dataset}) loaded from {directory}: test '
        f'accuracy {100 * stored.test_accuracy:.2f}%')
    return stored
  if directory.startswith(SHIPPED_ROOT + os.sep):
    raise ClassifierCheckpointError(
        f'--classifier_dir={directory} is inside the gan_jax package; train your own '
        'classifier into another folder (python -m gan_jax.classifier_store rebuilds '
        'the shipped ones)')
  # Before minutes of training: a folder it can be saved in.
  outputs.check('--classifier_dir', directory, outputs.CLASSIFIER,
                error=ClassifierCheckpointError)
  return train_and_save(dataset, data_dir, directory, config, progress, log)


def check_dir(classifier_dir: str | None, retrain: bool = False) -> None:
  """Checks --classifier_dir before any work: not inside another output of
  gan_jax, not a file or another output, and writable where a classifier is
  to be trained into it.

  Raises:
    ClassifierCheckpointError: one line naming the problem and the fix.
  """
  if classifier_dir is None:
    return
  directory = os.path.abspath(os.path.expanduser(classifier_dir))
  has_files = any(os.path.exists(os.path.join(directory, f)) for f in (META_FILE, PARAMS_DIR))
  outputs.check('--classifier_dir', classifier_dir, outputs.CLASSIFIER,
                writable=retrain or not has_files, error=ClassifierCheckpointError)


def main(argv: list[str]) -> None:
  """Rebuilds the shipped classifiers (both datasets, default settings)."""
  from absl import flags
  del argv
  data_dir = input_pipeline.resolve_data_dir(flags.FLAGS.data_dir)
  for name in datasets.DATASETS:
    directory = shipped_dir(name)
    stored = train_and_save(name, data_dir, directory, progress=flags.FLAGS.progress)
    print(f'{name}: test accuracy {100 * stored.test_accuracy:.2f}%, '
          f'sha256 {stored.meta["params_sha256"]}, reference {stored.reference.summary()}')


if __name__ == '__main__':
  from absl import app, flags
  flags.DEFINE_string('data_dir', None, 'TFDS data folder; default $TFDS_DATA_DIR, '
                      'else ~/tensorflow_datasets.')
  flags.DEFINE_bool('progress', True, 'Show progress bars (only on a terminal).')
  app.run(main)

"""--mode=export: a trained run's images as a labelled dataset that code
without gan_jax loads (docs/export.md).

  DIR/train/<label>/NNNNN.png  class folders 0-9, all ten present (the layout
                               of TFDS's, Keras' and torchvision's ImageFolder)
  DIR/data.npz                 x (N, 28, 28) uint8, y (N,) uint8, as
                               keras.datasets.mnist.load_data() gives them
  DIR/labels.csv               file, label, class name, classifier's label, confidence
  DIR/generator.jax            the generator, serialized with jax.export
  DIR/manifest.json            source run, labelling, counts, quality

Built beside DIR and renamed into place (gan_jax.destination), so it is
complete or absent. A non-empty DIR is replaced only with --overwrite, and
only when it is an earlier export (manifest.json) holding nothing else.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import os
import re
import time
import zipfile
from typing import Any, Callable

import jax
import numpy as np
from PIL import Image

from gan_jax import (datasets, errors, feature_cache, files, images, input_pipeline, outputs,
                     quality, report, sampling, serialize, train)
from gan_jax import destination as destination_lib
from gan_jax import workdir as workdir_lib
from gan_jax.config import Config

Log = Callable[[str], None]

FORMAT = 'gan_jax-export'   # manifest.json's 'format': marks a folder gan_jax wrote.
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
# Every path an export writes (relative to it; a folder's ends with '/').
OWN_PATHS = (r'manifest\.json|data\.npz|labels\.csv|generator\.jax|train/|train/\d+/'
             r'|train/\d+/\d+\.png')
SPLIT = 'train'
MAX_DRAWS = 20              # --min_confidence: give up after drawing 20x --num_samples.
PNG_WORKERS = 8             # Creating 60,000 small files is I/O bound: threads overlap it.
PNG_COMPRESS_LEVEL = 1      # zlib level: faster than the default, as small on 28x28 digits.
MEMORISATION_SAMPLE = 1000  # Generated and test images measured against every training image.
NOISE_STREAM = 0x45585054        # Folded into the sample key: export noise is its own stream.


class ExportError(errors.GanJaxError):
  """An export cannot be written; nothing was."""


@dataclasses.dataclass
class Drawn:
  """The images of an export and how their labels were decided."""
  images: np.ndarray        # (N, 28, 28, 1) in [-1, 1]
  labels: np.ndarray        # (N,) the dataset's labels
  probs: np.ndarray         # (N, K) the classifier's class probabilities
  features: np.ndarray      # (N, D) its features
  generated: int            # images drawn to get N (more than N with --min_confidence)

  @property
  def clf_labels(self) -> np.ndarray:
    return self.probs.argmax(1)

  @property
  def confidences(self) -> np.ndarray:
    return self.probs.max(1)


def is_export(folder: str) -> bool:
  """True when `folder` holds an export's manifest (gan_jax wrote it)."""
  try:
    with open(os.path.join(folder, MANIFEST)) as f:
      return json.load(f).get('format') == FORMAT
  except (OSError, ValueError, AttributeError):
    return False


def owns(folder: str) -> Callable[[str], bool] | None:
  """None when `folder` is not an export, else whether a path in it (relative;
  a folder's ends with '/') is one an export writes."""
  if not is_export(folder):
    return None
  return lambda rel: re.fullmatch(OWN_PATHS, rel) is not None


KIND = destination_lib.Kind('export', '--export_dir', outputs.EXPORT, owns, ExportError)


def destination(config: Config) -> str:
  """The export folder, checked before anything is computed or written.

  Raises:
    ExportError: it is a file, inside another output of gan_jax, its parent is
      not writable, or it is a non-empty folder other than an earlier export
      holding only its own files (that one needs --overwrite).
  """
  given = config.export_dir or os.path.join(config.workdir, 'export')
  return destination_lib.check(KIND, given, config.overwrite)


def _check_labelling(config: Config, run_config: Config) -> None:
  if config.min_confidence and run_config.conditional:
    raise ExportError(f'--min_confidence={config.min_confidence}: the run in '
                      f'{config.workdir} is conditional, so its images are labelled with '
                      'the class they were drawn for; drop --min_confidence')


def draw(state: train.GANState, run_config: Config, config: Config, classifier
         ) -> Drawn:
  """Generates and labels `config.num_samples` images, deterministically for
  `config.seed`: a conditional run's the requested classes (balanced, or all
  `config.label`), an unconditional run's labelled by the classifier, keeping
  those at least `config.min_confidence` sure (drawing more until N are kept).

  Raises:
    ExportError: fewer than N of MAX_DRAWS * N drawn images were sure enough.
  """
  n = config.num_samples
  key = jax.random.fold_in(sampling.keys(config.seed)['sample'], NOISE_STREAM)
  if run_config.conditional:
    labels = (np.full(n, config.label) if config.label is not None
              else np.arange(n) % datasets.get(run_config.dataset).num_classes)
    z = sampling.sample_noise(key, n, run_config.noise_dim, config.noise_scale)
    imgs = sampling.generate(state, z, labels)
    feats, probs = classifier.features_and_probs(imgs)
    return Drawn(imgs, labels.astype(np.int64), probs, feats, n)
  kept: list[tuple[np.ndarray, ...]] = []
  count, generated = 0, 0
  variables = sampling.inference_variables(state)  # Once for every round.
  for round_ in range(MAX_DRAWS):
    z = sampling.sample_noise(jax.random.fold_in(key, round_), n, run_config.noise_dim,
                           config.noise_scale)
    imgs = sampling.generate(state, z, variables=variables)
    feats, probs = classifier.features_and_probs(imgs)
    sure = np.flatnonzero(probs.max(1) >= config.min_confidence)[:n - count]
    # Images after the last one kept were never needed: not counted as drawn.
    generated += (sure[-1] + 1 if count + len(sure) == n else len(imgs))
    kept.append((imgs[sure], feats[sure], probs[sure]))
    count += len(sure)
    if count == n:
      imgs, feats, probs = (np.concatenate(parts) for parts in zip(*kept))
      return Drawn(imgs, probs.argmax(1), probs, feats, int(generated))
  raise ExportError(
      f'--min_confidence={config.min_confidence}: only {count:,} of {generated:,} images '
      f'drawn were that sure, fewer than --num_samples={n:,}; lower --min_confidence')


def encode_png(image: np.ndarray) -> bytes:
  """A grayscale uint8 (H, W) image as PNG bytes (Pillow, fast zlib level)."""
  buffer = io.BytesIO()
  Image.fromarray(image, mode='L').save(buffer, format='PNG',
                                        compress_level=PNG_COMPRESS_LEVEL)
  return buffer.getvalue()


def class_folder(label: int, num_classes: int) -> str:
  """A class's folder name: its label, zero-padded beyond ten classes, so that
  the folders sort in label order ('00' .. '14')."""
  return f'{int(label):0{len(str(num_classes - 1))}d}'


def file_names(labels: np.ndarray, num_classes: int = datasets.NUM_CLASSES) -> list[str]:
  """`train/<label>/NNNNN.png` per image, numbered in image order."""
  digits = max(5, len(str(len(labels) - 1)))
  return [f'{SPLIT}/{class_folder(label, num_classes)}/{i:0{digits}d}.png'
          for i, label in enumerate(labels)]


def write_pngs(root: str, pixels: np.ndarray, names: list[str],
               num_classes: int = datasets.NUM_CLASSES) -> None:
  """Writes uint8 images (N, 28, 28) as PNGs under `root`, with every class
  folder present (so each loader numbers the classes 0, 1, ... even when one
  is empty)."""
  for c in range(num_classes):
    os.makedirs(os.path.join(root, SPLIT, class_folder(c, num_classes)), exist_ok=True)

  def write(i: int) -> None:
    with open(os.path.join(root, names[i]), 'wb') as f:
      f.write(encode_png(pixels[i]))
  pool = concurrent.futures.ThreadPoolExecutor(PNG_WORKERS)
  try:
    list(pool.map(write, range(len(names)), chunksize=256))
  finally:  # On a stop (Ctrl-C, SIGTERM), the images not yet written are not started.
    pool.shutdown(wait=True, cancel_futures=True)


def write_npz(path: str, **arrays: np.ndarray) -> None:
  """`np.savez_compressed`, but byte-identical for identical arrays (numpy
  stamps each member with the current time; here it is a fixed date)."""
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
    for name, array in arrays.items():
      buf = io.BytesIO()
      np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
      info = zipfile.ZipInfo(f'{name}.npy', date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      archive.writestr(info, buf.getvalue())


def _labels_csv(drawn: Drawn, names: list[str], class_names: list[str]) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(['file', 'label', 'class_name', 'classifier_label',
                   'classifier_confidence'])
  for name, label, clf_label, conf in zip(names, drawn.labels, drawn.clf_labels,
                                          drawn.confidences):
    writer.writerow([name, int(label), class_names[label], int(clf_label), f'{conf:.4f}'])
  return buf.getvalue()


def write_folder(folder: str, drawn: Drawn, class_names: list[str], generator: bytes
                 ) -> None:
  """Writes every file of an export into `folder` except the manifest."""
  pixels = images.to_uint8(drawn.images)[..., 0]
  names = file_names(drawn.labels, len(class_names))
  write_pngs(folder, pixels, names, len(class_names))
  write_npz(os.path.join(folder, 'data.npz'), x=pixels, y=drawn.labels.astype(np.uint8))
  with open(os.path.join(folder, 'labels.csv'), 'w') as f:
    f.write(_labels_csv(drawn, names, class_names))
  with open(os.path.join(folder, serialize.FILE), 'wb') as f:
    f.write(generator)


def install(tmp: str, dest: str, overwrite: bool = False, log: Log = print) -> str:
  """Puts the finished folder `tmp` at `dest` without replacing what gan_jax
  did not write (`destination.Place.install`); returns where it went."""
  return destination_lib.Place(KIND, os.path.abspath(dest), overwrite, log).install(tmp)


def set_quality(drawn: Drawn, stored, run_config: Config, data_dir: str,
                test_images: np.ndarray | None) -> dict[str, Any]:
  """FD, IS, precision, recall and the memorisation ratio of the exported set
  (per-class FD too when the labels were requested); `test_images`: real test
  images, the memorisation ratio's reference (None: no real data here, so
  only FD and IS, which the classifier's reference statistics give)."""
  n = len(drawn.features)
  fd = precision = recall = None  # A set too small to measure them has None.
  if n >= 2:
    mu, sigma = quality.feature_stats(drawn.features)
    fd = quality.frechet_distance(mu, sigma, stored.reference.mu, stored.reference.sigma)
  if test_images is None:
    return {'fd': fd, 'is': quality.inception_score(drawn.probs), 'precision': None,
            'recall': None, 'memorisation_ratio': None, 'without_real_data': True}
  train_feats, train_labels = feature_cache.training_features(
      stored.classifier, stored.meta['params_sha256'], run_config.dataset, data_dir)
  real = quality.real_features(train_feats, train_labels, stored.classifier.num_classes)
  seen = train_feats  # The images the GAN saw: copies of them are the failure to catch.
  if run_config.train_examples is not None:
    seen = train_feats[input_pipeline.balanced_indices(
        train_labels, run_config.train_examples, run_config.seed,
        datasets.get(run_config.dataset).num_classes)]
  scored = slice(0, quality.REAL_SAMPLE)
  if n > quality.PR_NEIGHBOURS:
    precision, recall = quality.precision_recall(real.sample, drawn.features[scored])
  out = {'fd': fd, 'is': quality.inception_score(drawn.probs),
         'precision': precision, 'recall': recall,
         'precision_recall_images': len(drawn.features[scored]),
         'memorisation_ratio': quality.memorisation_ratio(
             drawn.features[:MEMORISATION_SAMPLE], stored.classifier.features(test_images),
             seen),
         'memorisation_images': min(len(drawn.features), MEMORISATION_SAMPLE),
         'training_images': len(seen)}
  if run_config.conditional and len(drawn.labels) > 1:
    out['fd_per_class'] = quality.per_class_fd(drawn.features, drawn.labels, real)
  return out


def _manifest(config: Config, run_config: Config, epoch: int, drawn: Drawn, stored,
              quality_figures: dict[str, Any], cas: dict[str, Any] | None) -> dict[str, Any]:
  class_names = list(datasets.get(run_config.dataset).class_names)
  counts = np.bincount(drawn.labels, minlength=len(class_names))
  how = ('the class the conditional generator was asked for'
         + (f' (all {config.label})' if config.label is not None else ', balanced')
         if run_config.conditional else "the domain classifier's most probable class"
         + (f', images below confidence {config.min_confidence} dropped'
            if config.min_confidence else ''))
  return {
      'format': FORMAT, 'format_version': FORMAT_VERSION,
      'num_images': len(drawn.labels), 'image_shape': [28, 28], 'dtype': 'uint8',
      'dataset': datasets.canonical_name(run_config.dataset), 'class_names': class_names,
      'counts': {str(c): int(counts[c]) for c in range(len(class_names))},
      'source': {**_source(config), 'checkpoint_epoch': epoch, 'config': run_config.__dict__},
      'classifier': stored.describe(),
      'seed': config.seed,
      'noise_scale': config.noise_scale,
      'labels': {'method': how, 'min_confidence': config.min_confidence,
                 'generated': drawn.generated,
                 'dropped': drawn.generated - len(drawn.labels),
                 'classifier_agreement': float(np.mean(drawn.labels == drawn.clf_labels))},
      'quality': quality_figures,
      'cas': cas,
      'created': {'jax': jax.__version__, 'git_commit': report.git_commit()},
  }


def _source(config: Config) -> dict[str, Any]:
  """Where the generator came from: the workdir, or the shipped generator
  (its name, SHA-256, the command and commit that trained it, its figures)."""
  if config.pretrained is None:
    return {'workdir': os.path.abspath(config.workdir)}
  from gan_jax import pretrained
  return {'pretrained': pretrained.describe(config.pretrained)}


def export_from_run(config: Config, log: Log = print) -> dict[str, Any]:
  """Writes `config.num_samples` labelled images of the run in `config.workdir`
  as a dataset in `config.export_dir`; returns the manifest.

  Raises:
    ExportError, errors.RunError: bad destination, no checkpoint, a flag that
      does not fit the run; nothing is written.
    workdir_lock.WorkdirBusy: another command writes the destination.
    errors.Interrupted: SIGINT / SIGTERM; the partial set is removed.
  """
  t0 = time.time()
  dest = destination(config)
  from gan_jax import classifier_store
  classifier_store.check_dir(config.classifier_dir)
  with destination_lib.reserved(KIND, dest, config.overwrite, log) as place:
    manifest = _export(config, dest, place, log)
    _print_summary(place.installed, manifest, time.time() - t0, log)
  return manifest


def _export(config: Config, dest: str, place: destination_lib.Place, log: Log
            ) -> dict[str, Any]:
  """`export_from_run` once its destination is held."""
  with sampling.held_for_reading(config, 'export'):
    state, run_config, epoch = sampling.load_latest_run(config, log)
  _check_labelling(config, run_config)
  data_dir = input_pipeline.resolve_data_dir(config.data_dir or run_config.data_dir)
  from gan_jax import classifier_store
  stored = classifier_store.load_or_train(run_config.dataset, data_dir,
                                          config.classifier_dir, progress=config.progress,
                                          log=log)
  drawn = draw(state, run_config, config, stored.classifier)
  # TFDS is first used here, before the thread below: while its modules load it
  # swaps Python's import function for a lazy one (etils' lazy_imports), which
  # would also catch the imports jax makes in the main thread meanwhile (a
  # ModuleNotFoundError while the generator is exported).
  test = _real_test_images(config, run_config, data_dir, log)
  if test is None:  # A shipped generator, and no data here: what needs none.
    config = config.replace(cas=False)
  class_names = list(datasets.get(run_config.dataset).class_names)
  # A failed write is one line; the folder is written beside `dest`, then renamed.
  unchanged = f'the run in {os.path.abspath(config.workdir)} and {dest} are unchanged'
  with workdir_lib.write_failures_explained(config.workdir, 'the export failed',
                                            unchanged, dest):
    tmp = place.temp()  # Removed by `place` unless renamed into place.
    # The quality figures (mostly XLA) are computed while the files (mostly
    # I/O) are written: the two overlap on a 2-core CPU.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      figures = pool.submit(set_quality, drawn, stored, run_config, data_dir,
                            None if test is None else test.images)
      exported = serialize.export_generator(state)
      write_folder(tmp, drawn, class_names, exported.serialize())
      figures = figures.result()
    cas = _cas(config, run_config, drawn, data_dir, log)
    manifest = _manifest(config, run_config, epoch, drawn, stored, figures, cas)
    manifest['augmentation_check'] = _augmentation_check(config, run_config, drawn, data_dir,
                                                         log)
    manifest['generator'] = serialize.describe(exported)
    files.write_json(os.path.join(tmp, MANIFEST), manifest)
    place.install(tmp)
  return manifest


def _real_test_images(config: Config, run_config: Config, data_dir: str, log: Log
                      ) -> input_pipeline.Split | None:
  """The real test images the figures compare with; None for a shipped
  generator (--pretrained) where the data is not found, said in one line."""
  name = datasets.canonical_name(run_config.dataset)
  if config.pretrained is None or os.path.isdir(os.path.join(data_dir, name)):
    return input_pipeline.load_split(run_config.dataset, 'test', data_dir,
                                     limit=MEMORISATION_SAMPLE)
  log(f'no {run_config.dataset} data in {data_dir}: precision, recall, memorisation, the CAS '
      'and the augmentation check compare with real images and are skipped (give '
      '--data_dir=DIR to add them)')
  return None


def _augmentation_check(config: Config, run_config: Config, drawn: Drawn, data_dir: str,
                        log: Log) -> dict[str, Any] | None:
  """The augmentation check of the set beside the run's own real training
  images (None with --cas=false, as the CAS)."""
  if not config.cas:
    return None
  from gan_jax import augmentation_check
  real, _ = input_pipeline.training_split(run_config.dataset, data_dir, run_config.limit,
                                          run_config.train_examples, run_config.seed)
  test = input_pipeline.load_split(run_config.dataset, 'test', data_dir)
  return augmentation_check.check(run_config.dataset, real.images, real.labels, drawn.images,
                                  drawn.labels, test.images, test.labels, log=log)


def _cas(config: Config, run_config: Config, drawn: Drawn, data_dir: str,
         log: Log) -> dict[str, Any] | None:
  """The Classification Accuracy Score of the set (None with --cas=false)."""
  if not config.cas:
    return None
  from gan_jax import cas
  return cas.score(run_config.dataset, drawn.images, drawn.labels, data_dir, log=log)


def _print_summary(dest: str, manifest: dict[str, Any], seconds: float, log: Log) -> None:
  q, labels = manifest['quality'], manifest['labels']
  counts = ' '.join(f'{c}:{n}' for c, n in manifest['counts'].items())
  log(f'Exported {manifest["num_images"]:,} images of epoch '
      f'{manifest["source"]["checkpoint_epoch"]} to {dest} in {seconds:.1f}s'
      + sampling.noise_scale_text(manifest['noise_scale']))
  log(f'  labels: {labels["method"]}; per class {counts}'
      + (f'; {labels["dropped"]:,} of {labels["generated"]:,} drawn dropped'
         if labels['dropped'] else ''))
  def show(key: str, digits: int) -> str:
    return 'n/a' if q[key] is None else f'{q[key]:.{digits}f}'
  log(f'  quality: FD {show("fd", 2)} | precision {show("precision", 3)} | recall '
      f'{show("recall", 3)} | memorisation ratio {show("memorisation_ratio", 2)} '
      '(about 1: no copies of training images)')
  if manifest.get('augmentation_check'):
    from gan_jax import augmentation_check
    log(f'  augmentation check (real test split): '
        f'{augmentation_check.text(manifest["augmentation_check"])}')
  if manifest['cas']:
    from gan_jax import cas as cas_lib
    c = manifest['cas']
    log(f'  CAS: {c["cas"]:.2%} on real test images (the same CNN trained on '
        f'{c["real_images"]:,} real images: {c["cas_real"]:.2%})'
        f'{cas_lib.worst_class_text(c, manifest["dataset"])}')

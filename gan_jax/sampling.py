"""How images are drawn: the generator in inference mode (`generate`), the
key streams of --seed, the fixed noise of the sample grids, a trained run's
generator loaded for drawing, and --mode=sample.

  python run.py --mode=sample --workdir=RUN --num_samples=1000 --sample_dir=DIR
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import checkpoints, datasets, destination, files, images, outputs, train
from gan_jax import workdir_lock
from gan_jax import workdir as workdir_lib
from gan_jax.config import Config
from gan_jax.errors import RunError

Log = Callable[[str], None]

GRID_SIDE = 5  # The fixed 5x5 grid (a conditional run: a class per row, 10 columns).
CLASS_COLUMNS = 10  # A conditional grid's columns: as many images of each class.
# The key streams of a run, each its own use of --seed.
KEY_STREAMS = ('init', 'shuffle', 'train', 'grid', 'eval', 'final', 'sample')
# A sample folder's record of what --mode=sample wrote there (so a later sample
# replaces exactly those, with --overwrite, and never mixes with them).
SAMPLE_RECORD = '.gan_jax-sample.json'
SAMPLE_FORMAT = 'gan_jax-sample'


@jax.jit
def inference_variables(state: train.GANState) -> dict[str, Any]:
  """The variables the generator samples with, in inference mode (train=False).

  The EMA (or raw) weights and, with BatchNorm, standing statistics (as BigGAN
  samples): each BatchNorm's batch mean and variance under these weights,
  averaged over batches from a fixed key (`standing_stats_batch_size` images
  each, mixed labels). So an image depends on its own noise and label only;
  the running averages are not used, as they follow the raw weights.
  """
  params = state.sampling_params
  if state.batch_statistics_fn is None:
    return {'params': params}
  size = state.standing_stats_batch_size

  def batch_statistics(i):
    z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(0), i), (size, state.noise_dim))
    labels = (jnp.arange(size, dtype=jnp.int32) + i * size) % max(state.num_classes, 1)
    _, updates = state.batch_statistics_fn(
        {'params': params, 'batch_stats': state.generator.batch_stats}, z, labels,
        train=True, mutable=['batch_stats'])
    return updates['batch_stats']

  stats = jax.lax.map(batch_statistics, jnp.arange(state.standing_stats_batches))
  return {'params': params,
          'batch_stats': jax.tree_util.tree_map(lambda x: x.mean(axis=0), stats)}


@functools.partial(jax.jit, static_argnums=0)
def _generate_batch(apply_fn: Any, variables: dict[str, Any], z: jax.Array,
                    labels: jax.Array) -> jax.Array:
  return apply_fn(variables, z, labels, train=False)


def generate(state: train.GANState, z: jax.Array, labels: Any = None, batch_size: int = 500,
             variables: dict[str, Any] | None = None) -> np.ndarray:
  """Generated images for noise `z` (and, if conditional, `labels`), in batches
  of `batch_size`.

  Each image is a function of its own noise and label (`inference_variables`,
  computed here unless `variables` gives them), so batch size and make-up do
  not change it beyond float rounding.
  """
  z = np.asarray(z, np.float32)
  if labels is None:
    if state.num_classes:
      raise ValueError('a conditional generator needs the labels to generate')
    labels = np.zeros(len(z), np.int32)
  labels = np.asarray(labels, np.int32)
  if variables is None:
    variables = inference_variables(state)
  out = [np.asarray(_generate_batch(state.generator.apply_fn, variables,
                                    jnp.asarray(z[start:start + batch_size]),
                                    jnp.asarray(labels[start:start + batch_size])))
         for start in range(0, len(z), batch_size)]
  return np.concatenate(out)


def sample_noise(key: jax.Array, n: int, noise_dim: int, scale: float = 1.0) -> jax.Array:
  """Normal generator input with standard deviation `scale` (training's: 1)."""
  return scale * jax.random.normal(key, (n, noise_dim))


def keys(seed: int) -> dict[str, jax.Array]:
  """Independent keys for each use (`KEY_STREAMS`), all derived from --seed."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, i) for i, name in enumerate(KEY_STREAMS)}


def class_rows(config: Config, columns: int) -> np.ndarray | None:
  """The labels of a conditional grid with one class per row, `columns` images
  each (0, 0, ..., 1, 1, ...); None for an unconditional run."""
  if not config.conditional:
    return None
  return np.repeat(np.arange(datasets.get(config.dataset).num_classes), columns)


def class_labels(config: Config, n: int) -> np.ndarray | None:
  """`n` labels, every class equally (the first ones one more), in class
  order; None for an unconditional run."""
  if not config.conditional:
    return None
  return np.sort(np.arange(n) % datasets.get(config.dataset).num_classes)


def grid_shape(config: Config) -> tuple[int, int]:
  """(rows, columns) of the sample grids: 5x5, or a row per class of
  CLASS_COLUMNS images."""
  if not config.conditional:
    return GRID_SIDE, GRID_SIDE
  return datasets.get(config.dataset).num_classes, CLASS_COLUMNS


def grid_noise(config: Config, key: jax.Array) -> jax.Array:
  """The fixed noise of the sample grids: 25 vectors, or for a conditional run
  CLASS_COLUMNS vectors repeated on every class row (a column keeps its noise)."""
  if not config.conditional:
    return sample_noise(key, GRID_SIDE ** 2, config.noise_dim)
  rows, columns = grid_shape(config)
  z = sample_noise(key, columns, config.noise_dim)
  return np.tile(np.asarray(z), (rows, 1))


def initial_progress(config: Config, run_keys: dict[str, jax.Array], mesh=None
                     ) -> checkpoints.Progress:
  """A new run's starting point; with a mesh, its arrays replicated on it (the
  form every process saves and restores checkpoints in)."""
  state = train.create_state(config, run_keys['init'])
  fixed_noise = grid_noise(config, run_keys['grid'])
  if mesh is not None:
    state = train.replicate(state, mesh)
    fixed_noise = train.replicate(np.asarray(fixed_noise), mesh)
  return checkpoints.Progress(state=state, fixed_noise=fixed_noise, history=[],
                              start_epoch=0)


def load_latest_run(config: Config, log: Log = print
                    ) -> tuple[train.GANState, Config, int]:
  """The generator state of the newest intact checkpoint in `config.workdir`,
  the run's own configuration (from the checkpoint) and its epoch: what
  --mode=sample and --mode=export start from. The caller holds the workdir.

  Raises:
    RunError: no checkpoint, or `config.label` asked of an unconditional run.
    checkpoints.CheckpointError: the checkpoints are damaged.
  """
  if config.pretrained is not None:  # A generator shipped with the package.
    from gan_jax import pretrained
    return pretrained.load(config.pretrained, log)
  workdir = os.path.abspath(config.workdir)
  if not checkpoints.has_checkpoint(workdir):
    raise RunError(f'--workdir={config.workdir} holds no checkpoint '
                   f'({checkpoints.checkpoint_dir(workdir)} is missing or empty); '
                   'train a run there first')
  manager = checkpoints.make_manager(workdir, create=False)
  epoch = checkpoints.intact_for_reading(manager, workdir, log)
  meta = checkpoints.read_meta(manager, epoch)
  run_config = checkpoints.run_config(meta)
  if datasets.is_folder(run_config.dataset):  # Its class names, and its classifier.
    datasets.open_folder(run_config.dataset, run_config.skip_bad_images)
  classes = datasets.get(run_config.dataset).num_classes
  if config.label is not None and run_config.conditional and config.label >= classes:
    raise RunError(f'--label={config.label}: the run in {workdir} has {classes} classes, '
                   f'0 to {classes - 1}')
  if config.label is not None and not run_config.conditional:
    raise RunError(f'--label={config.label}: the run in {workdir} is unconditional '
                   '(trained without --conditional) and cannot be asked for a class; '
                   'drop --label, or train a run with --conditional')
  fresh = initial_progress(run_config, keys(run_config.seed))
  restored, _ = checkpoints.restore(
      manager, epoch, checkpoints.checkpoint_tree(fresh.state, fresh.fixed_noise))
  return restored['gan'], run_config, epoch


def noise_scale_text(scale: float) -> str:
  """' (noise scale 1.25)' after a line about images drawn with --noise_scale; '' at 1."""
  return f' (noise scale {scale:g})' if scale != 1 else ''


def _sample_record(folder: str) -> dict[str, Any] | None:
  """The record of the sample in `folder` (`SAMPLE_RECORD`), or None."""
  try:
    with open(os.path.join(folder, SAMPLE_RECORD)) as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  if (not isinstance(record, dict) or record.get('format') != SAMPLE_FORMAT
      or not isinstance(record.get('files'), list)):
    return None
  return record


def owns(folder: str) -> Callable[[str], bool] | None:
  """None when `folder` is not a sample, else whether a path in it (relative)
  is one the sample wrote. A folder of `sample_NNN.png` only (written before
  samples had a record) counts as one too."""
  record = _sample_record(folder)
  if record is not None:
    names = {str(n) for n in record['files']} | {SAMPLE_RECORD}
    return lambda rel: rel in names
  try:
    names = os.listdir(folder)
  except OSError:
    return None
  legacy = re.compile(r'sample_\d+\.png|\.tmp-.*')
  if names and all(legacy.fullmatch(n) and os.path.isfile(os.path.join(folder, n))
                   for n in names):
    return lambda rel: legacy.fullmatch(rel) is not None
  return None


def is_sample(folder: str) -> bool:
  """True when `folder` holds images written by --mode=sample."""
  return os.path.isdir(folder) and owns(folder) is not None


KIND = destination.Kind('sample', '--sample_dir', outputs.SAMPLE, owns)


def sample_from_run(config: Config, log: Log = print) -> list[str]:
  """Writes `config.num_samples` PNGs from the latest generator of `config.workdir`.

  The run's own configuration is read from its checkpoint; `config.seed`
  picks the noise. The images, with their record (`SAMPLE_RECORD`), are
  written beside the folder and renamed into place (`destination`); an
  earlier sample there is replaced only with --overwrite.

  Raises:
    RunError: no checkpoint in the workdir, or the sample dir is unusable.
    checkpoints.CheckpointError: the checkpoint is corrupt.
    workdir_lock.WorkdirBusy: a run is training in the workdir, or another
      command writes the sample folder.
    errors.WriteError: the images cannot be written (one line).
    errors.Interrupted: SIGINT / SIGTERM; nothing is left half-written.
  """
  workdir = os.path.abspath(config.workdir)
  sample_dir = destination.check(
      KIND, config.sample_dir or os.path.join(workdir, 'samples'), config.overwrite)
  kept = f'the run in {workdir} is unchanged and {sample_dir} is as it was'
  with destination.reserved(KIND, sample_dir, config.overwrite, log) as place, \
       held_for_reading(config, 'sampling'), \
       workdir_lib.write_failures_explained(workdir, 'sampling failed', kept):
    return _sample(config, workdir, place, log)


def held_for_reading(config: Config, command: str) -> Any:
  """The workdir held while its checkpoint is read (a training run may not
  start there meanwhile); nothing to hold for a shipped generator."""
  if config.pretrained is not None:
    return contextlib.nullcontext()
  return workdir_lock.hold(os.path.abspath(config.workdir), exclusive=False, command=command)


def _sample(config: Config, workdir: str, place: destination.Place, log: Log
            ) -> list[str]:
  """`sample_from_run` once the workdir and the sample folder are held."""
  state, run_config, epoch = load_latest_run(config, log)
  key = jax.random.fold_in(keys(config.seed)['sample'], config.num_samples)
  z = sample_noise(key, config.num_samples, run_config.noise_dim, config.noise_scale)
  labels: Any = None
  what = ''
  if run_config.conditional:
    if config.label is None:  # The classes in turn.
      labels = np.arange(config.num_samples) % datasets.get(run_config.dataset).num_classes
      what = ' of every class'
    else:
      labels = np.full(config.num_samples, config.label)
      name = datasets.get(run_config.dataset).class_names[config.label]
      what = f' of class {config.label} ({name})'
  tmp = place.temp()
  names = images.save_images(tmp, generate(state, z, labels), prefix='sample_')
  files.write_json(os.path.join(tmp, SAMPLE_RECORD), {
      'format': SAMPLE_FORMAT, 'checkpoint_epoch': epoch,
      **({'pretrained': config.pretrained} if config.pretrained else {'workdir': workdir}),
      'seed': config.seed, 'noise_scale': config.noise_scale, 'label': config.label,
      'files': names})
  sample_dir = place.install(tmp)
  log(f'Wrote {len(names)} images{what} from the generator of epoch {epoch} to '
      f'{sample_dir}{noise_scale_text(config.noise_scale)}')
  return [os.path.join(sample_dir, n) for n in names]

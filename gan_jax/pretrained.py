"""Generators shipped with the package: images right after install, no training.

``gan_jax/generators/<name>/`` holds the generator of each preset's default
run (the README's command; `name` is the preset's, e.g. ``fashion-conditional``)::

  params.npz      its sampling weights (the EMA, standing statistics are
                  recomputed from them), float16
  generator.json  the run's config, the command and commit that trained it,
                  the SHA-256 of params.npz, and its figures

``--mode=sample`` and ``--mode=export`` with ``--pretrained=NAME`` draw from it
instead of a workdir's checkpoint. ``python -m gan_jax.pretrained
--workdir=RUN --name=NAME`` packs a finished run (docs/pretrained.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any, Callable

import numpy as np

from gan_jax import errors, presets
from gan_jax.config import Config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'generators')
PARAMS = 'params.npz'
META = 'generator.json'
CHECK_IMAGES = 1000  # The images `check_figures` scores (and a test scores again).
CHECK_SEED = 0
FORMAT_VERSION = 1

Log = Callable[[str], None]


class PretrainedError(errors.GanJaxError):
  """No such shipped generator, or its files are damaged."""


def names() -> list[str]:
  """The shipped generators, in the presets table's order."""
  return [p.name for p in presets.PRESETS.values()
          if os.path.exists(os.path.join(ROOT, p.name, META))]


def directory(name: str) -> str:
  return os.path.join(ROOT, name)


def check_name(name: str) -> None:
  """Raises PretrainedError naming the shipped generators if `name` is not one."""
  if name not in names():
    raise PretrainedError(f'no such shipped generator {name!r}; use one of '
                          f'{", ".join(names()) or "none"}')


def read_meta(name: str) -> dict[str, Any]:
  check_name(name)
  path = os.path.join(directory(name), META)
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise PretrainedError(f'the shipped generator {name!r} is damaged: cannot read {path} '
                          f'({e}); reinstall gan_jax') from None


def file_sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def load(name: str, log: Log = print) -> tuple[Any, Config, int]:
  """(generator state, run config, epoch) of a shipped generator, as
  `sampling.load_latest_run` gives them for a workdir.

  Raises:
    PretrainedError: unknown name, damaged or mismatched files.
  """
  import jax
  import jax.numpy as jnp
  from flax import traverse_util
  from gan_jax import checkpoints, sampling, train
  meta = read_meta(name)
  path = os.path.join(directory(name), PARAMS)
  if not os.path.exists(path) or file_sha256(path) != meta.get('params_sha256'):
    raise PretrainedError(f'the shipped generator {name!r} is damaged: {path} is missing or '
                          'does not match its SHA-256 in generator.json; reinstall gan_jax')
  run_config = checkpoints.run_config(meta)
  # Without the reconstruction term's encoder, which only training uses.
  state = train.create_state(run_config.replace(reconstruction=0.0),
                             sampling.keys(run_config.seed)['init'])
  with np.load(path, allow_pickle=False) as z:
    flat = {tuple(k.split('/')): z[k] for k in z.files}
  template = traverse_util.flatten_dict(jax.device_get(state.sampling_params))
  if set(flat) != set(template) or any(flat[k].shape != template[k].shape for k in flat):
    raise PretrainedError(f'the shipped generator {name!r} does not fit this version of '
                          'gan_jax (its weights have other shapes); reinstall gan_jax')
  params = traverse_util.unflatten_dict(
      {k: jnp.asarray(v, template[k].dtype) for k, v in flat.items()})
  state = state.replace(generator=state.generator.replace(params=params),
                        generator_ema=params)
  log(f'generator: {name}, shipped with gan_jax (trained by `{meta["command"]}`, epoch '
      f'{meta["epoch"]})')
  return state, run_config, int(meta['epoch'])


def describe(name: str) -> dict[str, Any]:
  """What an export's manifest says of the shipped generator it came from."""
  meta = read_meta(name)
  return {'name': name, 'params_sha256': meta['params_sha256'], 'command': meta['command'],
          'git_commit': meta['git_commit'], 'figures': meta['figures']}


def check_figures(name: str) -> dict[str, float]:
  """FD and (conditional) label agreement of CHECK_IMAGES images drawn with a
  fixed key, scored by the shipped classifier: what generator.json records
  and a test measures again."""
  import jax
  from gan_jax import classifier_store, quality, sampling
  state, run_config, _ = load(name, log=lambda *_: None)
  stored = classifier_store.load(run_config.dataset,
                                 classifier_store.shipped_dir(run_config.dataset), shipped=True)
  key = jax.random.key(CHECK_SEED)
  z = sampling.sample_noise(key, CHECK_IMAGES, run_config.noise_dim)
  labels = (np.arange(CHECK_IMAGES) % stored.classifier.num_classes
            if run_config.conditional else None)
  images = sampling.generate(state, z, labels)
  q = quality.evaluate(stored.classifier, images, stored.reference, requested_labels=labels)
  out = {'images': CHECK_IMAGES, 'fd': float(q['fd'])}
  if run_config.conditional:
    out['label_agreement'] = float(q['label_agreement'])
  return out


def quality_figures(name: str, run_config: Config) -> dict[str, float]:
  """FD, IS, precision, recall (against the run's training images) and label
  agreement of 5,000 images of the shipped weights, as a run evaluates."""
  import jax
  from gan_jax import evaluate, input_pipeline
  state, _, _ = load(name, log=lambda *_: None)
  evaluator = evaluate.Evaluator(run_config, log=lambda *_: None)
  data, _ = input_pipeline.training_split(run_config.dataset, run_config.data_dir,
                                          run_config.limit, run_config.train_examples,
                                          run_config.seed)
  evaluator.use_training_data(data)
  q = evaluator.quality(state, jax.random.key(CHECK_SEED), run_config.eval_samples)
  return {k: float(q[k]) for k in ('fd', 'is', 'precision', 'recall', 'classes_covered',
                                   'label_agreement') if q.get(k) is not None}


def pack(workdir: str, name: str, command: str, log: Log = print) -> dict[str, Any]:
  """Writes the shipped folder of `name` from the finished run in `workdir`:
  its newest checkpoint's sampling weights (float16) and generator.json with
  the run's report figures and `check_figures`."""
  import jax
  from flax import traverse_util
  from gan_jax import files, sampling
  state, run_config, epoch = sampling.load_latest_run(Config(workdir=workdir), log)
  preset = presets.get(run_config.dataset, run_config.conditional).name
  if preset != name:
    raise PretrainedError(f'the run in {workdir} is of preset {preset!r}, not {name!r}')
  params = jax.device_get(state.sampling_params)
  if run_config.reconstruction:  # The encoder only trains; sampling needs the generator.
    params = params['generator']
  flat = traverse_util.flatten_dict(params)
  buf = io.BytesIO()
  np.savez_compressed(buf, **{'/'.join(k): np.asarray(v, np.float16) for k, v in flat.items()})
  with open(os.path.join(workdir, 'report.json')) as f:
    report = json.load(f)
  figures = {}
  if report.get('cas'):
    figures.update(cas=report['cas']['cas'], cas_real=report['cas']['cas_real'])
  with open(os.path.join(workdir, 'run.json')) as f:
    info = json.load(f)
  folder = directory(name)
  os.makedirs(folder, exist_ok=True)
  files.write_bytes(os.path.join(folder, PARAMS), buf.getvalue())
  meta = {'format_version': FORMAT_VERSION, 'name': name, 'command': command,
          'git_commit': info.get('git_commit'), 'trained': info.get('started'),
          'epoch': epoch,
          # No paths of the machine that trained it.
          'config': run_config.replace(workdir='.', data_dir=None, classifier_dir=None).__dict__,
          'params_sha256': file_sha256(os.path.join(folder, PARAMS)),
          'figures': figures,
          'figures_of': 'the shipped weights, 5,000 images (the CAS: of the run, 10,000)'}
  files.write_json(os.path.join(folder, META), meta)
  meta['figures'] = {**quality_figures(name, run_config), **figures}
  meta['check'] = check_figures(name)
  files.write_json(os.path.join(folder, META), meta)
  log(f'{name}: {os.path.getsize(os.path.join(folder, PARAMS)):,} bytes, check {meta["check"]}')
  return meta


def main(argv: list[str]) -> None:
  from absl import flags, logging
  del argv
  logging.set_verbosity(logging.WARNING)
  pack(flags.FLAGS.workdir, flags.FLAGS.name, flags.FLAGS.command)


if __name__ == '__main__':
  from absl import app, flags
  flags.DEFINE_string('workdir', None, 'A finished default run.', required=True)
  flags.DEFINE_string('name', None, 'Its preset name, e.g. fashion-conditional.',
                      required=True)
  flags.DEFINE_string('command', None, 'The command that trained it (for the record).',
                      required=True)
  app.run(main)

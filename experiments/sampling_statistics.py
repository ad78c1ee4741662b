"""A finished run's quality sampled two ways: BatchNorm batch statistics vs standing statistics.

Batch statistics: each generated batch is normalised with its own mean and
variance, so an image depends on the rest of its batch. Standing statistics
(`sampling.inference_variables`, how gan_jax samples): fixed statistics of the
sampling weights, so it does not. For the
run's final checkpoint this prints, as JSON lines:

* FD and IS of the run's final evaluation images (same noise, classes in
  turn for a conditional run), sampled each way in batches of 500;
* for a conditional run, the domain classifier's agreement with the
  requested class for single-class batches: `--mode=sample --label=k
  --num_samples=1000` for each k (the command's own code path, read back
  from its PNGs), and the same noise with batch statistics;
* the pixel range of `--mode=sample --num_samples=1`.

Usage:
  python experiments/sampling_statistics.py --workdir=RUN [--samples=1000] [--draws=1]
Data from $TFDS_DATA_DIR (or --data_dir); the classifier the run used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from gan_jax import xla_setup  # pylint: disable=g-import-not-at-top

xla_setup.use_fast_cpu_settings()  # Before jax is imported.

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image  # pylint: disable=g-import-not-at-top

from gan_jax import datasets, evaluate, input_pipeline, quality, sampling, train  # pylint: disable=g-import-not-at-top
from gan_jax.config import Config  # pylint: disable=g-import-not-at-top


def with_batch_statistics(state: train.GANState, z: np.ndarray, labels: np.ndarray,
                          batch_size: int = 500) -> np.ndarray:
  """The former sampling: BatchNorm normalises each batch with its own statistics."""
  generate = jax.jit(lambda z, y: train.generate_train(
      state.generator, state.sampling_params, z, y)[0])
  return np.concatenate([np.asarray(generate(z[i:i + batch_size], labels[i:i + batch_size]))
                         for i in range(0, len(z), batch_size)])


def sample_mode(config: Config, **flags) -> np.ndarray:
  """Images written by --mode=sample with `flags`, read back in [-1, 1]."""
  with tempfile.TemporaryDirectory() as out:
    paths = sampling.sample_from_run(config.replace(sample_dir=out, **flags), log=lambda *_: None)
    return np.stack([np.asarray(Image.open(p)) for p in paths])[..., None] / 127.5 - 1


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--samples', type=int, default=1000, help='images per class')
  parser.add_argument('--draws', type=int, default=1, help='evaluation draws of the FD and '
                      'IS (draw d > 0 folds 1000 * d into the evaluation key)')
  args = parser.parse_args()
  state, run_config, epoch = sampling.load_latest_run(Config(workdir=args.workdir), log=print)
  data_dir = input_pipeline.resolve_data_dir(args.data_dir or run_config.data_dir)
  evaluator = evaluate.Evaluator(run_config.replace(data_dir=data_dir), print)
  n = run_config.eval_samples
  C = state.num_classes
  turn = np.arange(n) % C if C else np.zeros(n, np.int32)
  requested = turn if C else None
  for draw in range(args.draws):
    key = jax.random.fold_in(sampling.keys(run_config.seed)['eval'], epoch)
    key = jax.random.fold_in(key, 1000 * draw) if draw else key
    z = np.asarray(sampling.sample_noise(key, n, state.noise_dim))
    for how, images in (('batch statistics', with_batch_statistics(state, z, turn)),
                        ('standing statistics', sampling.generate(state, z, turn))):
      q = quality.evaluate(evaluator.classifier, images, evaluator.reference_stats,
                           requested_labels=requested)
      print(json.dumps({'workdir': args.workdir, 'epoch': epoch, 'draw': draw,
                        'sampling': how, 'images': n,
                        **{k: round(float(v), 4) for k, v in q.items()}}))
  cli_config = Config(workdir=args.workdir, seed=run_config.seed)
  if C:
    for k in range(C):
      labels = np.full(args.samples, k)
      drawn = sample_mode(cli_config, num_samples=args.samples, label=k)
      zk = np.asarray(sampling.sample_noise(jax.random.fold_in(
          sampling.keys(run_config.seed)['sample'], args.samples), args.samples,
          state.noise_dim))
      before = with_batch_statistics(state, zk, labels, batch_size=args.samples)
      agree = {how: float(np.mean(evaluator.classifier.predict(x) == k))
               for how, x in (('sample_mode', drawn), ('batch_statistics', before))}
      name = datasets.get(run_config.dataset).class_names[k]
      print(json.dumps({'label': k, 'class': name, 'images': args.samples,
                        'agreement': agree}))
  one = sample_mode(cli_config, num_samples=1, label=0 if C else None)
  pixels = np.round((one + 1) * 127.5)
  print(json.dumps({'num_samples=1': {'min': int(pixels.min()), 'max': int(pixels.max()),
                                      'std': round(float(pixels.std()), 1)}}))


if __name__ == '__main__':
  main()

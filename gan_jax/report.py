"""What a training run reports, and the one writer of it: the epoch and
quality lines, the progress bar, ``metrics.jsonl`` (a line per epoch),
TensorBoard, the sample grids, the plots, ``run.json``, and at the end the
100 final images, their labels, ``report.json`` and the summary.

Process 0 reports for every process: `make` gives it a `Reporter` and the
others a `Silent` one, so the train loop has no per-process branches.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm import tqdm

from gan_jax import (datasets, evaluate, files, images, multihost, presets, quality, sampling,
                     train)
from gan_jax.config import Config

Log = Callable[[str], None]

FINAL_IMAGES = 100   # final_generated_images/img_000.png ... img_099.png


def format_epoch_line(epoch: int, epochs: int, metrics: dict[str, float],
                      extra: tuple[str, ...] = ()) -> str:
  """``Epoch 10/50 | D_loss: 0.53 | D_acc: 78.12% | G_loss: 1.24`` (+ ``| extra``)."""
  parts = [f'Epoch {epoch}/{epochs}', f'D_loss: {metrics["d_loss"]:.2f}',
           f'D_acc: {100 * metrics["d_acc"]:.2f}%', f'G_loss: {metrics["g_loss"]:.2f}']
  return ' | '.join(parts + list(extra))


def format_duration(seconds: float) -> str:
  """A short human duration: 42s, 3m05s, 2h03m, 41d02h."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  if seconds < 86400:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  return f'{seconds // 86400}d{seconds % 86400 // 3600:02d}h'


def epoch_record(epoch: int, config: Config, means: dict[str, float], seconds: float,
                 rate: float) -> dict[str, Any]:
  """An epoch's line of metrics.jsonl (and of the checkpoint's history)."""
  return {'epoch': epoch, 'epochs': config.epochs,
          **{k: float(means[k]) for k in train.METRIC_NAMES},
          'seconds': round(seconds, 3), 'images_per_s': round(rate, 1)}


def git_commit() -> str | None:
  """The commit of the gan_jax checkout that runs, or None (an installed copy)."""
  try:
    out = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5)
    return out.stdout.strip() or None if out.returncode == 0 else None
  except (OSError, subprocess.SubprocessError):
    return None


def run_info(config: Config, evaluator: evaluate.Evaluator) -> dict[str, Any]:
  """The preset, config, classifier, library versions, device and git commit,
  for run.json."""
  import flax
  import optax
  import tensorflow_datasets as tfds
  folder = datasets.get(config.dataset).folder
  return {
      'preset': presets.get(config.dataset, config.conditional).name,
      'config': config.__dict__,
      # A folder's classes and each split's files, enough to rebuild them.
      **({'folder': folder.record()} if folder is not None else {}),
      'classifier': evaluator.stored.describe(),
      'versions': {'python': platform.python_version(), 'jax': jax.__version__,
                   'flax': flax.__version__, 'optax': optax.__version__,
                   'tensorflow_datasets': tfds.__version__},
      'devices': [d.device_kind for d in jax.devices()],
      'platform': jax.default_backend(),
      'git_commit': git_commit(),
      'started': datetime.datetime.now().isoformat(timespec='seconds'),
  }


class Reporter:
  """Process 0's writer of everything a run reports into its workdir."""

  def __init__(self, config: Config, log: Log):
    self.config = config
    self.evaluator: evaluate.Evaluator = None  # type: ignore[assignment]  # use_evaluator
    self.workdir = os.path.abspath(config.workdir)
    self.log = log
    self.train_indices: np.ndarray | None = None
    self.bar: Any = None
    self.tb: Any = None

  def write(self, line: str) -> None:
    """A line of progress: above the progress bar while there is one."""
    (self.bar.write if self.bar is not None else self.log)(line)

  def path(self, name: str) -> str:
    return os.path.join(self.workdir, name)

  # The start.
  def use_evaluator(self, evaluator: evaluate.Evaluator, data: Any,
                    indices: np.ndarray | None = None) -> None:
    """Evaluates with `evaluator`, which first takes the features of the
    training images `data` (only process 0 evaluates); `indices`: theirs in
    the split (--train_examples), for run.json."""
    self.evaluator = evaluator
    self.train_indices = indices
    evaluator.use_training_data(data)

  def start(self, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl cut back to the checkpoint's epochs (later ones are
    redone), the report of a shorter run removed (were the final outputs to
    fail, it must not make the run look complete), and run.json."""
    files.write_jsonl(self.path('metrics.jsonl'), history)
    with contextlib.suppress(FileNotFoundError):
      os.unlink(self.path('report.json'))
    info = run_info(self.config, self.evaluator)
    if self.train_indices is not None:  # Enough to rebuild the same real set.
      info['train_example_indices'] = [int(i) for i in self.train_indices]
    files.write_json(self.path('run.json'), info)

  def begin_epochs(self, images_left: int) -> None:
    """The progress bar (on a terminal) and TensorBoard (with --tensorboard)."""
    if self.config.progress and sys.stdout.isatty():
      self.bar = tqdm(total=images_left, unit='img', unit_scale=True, dynamic_ncols=True,
                      leave=False)
    if self.config.tensorboard:
      from gan_jax.tensorboard import TensorBoardWriter
      self.tb = TensorBoardWriter(self.path('tensorboard'))

  # Each epoch.
  def epoch_started(self, epoch: int) -> None:
    if self.bar is not None:
      self.bar.set_description(f'Epoch {epoch}/{self.config.epochs}')

  def advance(self, images_done: int) -> None:
    if self.bar is not None:
      self.bar.update(images_done)

  def epoch_line(self, epoch: int, means: dict[str, float], seconds: float,
                 rate: float) -> None:
    """``Epoch 3/30 | D_loss ... | 12.5s | 4,809 img/s | ETA 5m37s``."""
    eta = (self.config.epochs - epoch) * seconds
    extra = (f'{seconds:.1f}s', f'{rate:,.0f} img/s', f'ETA {format_duration(eta)}')
    self.write(format_epoch_line(epoch, self.config.epochs, means, extra))

  def evaluate(self, epoch: int, progress: Any, key: jax.Array) -> dict[str, Any]:
    """The fixed-noise grid and a quality evaluation (drawn from `key`) of
    epoch `epoch`; returns the quality figures for the epoch's record."""
    config = self.config
    state = multihost.local_copy(progress.state)
    variables = sampling.inference_variables(state)
    rows, columns = sampling.grid_shape(config)
    grid = sampling.generate(state, multihost.local_copy(progress.fixed_noise),
                          sampling.class_rows(config, columns), variables=variables)
    images.save_grid(self.path(os.path.join('generated_samples', f'epoch_{epoch:02d}.png')),
                     grid, rows, columns)
    t_eval = time.time()
    q = self.evaluator.quality(state, key, config.eval_samples, variables)
    self.write(f'  quality at epoch {epoch}: '
               f'{evaluate.quality_text(q, self.evaluator.reference, config)} '
               f'| {time.time() - t_eval:.1f}s')
    if self.tb:
      self.tb.image(epoch, 'samples', images.sample_grid(grid, side, side, scale=2))
    return q

  def epoch_done(self, record: dict[str, Any], history: list[dict[str, Any]],
                 plots: bool) -> None:
    """The epoch's line appended to metrics.jsonl (once its checkpoint, if
    any, is saved: an epoch whose checkpoint failed is not claimed), its
    scalars, and with `plots` the plots of the history so far."""
    files.append_jsonl(self.path('metrics.jsonl'), record)
    if self.tb:
      self.tb.scalars(record['epoch'], record)
    if plots:
      from gan_jax import plots as plots_lib
      plots_lib.write_all_plots(self.workdir, history, reference=self.evaluator.reference)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
      self.bar = None
    if self.tb:
      self.tb.close()
      self.tb = None

  # The end.
  def final(self, state: train.GANState, history: list[dict[str, Any]], key: jax.Array,
            seconds: float, images_per_s: list[float]) -> dict[str, Any]:
    """The final images, their labels and checks, report.json and the
    summary; returns the report. `key`: the final images' noise."""
    report = self._final_outputs(multihost.local_copy(state), history, key)
    report['wall_seconds'] = round(seconds, 1)
    report['mean_images_per_s'] = (round(float(np.mean(images_per_s)), 1)
                                   if images_per_s else None)
    files.write_json(self.path('report.json'), report)
    self._print_summary(report)
    return report

  def _final_outputs(self, state: train.GANState, history: list[dict[str, Any]],
                     key: jax.Array) -> dict[str, Any]:
    """100 new images, their labels, the final grid and the report (a conditional
    run's: ten of each class, a class per row of the grid)."""
    from gan_jax import labels
    config, evaluator = self.config, self.evaluator
    out = self.path('final_generated_images')
    z = sampling.sample_noise(key, FINAL_IMAGES, config.noise_dim)
    variables = sampling.inference_variables(state)  # Once, for these and the final checks.
    final = sampling.generate(state, z,
                           sampling.class_labels(config, FINAL_IMAGES),
                           variables=variables)
    names = images.save_images(out, final)
    images.save_grid(os.path.join(out, 'final_grid.png'), final, 10, 10)
    extra = evaluator.final_checks(out, final, jax.random.fold_in(key, 1), state, variables,
                                   self.log)
    label_report = labels.label_report(evaluator.classifier, final, names)
    labels.write_label_outputs(label_report, out, final)
    self.log('Labels of the 100 final images (domain classifier):')
    self.log(labels.distribution_table(label_report))
    counts = [int(c) for c in label_report.counts]
    class_names = list(evaluator.classifier.class_names)
    from gan_jax import plots as plots_lib
    plots_lib.write_all_plots(self.workdir, history, reference=evaluator.reference,
                              label_counts=counts, class_names=class_names)
    evaluated = [r for r in history if 'fd' in r]
    last = evaluated[-1] if evaluated else {}
    return {
        'epochs': config.epochs,
        'final': {k: last.get(k)
                  for k in ('epoch',) + quality.evaluation_keys(config.conditional)},
        'reference': evaluator.reference,
        'classifier': evaluator.stored.describe(),
        'classifier_accuracy': evaluator.stored.test_accuracy,
        'label_counts': dict(zip(class_names, counts)),
        'quality_curve': [{k: r[k] for k in ('epoch', *(m.key for m in quality.CURVES))
                           if k in r} for r in evaluated],
        **extra,
    }

  def _print_summary(self, report: dict[str, Any]) -> None:
    final, ref = report['final'], report['reference']

    def rel(name: str) -> str:
      path = self.path(name)
      inside = path.startswith(os.getcwd() + os.sep)
      return os.path.relpath(path) if inside else path
    lines = [
        '', 'Summary',
        f'  wall time          {format_duration(report["wall_seconds"])}'
        + (f' ({report["mean_images_per_s"]:,.0f} img/s in training)'
           if report['mean_images_per_s'] else ''),
    ]
    if final.get('fd') is not None:
      m = quality.METRICS
      lines.append(f'  final quality      {m["fd"].text(final["fd"])} | '
                   f'{m["is"].text(final["is"])} (real data: {m["is"].text(ref["is"])}) | '
                   f'{final["classes_covered"]}/{self.evaluator.classifier.num_classes} classes'
                   + (f' | {m["label_agreement"].text(final["label_agreement"])}'
                      if final.get('label_agreement') is not None else ''))
    lines += [
        f'  sample grids       {rel("generated_samples")}/ (progression.gif)',
        f'  final images       {rel("final_generated_images")}/ (labels.csv, final_grid.png)',
        f'  plots              {rel("plots")}/',
        f'  metrics            {rel("metrics.jsonl")}, {rel("report.json")}',
        f'  checkpoints        {rel("checkpoints")}/',
    ]
    for line in lines:
      self.log(line)


class Silent:
  """The writer of every process but 0: it reports nothing (process 0
  reports for all of them), and its reports are empty."""

  def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
    if not hasattr(Reporter, name):
      raise AttributeError(name)
    return lambda *args, **kwargs: {}


def make(config: Config, log: Log) -> Reporter | Silent:
  """Process 0's `Reporter` (printing with `log`), the others' `Silent` writer."""
  return Reporter(config, log) if multihost.is_main() else Silent()

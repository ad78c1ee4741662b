"""Training plots and the sample-progression GIF, written from a run's workdir.

Everything here reads what the trainer already wrote (`metrics.jsonl`,
`generated_samples/epoch_*.png`) so it can be re-run at any time, e.g. after
each epoch or on a finished run. Every output is rendered into memory and
written with `files.write_bytes`, so a kill never leaves a torn PNG or GIF.
"""

from __future__ import annotations

import io
import math
import os
import re
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

# Headless: no display on training machines; must happen before pyplot loads.
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from gan_jax import files, quality  # noqa: E402

_DPI = 100
_GRID_RE = re.compile(r'^epoch_(\d+)\.png$')
_FRAME_MS = 500           # ~0.5 s per GIF frame.
_MIN_GIF_WIDTH = 256      # Small grids (5x28 px) are upscaled to stay legible.


def _num(value: Any) -> float:
  """A finite float, or NaN for missing / non-numeric / non-finite values."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    return math.nan
  value = float(value)
  return value if math.isfinite(value) else math.nan


def _by_epoch(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
  """Records sorted by epoch, keeping the last one per epoch.

  A resumed run can log an epoch twice; the later line is the one that counts.
  """
  latest: dict[int, Mapping[str, Any]] = {}
  for record in records:
    if 'epoch' in record:
      latest[int(record['epoch'])] = record
  return [latest[e] for e in sorted(latest)]


def _save_figure(fig: Any, path: str) -> None:
  """Renders `fig` to PNG in memory, writes it atomically and closes it."""
  try:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=_DPI)
    files.write_bytes(path, buf.getvalue())
  finally:
    plt.close(fig)  # pyplot keeps every figure alive until closed.


def plot_losses(records: Sequence[Mapping[str, Any]], path: str) -> None:
  """Plots D and G loss per epoch, with D accuracy (%) on a second y axis.

  Args:
    records: `metrics.jsonl` records (need `epoch`; `d_loss`, `g_loss` and
      `d_acc` as a 0..1 fraction; missing values are left as gaps).
    path: where to write the PNG.
  """
  records = _by_epoch(records)
  epochs = [r['epoch'] for r in records]
  fig, ax = plt.subplots(figsize=(8, 4.5))
  ax.plot(epochs, [_num(r.get('d_loss')) for r in records], 'o-', ms=3,
          color='tab:blue', label='D loss')
  ax.plot(epochs, [_num(r.get('g_loss')) for r in records], 'o-', ms=3,
          color='tab:orange', label='G loss')
  ax.set_xlabel('epoch')
  ax.set_ylabel('loss')
  ax.grid(alpha=0.3)
  acc = ax.twinx()
  acc.plot(epochs, [100 * _num(r.get('d_acc')) for r in records], 's--', ms=3,
           color='tab:green', alpha=0.7, label='D accuracy')
  acc.set_ylabel('D accuracy (%)')
  acc.set_ylim(0, 105)
  # One legend for both axes.
  lines = ax.get_lines() + acc.get_lines()
  ax.legend(lines, [l.get_label() for l in lines], loc='upper right', fontsize=8)
  if not records:
    ax.text(0.5, 0.5, 'no epochs yet', ha='center', va='center',
            transform=ax.transAxes, color='gray')
  else:
    # Whole epochs only on the x axis.
    ax.xaxis.get_major_locator().set_params(integer=True)
  ax.set_title('Losses and discriminator accuracy')
  fig.tight_layout()
  _save_figure(fig, path)


def plot_quality(records: Sequence[Mapping[str, Any]],
                 reference: Mapping[str, Any] | None, path: str) -> None:
  """Plots FD (left) and IS (right) over the evaluated epochs, the label
  agreement of a conditional run, and precision and recall when measured.

  Args:
    records: `metrics.jsonl` records; epochs without `fd`/`is` are skipped.
    reference: real-data figures (`report.json`'s `reference`) or None; its
      `is` is drawn as a horizontal line (and its `fd`, when given).
    path: where to write the PNG. Written even with no evaluations yet, with a
      note, so the file always exists once the run has started.
  """
  reference = reference or {}
  records = _by_epoch(records)
  # FD and IS always (a run without evaluations yet says so); the others when measured.
  panels = [m for m in quality.CURVES
            if m.key in ('fd', 'is') or any(m.key in r for r in records)]
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
  for ax, metric in zip(axes, panels):
    key, title, color = metric.key, metric.title, metric.color
    points = [(r['epoch'], _num(r.get(key))) for r in records]
    points = [(e, v) for e, v in points if not math.isnan(v)]
    if points:
      ax.plot([e for e, _ in points], [v for _, v in points], 'o-', ms=4,
              color=color, label='generated')
      ax.xaxis.get_major_locator().set_params(integer=True)
    else:
      ax.text(0.5, 0.5, 'no evaluated epochs yet', ha='center', va='center',
              transform=ax.transAxes, color='gray')
    ref = _num(reference.get(key))
    if not math.isnan(ref):
      ax.axhline(ref, color='black', ls='--', lw=1, label=f'real data ({ref:.3g})')
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
  fig.tight_layout()
  _save_figure(fig, path)


def plot_label_distribution(counts: Sequence[int] | np.ndarray,
                            class_names: Sequence[str] | None, path: str) -> None:
  """Bar chart of how many generated images the classifier put in each class.

  Args:
    counts: count per class, indexed by label.
    class_names: one name per class; None numbers them 0..n-1.
    path: where to write the PNG.
  """
  counts = np.asarray(counts).reshape(-1)
  names = [str(n) for n in class_names] if class_names is not None else [
      str(i) for i in range(len(counts))]
  if len(names) != len(counts):
    raise ValueError(f'{len(counts)} counts but {len(names)} class names')
  fig, ax = plt.subplots(figsize=(8, 4.5))
  x = np.arange(len(counts))
  ax.bar(x, counts, color='tab:blue')
  ax.set_xticks(x)
  # Long names (Fashion-MNIST's 'Ankle boot') overlap unless rotated.
  if max((len(n) for n in names), default=0) > 3:
    ax.set_xticklabels(names, rotation=35, ha='right')
  else:
    ax.set_xticklabels(names)
  total = counts.sum()
  if total > 0 and len(counts):
    ax.axhline(total / len(counts), color='black', ls='--', lw=1,
               label='uniform')
    ax.legend(fontsize=8)
  ax.set_ylabel('images')
  ax.set_title(f'Predicted labels of {int(total)} generated images')
  fig.tight_layout()
  _save_figure(fig, path)


def _epoch_grids(sample_dir: str) -> list[tuple[int, str]]:
  """(epoch, path) of every `epoch_N.png` in `sample_dir` that gan_jax wrote
  (in the workdir's record, if it has one), in epoch order."""
  if not os.path.isdir(sample_dir):
    return []
  recorded = files.recorded(os.path.dirname(os.path.abspath(sample_dir)))
  folder = os.path.basename(os.path.abspath(sample_dir))
  found = []
  for name in os.listdir(sample_dir):
    match = _GRID_RE.match(name)
    if match and (recorded is None or os.path.join(folder, name) in recorded):
      found.append((int(match.group(1)), os.path.join(sample_dir, name)))
  # Numeric order: 'epoch_100' sorts after 'epoch_95'.
  return sorted(found)


def _titled_frame(grid: Image.Image, title: str) -> Image.Image:
  """The grid (grayscale) under a white band holding `title`."""
  grid = grid.convert('L')
  scale = max(1, math.ceil(_MIN_GIF_WIDTH / grid.width))
  if scale > 1:
    grid = grid.resize((grid.width * scale, grid.height * scale),
                       Image.Resampling.NEAREST)
  font_size = max(12, grid.width // 16)
  band = font_size + font_size // 2
  frame = Image.new('L', (grid.width, grid.height + band), color=255)
  frame.paste(grid, (0, band))
  draw = ImageDraw.Draw(frame)
  font = ImageFont.load_default(size=font_size)
  left, top, right, bottom = draw.textbbox((0, 0), title, font=font)
  draw.text(((grid.width - (right - left)) / 2 - left,
             (band - (bottom - top)) / 2 - top), title, fill=0, font=font)
  return frame


def write_progression_gif(sample_dir: str, path: str) -> bool:
  """Animates every `epoch_*.png` grid in `sample_dir`, oldest first.

  Each frame is titled with its epoch; the GIF loops forever at ~0.5 s per
  frame.

  Args:
    sample_dir: folder holding `epoch_05.png`, `epoch_10.png`, ...
    path: where to write the GIF.

  Returns:
    True if the GIF was written, False if there were no grids (nothing written).
  """
  grids = _epoch_grids(sample_dir)
  if not grids:
    return False
  frames = []
  for epoch, grid_path in grids:
    try:
      with Image.open(grid_path) as grid:
        frames.append(_titled_frame(grid, f'Epoch {epoch}'))
    except (OSError, ValueError, SyntaxError):  # A damaged grid: the GIF goes without it.
      continue
  if not frames:
    return False
  size = frames[0].size
  # GIF frames share one canvas: make any odd-sized grid match the first.
  frames = [f if f.size == size else f.resize(size) for f in frames]
  buf = io.BytesIO()
  frames[0].save(buf, format='GIF', save_all=True, append_images=frames[1:],
                 duration=_FRAME_MS, loop=0, optimize=False)
  files.write_bytes(path, buf.getvalue())
  return True


def write_all_plots(workdir: str, history: Sequence[Mapping[str, Any]],
                    reference: Mapping[str, Any] | None = None,
                    label_counts: Sequence[int] | np.ndarray | None = None,
                    class_names: Sequence[str] | None = None) -> list[str]:
  """Writes `plots/losses.png`, `plots/quality.png`,
  `plots/label_distribution.png` (only when `label_counts` is given) and
  `generated_samples/progression.gif` (only when there are epoch grids).

  Args:
    workdir: the run's folder.
    history: the run's per-epoch records (what `metrics.jsonl` holds).
    reference: real-data figures (`report.json`'s `reference`), or None.
    label_counts: generated images per predicted class, or None.
    class_names: names for the classes of `label_counts`.

  Returns:
    The paths written.
  """
  records = list(history)
  plots_dir = os.path.join(workdir, 'plots')
  written = []
  path = os.path.join(plots_dir, 'losses.png')
  plot_losses(records, path)
  written.append(path)
  path = os.path.join(plots_dir, 'quality.png')
  plot_quality(records, reference, path)
  written.append(path)
  if label_counts is not None:
    path = os.path.join(plots_dir, 'label_distribution.png')
    plot_label_distribution(label_counts, class_names, path)
    written.append(path)
  sample_dir = os.path.join(workdir, 'generated_samples')
  path = os.path.join(sample_dir, 'progression.gif')
  if write_progression_gif(sample_dir, path):
    written.append(path)
  return written

"""Labels the final generated images with the domain classifier.

`label_report` classifies the images; `distribution_table` prints how the
labels are distributed; `write_label_outputs` writes, atomically:

* labels.csv               file,label,class_name,confidence (one row per image)
* label_distribution.json  counts and fractions per class, mean confidence
* final_labeled_grid.png   the images in a 10-column grid, upscaled, each with
                           its predicted label and confidence underneath
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gan_jax import files
from gan_jax import images as images_lib

GRID_COLUMNS = 10
GRID_SCALE = 3        # 28 px -> 84 px tiles, so the labels fit under them.
CAPTION_HEIGHT = 14   # Pixels under each tile for the caption.
GRID_PADDING = 2      # White gap between tiles.


class ProbabilityModel(Protocol):
  """What `label_report` needs (`gan_jax.classifier.Classifier` has it)."""
  dataset: str
  class_names: list[str]

  def predict_proba(self, images: np.ndarray) -> np.ndarray:
    ...


@dataclasses.dataclass(frozen=True)
class LabelReport:
  """Predicted labels of a set of images.

  Attributes:
    dataset: the classifier's dataset (TFDS name).
    class_names: the dataset's class names, indexed by label.
    file_names: one name per image (e.g. its PNG), in image order.
    labels: predicted label per image, int, shape (N,).
    confidences: probability of the predicted label per image, shape (N,).
    counts: how many images got each label, shape (num_classes,).
  """
  dataset: str
  class_names: list[str]
  file_names: list[str]
  labels: np.ndarray
  confidences: np.ndarray
  counts: np.ndarray

  @property
  def predicted_names(self) -> list[str]:
    """The class name of each image's predicted label."""
    return [self.class_names[i] for i in self.labels]

  @property
  def num_images(self) -> int:
    return len(self.labels)

  def distribution(self) -> dict[str, Any]:
    """The label distribution as a JSON-ready dict."""
    n = max(self.num_images, 1)
    return {
        'dataset': self.dataset,
        'num_images': self.num_images,
        'mean_confidence': (float(self.confidences.mean())
                            if self.num_images else None),
        'classes': [
            {'label': i, 'class_name': name, 'count': int(self.counts[i]),
             'fraction': round(float(self.counts[i]) / n, 4)}
            for i, name in enumerate(self.class_names)],
    }


def report_from_probs(probs: np.ndarray, file_names: Sequence[str],
                      class_names: Sequence[str], dataset: str) -> LabelReport:
  """Builds a `LabelReport` from class probabilities of shape (N, K)."""
  probs = np.asarray(probs)
  if probs.ndim != 2 or probs.shape[1] != len(class_names):
    raise ValueError(f'expected probabilities of shape (N, {len(class_names)}), '
                     f'got {probs.shape}')
  if len(file_names) != len(probs):
    raise ValueError(f'{len(file_names)} file names for {len(probs)} images')
  labels = probs.argmax(axis=1).astype(np.int64)
  return LabelReport(
      dataset=dataset, class_names=list(class_names),
      file_names=[str(f) for f in file_names], labels=labels,
      confidences=probs[np.arange(len(probs)), labels].astype(np.float64),
      counts=np.bincount(labels, minlength=len(class_names)))


def label_report(classifier: ProbabilityModel, images: np.ndarray,
                 file_names: Sequence[str]) -> LabelReport:
  """Classifies images and collects per-image labels and per-class counts.

  Args:
    classifier: a `gan_jax.classifier.Classifier`.
    images: shape (N, 28, 28, 1) in [-1, 1].
    file_names: N names identifying the images in labels.csv.

  Returns:
    The `LabelReport`.
  """
  return report_from_probs(classifier.predict_proba(images), file_names,
                           classifier.class_names, classifier.dataset)


def distribution_table(report: LabelReport) -> str:
  """A plain-text table: label, class name, count, percent, and a total row."""
  name_width = max([len('class'), *(len(n) for n in report.class_names)])
  n = max(report.num_images, 1)
  lines = [f'{"label":>5}  {"class":<{name_width}}  {"count":>5}  {"percent":>7}']
  for i, name in enumerate(report.class_names):
    count = int(report.counts[i])
    lines.append(f'{i:>5}  {name:<{name_width}}  {count:>5}  {100 * count / n:>6.1f}%')
  lines.append(f'{"":>5}  {"total":<{name_width}}  {report.num_images:>5}  '
               f'{100.0 if report.num_images else 0.0:>6.1f}%')
  return '\n'.join(lines)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
  """Shortens text with '…' until it fits in `width` pixels."""
  if draw.textlength(text, font=font) <= width:
    return text
  while len(text) > 1 and draw.textlength(text + '…', font=font) > width:
    text = text[:-1]
  return text + '…'


def labeled_grid(report: LabelReport, images: np.ndarray,
                 columns: int = GRID_COLUMNS, scale: int = GRID_SCALE
                 ) -> np.ndarray:
  """Renders the images in a grid, each captioned '<class> <confidence>'.

  Returns:
    An RGB uint8 array of shape (rows * (28*scale + CAPTION_HEIGHT + pad) + pad,
    columns * (28*scale + pad) + pad), pad = GRID_PADDING.
  """
  images = np.asarray(images, np.float32)
  if len(images) != report.num_images:
    raise ValueError(f'{len(images)} images for a report of {report.num_images}')
  rows = max(-(-len(images) // columns), 1)
  # White (+1) tiles fill the last row, so they vanish into the background.
  blank = np.ones((rows * columns - len(images),) + images.shape[1:], np.float32)
  grid = images_lib.sample_grid(np.concatenate([images, blank]), rows, columns,
                                border=GRID_PADDING, scale=scale,
                                caption_height=CAPTION_HEIGHT, background=255)
  canvas = Image.fromarray(grid).convert('RGB')
  tile_h, tile_w = images.shape[1] * scale, images.shape[2] * scale
  cell_w, cell_h = tile_w + GRID_PADDING, tile_h + CAPTION_HEIGHT + GRID_PADDING
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default()
  for k in range(len(images)):
    x = GRID_PADDING + (k % columns) * cell_w
    y = GRID_PADDING + (k // columns) * cell_h
    caption = _fit(draw, f'{report.class_names[report.labels[k]]} '
                   f'{report.confidences[k]:.2f}', font, tile_w)
    draw.text((x + 1, y + tile_h + 1), caption, fill='black', font=font)
  return np.asarray(canvas)


def write_label_outputs(report: LabelReport, out_dir: str,
                        images: np.ndarray) -> dict[str, str]:
  """Writes labels.csv, label_distribution.json and final_labeled_grid.png.

  Args:
    report: from `label_report`.
    out_dir: the output folder (created if needed).
    images: the same images, shape (N, 28, 28, 1) in [-1, 1].

  Returns:
    {'csv': path, 'json': path, 'grid': path}.
  """
  paths = {'csv': os.path.join(out_dir, 'labels.csv'),
           'json': os.path.join(out_dir, 'label_distribution.json'),
           'grid': os.path.join(out_dir, 'final_labeled_grid.png')}
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(['file', 'label', 'class_name', 'confidence'])
  for name, label, conf in zip(report.file_names, report.labels,
                               report.confidences):
    writer.writerow([name, int(label), report.class_names[label], f'{conf:.4f}'])
  files.write_text(paths['csv'], buf.getvalue())
  files.write_json(paths['json'], report.distribution())
  files.save_png(paths['grid'], labeled_grid(report, images))
  return paths

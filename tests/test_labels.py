"""Tests for gan_jax.labels: report, table, CSV/JSON/grid outputs."""

import csv
import json
import os

import numpy as np
from PIL import Image

from gan_jax import datasets, labels
from gan_jax import images as images_lib

CLASS_NAMES = list(datasets.get('fashion_mnist').class_names)


class _FakeClassifier:
  """Predicts label i // 10 for image i with confidence 0.9 (so 10 per class)."""
  dataset = 'fashion_mnist'
  class_names = CLASS_NAMES

  def predict_proba(self, images):
    n = len(images)
    probs = np.full((n, 10), 0.1 / 9)
    probs[np.arange(n), (np.arange(n) // 10) % 10] = 0.9
    return probs


def _images(n=100):
  return np.random.default_rng(0).uniform(-1, 1, (n, 28, 28, 1)).astype(np.float32)


def _names(n=100):
  return [f'image_{i:03d}.png' for i in range(n)]


def test_label_report_counts():
  report = labels.label_report(_FakeClassifier(), _images(), _names())
  assert report.num_images == 100
  assert report.counts.tolist() == [10] * 10
  assert report.labels[:12].tolist() == [0] * 10 + [1, 1]
  assert report.predicted_names[10] == 'Trouser'
  np.testing.assert_allclose(report.confidences, 0.9)


def test_report_from_probs_uneven_and_table():
  probs = np.eye(10)[[3, 3, 3, 9]] * 0.8 + 0.02
  report = labels.report_from_probs(probs, ['a', 'b', 'c', 'd'],
                                    CLASS_NAMES, 'fashion_mnist')
  assert report.counts.tolist() == [0, 0, 0, 3, 0, 0, 0, 0, 0, 1]
  table = labels.distribution_table(report).splitlines()
  assert table[0].split() == ['label', 'class', 'count', 'percent']
  assert len(table) == 12  # Header, 10 classes, total.
  assert table[4].split() == ['3', 'Dress', '3', '75.0%']
  assert table[10].split() == ['9', 'Ankle', 'boot', '1', '25.0%']
  assert table[11].split() == ['total', '4', '100.0%']


def test_write_label_outputs(tmp_path):
  images = _images()
  report = labels.label_report(_FakeClassifier(), images, _names())
  out = str(tmp_path / 'out')
  paths = labels.write_label_outputs(report, out, images)
  assert sorted(os.listdir(out)) == ['final_labeled_grid.png',
                                     'label_distribution.json', 'labels.csv']

  with open(paths['csv'], newline='') as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['file', 'label', 'class_name', 'confidence']
  assert len(rows) == 100
  assert rows[95] == {'file': 'image_095.png', 'label': '9',
                      'class_name': 'Ankle boot', 'confidence': '0.9000'}

  with open(paths['json']) as f:
    dist = json.load(f)
  assert dist['dataset'] == 'fashion_mnist' and dist['num_images'] == 100
  assert abs(dist['mean_confidence'] - 0.9) < 1e-9
  assert [c['count'] for c in dist['classes']] == [10] * 10
  assert dist['classes'][5] == {'label': 5, 'class_name': 'Sandal',
                                'count': 10, 'fraction': 0.1}

  grid = Image.open(paths['grid'])
  tile, pad, cap = 28 * labels.GRID_SCALE, labels.GRID_PADDING, labels.CAPTION_HEIGHT
  assert grid.size == (10 * (tile + pad) + pad, 10 * (tile + cap + pad) + pad)
  assert grid.mode == 'RGB'
  # Captions are drawn: the caption strip under the first tile has dark pixels.
  strip = np.asarray(grid)[pad + tile:pad + tile + cap, pad:pad + tile]
  assert strip.min() < 100


def test_labeled_grid_shows_each_image_as_the_sample_grid_does_with_a_caption_below():
  images = _images(13)
  report = labels.label_report(_FakeClassifier(), images, _names(13))
  grid = labels.labeled_grid(report, images, columns=5, scale=3)
  pad, cap = labels.GRID_PADDING, labels.CAPTION_HEIGHT
  assert grid.shape == (3 * (84 + cap + pad) + pad, 5 * (84 + pad) + pad, 3)
  tiles = images_lib.to_uint8(images)[..., 0].repeat(3, axis=1).repeat(3, axis=2)
  for k in (0, 6, 12):
    y, x = pad + (k // 5) * (84 + cap + pad), pad + (k % 5) * (84 + pad)
    np.testing.assert_array_equal(grid[y:y + 84, x:x + 84, 0], tiles[k])
    caption = grid[y + 84:y + 84 + cap, x:x + 84]
    assert (caption < 128).any()             # Dark text under the tile...
  assert (grid[pad + 2 * (84 + cap + pad):, pad + 3 * (84 + pad):] == 255).all()  # ...none after the last.

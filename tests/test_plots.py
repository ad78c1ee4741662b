"""Tests for gan_jax.plots: every file is written, valid, and atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from gan_jax import files, plots

FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot']


def _records(n_epochs: int, eval_every: int = 5) -> list[dict]:
  records = []
  for e in range(1, n_epochs + 1):
    r = {'epoch': e, 'epochs': n_epochs, 'd_loss': 1.0 / e, 'd_acc': 0.5 + e / 100,
         'g_loss': 2.0 - e / n_epochs, 'seconds': 1.0, 'images_per_s': 1000.0}
    if e % eval_every == 0:
      r.update(fd=100.0 / e, **{'is': 5.0 + e / 10}, label_entropy=2.2,
               classes_covered=10, mean_confidence=0.9)
    records.append(r)
  return records


def _grid(value: int) -> np.ndarray:
  return np.full((140, 140), value, np.uint8)


def _assert_png(path: str, min_w: int = 300, min_h: int = 200) -> None:
  with Image.open(path) as im:
    assert im.format == 'PNG'
    im.verify()  # Raises on a truncated/corrupt file.
  with Image.open(path) as im:
    assert im.width >= min_w and im.height >= min_h, im.size


def _no_temp_files(root: str) -> None:
  for dirpath, _, names in os.walk(root):
    assert not [n for n in names if n.startswith('.tmp-')], dirpath


def _make_workdir(tmp_path, epochs: int = 12) -> str:
  workdir = str(tmp_path / 'run')
  files.write_jsonl(os.path.join(workdir, 'metrics.jsonl'), _records(epochs))
  # Written out of order on purpose; epoch_100 must sort after epoch_10.
  for epoch in (10, 100, 5):
    files.save_png(os.path.join(workdir, 'generated_samples', f'epoch_{epoch:02d}.png'),
                   _grid(epoch))
  return workdir


def test_write_all_plots(tmp_path):
  workdir = _make_workdir(tmp_path)
  written = plots.write_all_plots(workdir, _records(12), {'fd': 0.0, 'is': 9.5},
                                  label_counts=np.arange(10) * 7, class_names=FASHION)
  expected = [os.path.join(workdir, p) for p in (
      'plots/losses.png', 'plots/quality.png', 'plots/label_distribution.png',
      'generated_samples/progression.gif')]
  assert written == expected
  for path in expected[:3]:
    _assert_png(path)
  _no_temp_files(workdir)


def test_write_all_plots_without_counts_or_grids(tmp_path):
  workdir = str(tmp_path)
  written = plots.write_all_plots(workdir, _records(1))
  assert [os.path.relpath(p, workdir) for p in written] == [
      os.path.join('plots', 'losses.png'), os.path.join('plots', 'quality.png')]
  assert not os.path.exists(os.path.join(workdir, 'plots', 'label_distribution.png'))
  assert not os.path.exists(os.path.join(workdir, 'generated_samples', 'progression.gif'))


def test_progression_gif_frames_in_epoch_order(tmp_path):
  workdir = _make_workdir(tmp_path)
  sample_dir = os.path.join(workdir, 'generated_samples')
  gif = os.path.join(sample_dir, 'progression.gif')
  assert plots.write_progression_gif(sample_dir, gif)
  with Image.open(gif) as im:
    assert im.format == 'GIF'
    assert im.n_frames == 3
    assert im.info.get('loop') == 0
    # Frames in epoch order 5, 10, 100: the grid's gray level is its epoch.
    levels = []
    for i in range(im.n_frames):
      im.seek(i)
      assert im.info.get('duration') == 500
      frame = np.asarray(im.convert('L'))
      levels.append(int(np.median(frame[-20:, :])))  # Bottom rows: grid only.
      # The title band above the grid is not plain white: text was drawn.
      assert frame[:10].min() < 128
  assert levels == [5, 10, 100]
  _no_temp_files(workdir)


def test_a_damaged_grid_is_left_out_of_the_gif(tmp_path):
  workdir = _make_workdir(tmp_path)
  sample_dir = os.path.join(workdir, 'generated_samples')
  with open(os.path.join(sample_dir, 'epoch_10.png'), 'r+b') as f:
    f.truncate(40)  # Cut short: PIL cannot read it.
  gif = os.path.join(sample_dir, 'progression.gif')
  assert plots.write_progression_gif(sample_dir, gif)
  with Image.open(gif) as im:
    assert im.n_frames == 2


def test_progression_gif_nothing_without_grids(tmp_path):
  gif = str(tmp_path / 'out.gif')
  assert not plots.write_progression_gif(str(tmp_path / 'missing'), gif)
  assert not plots.write_progression_gif(str(tmp_path), gif)
  assert not os.path.exists(gif)


def test_quality_without_evaluations(tmp_path):
  path = str(tmp_path / 'quality.png')
  plots.plot_quality(_records(3), None, path)  # eval_every=5: none evaluated.
  _assert_png(path)
  path2 = str(tmp_path / 'quality_empty.png')
  plots.plot_quality([], {'is': 9.8}, path2)
  _assert_png(path2)


def test_losses_handles_empty_and_duplicate_epochs(tmp_path):
  records = _records(3)
  records.append(dict(records[-1], d_loss=float('nan')))  # Resumed: epoch 3 again.
  records[0].pop('d_acc')
  plots.plot_losses(records, str(tmp_path / 'a.png'))
  plots.plot_losses([], str(tmp_path / 'b.png'))
  _assert_png(str(tmp_path / 'a.png'))
  _assert_png(str(tmp_path / 'b.png'))


def test_label_distribution_checks_names(tmp_path):
  plots.plot_label_distribution([3, 4, 5], None, str(tmp_path / 'l.png'))
  _assert_png(str(tmp_path / 'l.png'))
  with pytest.raises(ValueError, match='class names'):
    plots.plot_label_distribution([1, 2], ['a'], str(tmp_path / 'x.png'))


def test_figures_are_closed(tmp_path):
  import matplotlib.pyplot as plt
  before = len(plt.get_fignums())
  plots.plot_losses(_records(2), str(tmp_path / 'a.png'))
  plots.plot_quality(_records(5), {'is': 9.0}, str(tmp_path / 'b.png'))
  plots.plot_label_distribution([1, 2], ['a', 'b'], str(tmp_path / 'c.png'))
  assert len(plt.get_fignums()) == before


def test_quality_plot_of_a_conditional_run_adds_the_label_agreement(tmp_path):
  records = _records(10)
  plots.plot_quality(records, {'is': 9.8}, str(tmp_path / 'plain.png'))
  for r in records:
    if 'fd' in r:
      r['label_agreement'] = 0.9
  plots.plot_quality(records, {'is': 9.8}, str(tmp_path / 'conditional.png'))
  with Image.open(tmp_path / 'plain.png') as plain, \
       Image.open(tmp_path / 'conditional.png') as conditional:
    assert conditional.width > 1.3 * plain.width   # Three panels, not two.
    assert conditional.height == plain.height

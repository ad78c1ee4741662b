"""A folder of your own labelled images as a dataset (gan_jax/image_folder.py)."""

import csv
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import (augmentation_check, classifier_store, datasets, evaluate, export,
                     image_folder, input_pipeline, sampling, train, trainer)
from gan_jax.config import Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pattern(label: int, num_classes: int, seed: int) -> np.ndarray:
  """A 28x28 uint8 image a classifier can tell apart: a bright bar whose row
  is set by the label, over noise."""
  image = np.random.default_rng(seed).integers(0, 96, (28, 28), dtype=np.uint8)
  row = 2 + (24 * label) // num_classes
  image[row:row + 2, 4:24] = 255
  return image


def make_folder(root, num_classes=3, per_class=40, mixed=True, names=None):
  """PATH/<class>/NNNN.png; with `mixed`, every third image RGB, every fourth
  56x56, every fifth a JPEG."""
  names = names or [f'class_{c:02d}' for c in range(num_classes)]
  for c, name in enumerate(names):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(per_class):
      im = Image.fromarray(_pattern(c, num_classes, 1000 * c + i), 'L')
      ext = 'png'
      if mixed and i % 3 == 1:
        im = im.convert('RGB')
      if mixed and i % 4 == 2:
        im = im.resize((56, 56))
      if mixed and i % 5 == 4:
        ext = 'jpg'
      im.save(os.path.join(root, name, f'{i:04d}.{ext}'), quality=95)
  return str(root)


@pytest.fixture
def quick(monkeypatch, tmp_path):
  """Short classifier and check trainings, and a cache of this test's own."""
  monkeypatch.setattr(datasets, 'FOLDER_CLASSIFIER_STEPS', 60)
  monkeypatch.setattr(augmentation_check, 'STEPS', 20)
  monkeypatch.setattr(evaluate, 'CAS_IMAGES', 200)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))


def test_a_folder_is_read_in_file_name_order_with_a_fixed_stratified_hold_out(tmp_path):
  path = make_folder(tmp_path / 'f', num_classes=3, per_class=40)
  record = datasets.open_folder(path)
  folder = record.folder
  assert record.class_names == ('class_00', 'class_01', 'class_02') and record.num_classes == 3
  # 10% of each class held out, the same on every read.
  assert np.bincount(folder.labels['test']).tolist() == [4, 4, 4]
  assert np.bincount(folder.labels['train']).tolist() == [36, 36, 36]
  assert datasets.open_folder(path).folder.files == folder.files
  assert not set(folder.files['train']) & set(folder.files['test'])
  # Converted to 28x28 grayscale, and said so.
  assert folder.images['train'].shape == (108, 28, 28) and folder.images['train'].dtype == np.uint8
  assert 'converted to 28x28 grayscale' in folder.summary() and 'RGB' in folder.summary()
  split = input_pipeline.load_split(path, 'train')
  assert split.images.shape == (108, 28, 28, 1)
  assert split.images.min() >= -1 and split.images.max() <= 1
  # A grayscale PNG is read exactly: its pixels, scaled to [-1, 1].
  i = folder.files['train'].index('class_01/0000.png')
  np.testing.assert_array_equal(folder.images['train'][i], _pattern(1, 3, 1000))
  assert record.key == f'folder-{folder.sha256[:16]}'


def test_a_folder_is_decoded_once_until_a_file_changes(tmp_path):
  path = make_folder(tmp_path / 'f', num_classes=2, per_class=10, mixed=False)
  first = image_folder.read(path)
  assert image_folder.read(path) is first  # The CLI's check and the run's set-up share it.
  Image.fromarray(_pattern(1, 2, 7), 'L').save(os.path.join(path, 'class_00', '0003.png'))
  again = image_folder.read(path)
  assert again is not first and again.sha256 != first.sha256


def test_sixteen_bit_scans_keep_their_range(tmp_path):
  path = make_folder(tmp_path / 'f', num_classes=2, per_class=10, mixed=False)
  pixels = _pattern(0, 2, 0).astype(np.uint16) * 257  # The same image in 16 bits.
  Image.fromarray(pixels).save(os.path.join(path, 'class_00', '0000.png'))
  folder = datasets.open_folder(path).folder
  split = 'train' if 'class_00/0000.png' in folder.files['train'] else 'test'
  image = folder.images[split][folder.files[split].index('class_00/0000.png')]
  np.testing.assert_array_equal(image, _pattern(0, 2, 0))
  assert 'I;16' in folder.summary()


def test_the_same_images_as_a_folder_and_as_the_built_in_dataset_give_the_same_batches(
    tmp_path, mock_data_dir):
  train_split = input_pipeline.load_split('mnist', 'train', mock_data_dir)
  test_split = input_pipeline.load_split('mnist', 'test', mock_data_dir, limit=100)
  root = tmp_path / 'mnist_pngs'
  for split, data in (('train', train_split), ('test', test_split)):
    pixels = np.round((data.images[..., 0] + 1) * 127.5).astype(np.uint8)
    for i, (image, label) in enumerate(zip(pixels, data.labels)):
      os.makedirs(root / split / str(label), exist_ok=True)
      Image.fromarray(image, 'L').save(root / split / str(label) / f'{i:05d}.png')
  folder = str(root)
  assert datasets.open_folder(folder).class_names == tuple(str(c) for c in range(10))
  built_in, _ = input_pipeline.training_split('mnist', mock_data_dir)
  own, _ = input_pipeline.training_split(folder, None)
  assert len(own.images) == len(train_split.images)
  np.testing.assert_array_equal(own.images, built_in.images)
  np.testing.assert_array_equal(own.labels, built_in.labels)
  np.testing.assert_array_equal(input_pipeline.load_split(folder, 'test').images,
                                test_split.images)
  # The batches the train loop draws: the same images, the same labels.
  idx = np.asarray(train.epoch_batches(jax.random.key(0), len(own.images), 9, 32))
  np.testing.assert_array_equal(own.images[idx], built_in.images[idx])
  np.testing.assert_array_equal(own.labels[idx], built_in.labels[idx])
  # And --train_examples picks the same images from both.
  a, ia = input_pipeline.training_split(folder, None, train_examples=50, seed=3)
  b, ib = input_pipeline.training_split('mnist', mock_data_dir, train_examples=50, seed=3)
  np.testing.assert_array_equal(ia, ib)
  np.testing.assert_array_equal(a.images, b.images)


def test_a_folder_trains_samples_a_class_exports_and_resumes_with_its_classifier_trained_once(
    tmp_path, quick):
  path = make_folder(tmp_path / 'own', num_classes=3, per_class=40)
  config = Config(dataset=path, conditional=True, arch='mlp', epochs=1, save_interval=1,
                  batch_size=32, limit=96, eval_samples=60, workdir=str(tmp_path / 'run'),
                  progress=False, reconstruction=0.0)
  lines = []
  report = trainer.train_and_evaluate(config, log=lines.append)
  assert any(l.startswith('classifier: training the domain classifier of') for l in lines)
  assert any(l.startswith(f'folder {path}: 3 classes') for l in lines), lines
  info = json.load(open(tmp_path / 'run' / 'run.json'))
  assert info['folder']['class_names'] == ['class_00', 'class_01', 'class_02']
  assert len(info['folder']['train_files']) == 108 and len(info['folder']['test_files']) == 12
  assert info['classifier']['directory'] == classifier_store.default_user_dir(path)
  assert report['final']['classes_covered'] <= 3 and len(report['final']['fd_per_class']) == 3
  assert report['augmentation']['steps'] == 20 and len(report['cas']['cas_per_class']) == 3
  assert sorted(report['label_counts']) == ['class_00', 'class_01', 'class_02']
  grid = Image.open(tmp_path / 'run' / 'generated_samples' / 'epoch_01.png')
  assert (grid.size[1] - 2) * 10 == (grid.size[0] - 2) * 3  # 3 rows (classes) of 10.
  assert len([n for n in os.listdir(tmp_path / 'run' / 'final_generated_images')
              if n.startswith('img_')]) == 100

  # Resume to a second epoch: the classifier is loaded, not trained again.
  lines = []
  trainer.train_and_evaluate(config.replace(epochs=2), log=lines.append)
  assert not any('training the domain classifier' in l for l in lines)
  assert any(l.startswith('classifier (') and ' loaded from ' in l for l in lines), lines
  assert any(l.startswith('Epoch 2/2') for l in lines) and not any(
      l.startswith('Epoch 1/2') for l in lines)

  # Sample a class by its number; export with the folder's class names.
  sampled = sampling.sample_from_run(Config(workdir=config.workdir, num_samples=5, label=2,
                                            sample_dir=str(tmp_path / 's2')),
                                     log=lambda *_: None)
  assert len(sampled) == 5
  with pytest.raises(sampling.RunError, match='has 3 classes, 0 to 2'):
    sampling.sample_from_run(Config(workdir=config.workdir, num_samples=5, label=3,
                                    sample_dir=str(tmp_path / 's3')), log=lambda *_: None)
  lines = []
  export.export_from_run(Config(workdir=config.workdir, num_samples=30, cas=False,
                                export_dir=str(tmp_path / 'export')), log=lines.append)
  assert not any('training the domain classifier' in l for l in lines)
  manifest = json.load(open(tmp_path / 'export' / 'manifest.json'))
  assert manifest['class_names'] == ['class_00', 'class_01', 'class_02']
  assert manifest['counts'] == {'0': 10, '1': 10, '2': 10}
  assert sorted(os.listdir(tmp_path / 'export' / 'train')) == ['0', '1', '2']
  rows = list(csv.DictReader(open(tmp_path / 'export' / 'labels.csv')))
  assert {r['class_name'] for r in rows} == {'class_00', 'class_01', 'class_02'}


def test_changed_images_are_not_resumed(tmp_path, quick):
  path = make_folder(tmp_path / 'own', num_classes=2, per_class=20, mixed=False)
  config = Config(dataset=path, arch='mlp', epochs=1, save_interval=1, batch_size=16,
                  limit=32, eval_samples=20, workdir=str(tmp_path / 'run'), progress=False)
  trainer.train_and_evaluate(config, log=lambda *_: None)
  Image.fromarray(_pattern(1, 2, 99), 'L').save(os.path.join(path, 'class_00', '0000.png'))
  with pytest.raises(trainer.RunError, match='changed since the checkpoint'):
    trainer.train_and_evaluate(config.replace(epochs=2), log=lambda *_: None)


@pytest.mark.parametrize('num_classes', [3, 15])
def test_every_shape_follows_the_class_count(tmp_path, num_classes):
  path = make_folder(tmp_path / 'f', num_classes=num_classes, per_class=10, mixed=False)
  config = Config(dataset=path, conditional=True, arch='mlp', reconstruction=0.0)
  state = train.create_state(config, jax.random.key(0))
  assert state.num_classes == num_classes
  z = sampling.sample_noise(jax.random.key(1), 2 * num_classes, config.noise_dim)
  labels = np.arange(2 * num_classes) % num_classes
  assert sampling.generate(state, z, labels).shape == (2 * num_classes, 28, 28, 1)
  assert sampling.grid_shape(config) == (num_classes, sampling.CLASS_COLUMNS)
  assert np.asarray(sampling.grid_noise(config, jax.random.key(2))).shape == (
      num_classes * sampling.CLASS_COLUMNS, config.noise_dim)
  final = sampling.class_labels(config, 100)
  assert len(final) == 100 and np.bincount(final).min() == 100 // num_classes
  from gan_jax import classifier as classifier_lib
  clf = classifier_lib.Classifier(classifier_lib.init_params(jax.random.key(0), num_classes),
                                  path)
  assert clf.predict_proba(np.zeros((3, 28, 28, 1), np.float32)).shape == (3, num_classes)
  # Export class folders sort in label order, also beyond ten classes.
  names = export.file_names(np.arange(num_classes), num_classes)
  folders = [n.split('/')[1] for n in names]
  assert sorted(folders) == folders and len(set(folders)) == num_classes


def _cli(*args, env_extra=None):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **(env_extra or {})}
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args],
                        capture_output=True, text=True, env=env, timeout=300)


def _bad_folders(root):
  """Each bad folder, and the words of its one line."""
  cases = {}
  cases['missing'] = (str(root / 'nowhere'), 'no such folder')
  os.makedirs(root / 'empty')
  cases['empty'] = (str(root / 'empty'), 'is empty')
  cases['one_class'] = (make_folder(root / 'one', num_classes=1, per_class=12, mixed=False),
                        'one class only')
  few = make_folder(root / 'few', num_classes=2, per_class=12, mixed=False)
  for i in range(5, 12):
    os.remove(os.path.join(few, 'class_01', f'{i:04d}.png'))
  cases['few'] = (few, "'class_01' has 5")
  broken = make_folder(root / 'broken', num_classes=2, per_class=12, mixed=False)
  with open(os.path.join(broken, 'class_00', 'cut.png'), 'wb') as f:
    f.write(open(os.path.join(broken, 'class_00', '0000.png'), 'rb').read()[:40])
  with open(os.path.join(broken, 'class_01', 'notes.txt'), 'w') as f:
    f.write('not an image')
  cases['unreadable'] = (broken, '2 files are not readable images')
  return cases


def test_every_bad_folder_is_one_line_and_writes_nothing(tmp_path):
  for case, (path, words) in _bad_folders(tmp_path).items():
    workdir = tmp_path / f'run_{case}'
    out = _cli(f'--dataset={path}', f'--workdir={workdir}', '--epochs=1')
    assert out.returncode == 2, (case, out.stderr[-2000:])
    assert out.stderr.count('\n') == 1 and out.stderr.startswith('error: '), (case, out.stderr)
    assert words in out.stderr and 'Traceback' not in out.stderr, (case, out.stderr)
    assert not workdir.exists(), case
  # The unreadable files are named; with the flag they are passed over, and said so.
  broken = str(tmp_path / 'broken')
  out = _cli(f'--dataset={broken}', f'--workdir={tmp_path / "x"}')
  assert 'class_00/cut.png' in out.stderr and 'class_01/notes.txt (not an image file)' in (
      out.stderr) and image_folder.SKIP_FLAG in out.stderr
  record = datasets.open_folder(broken, skip_bad=True)
  assert record.folder.skipped == ('class_00/cut.png', 'class_01/notes.txt')
  assert '2 unreadable files skipped (--skip_bad_images)' in record.folder.summary()
  assert len(record.folder.labels['train']) + len(record.folder.labels['test']) == 24


def test_folder_settings_are_checked_before_any_work(tmp_path):
  path = make_folder(tmp_path / 'f', num_classes=3, per_class=12, mixed=False)
  out = _cli(f'--dataset={path}', '--label=3', '--mode=sample', f'--workdir={tmp_path}')
  assert out.returncode == 2 and 'from 0 to 2 (3 classes)' in out.stderr, out.stderr
  out = _cli(f'--dataset={path}', '--batch_size=64', f'--workdir={tmp_path / "r"}')
  assert out.returncode == 2 and 'larger than the 33 training images' in out.stderr, out.stderr
  out = _cli('--skip_bad_images', f'--workdir={tmp_path / "r"}')
  assert out.returncode == 2 and 'a setting of --dataset=PATH' in out.stderr, out.stderr
  assert not (tmp_path / 'r').exists()

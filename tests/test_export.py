"""--mode=export: the dataset layout other code loads, its labels and counts,
refusals that change nothing, and --min_confidence.

Two short runs on the fake data of tests/mock_tfds.py (one conditional, one
not) are trained once for the module and exported several times.
"""

import csv
import hashlib
import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from gan_jax import classifier_store, evaluate, export, sampling, trainer
from gan_jax.config import Config

pytestmark = pytest.mark.slow


def _quiet(*_):
  pass


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """{'conditional': Config, 'unconditional': Config} of two trained runs, with
  TFDS faked for the whole module."""
  from mock_tfds import fake_datasets
  root = tmp_path_factory.mktemp('runs')
  cas_images, evaluate.CAS_IMAGES = evaluate.CAS_IMAGES, 200  # The run's own CAS: small.
  cache, os.environ['XDG_CACHE_HOME'] = (os.environ.get('XDG_CACHE_HOME'),
                                         str(root / 'cache'))  # Not the user's cache.
  with fake_datasets():
    out = {}
    for name in ('conditional', 'unconditional'):
      config = Config(arch='mlp', epochs=1, save_interval=1, batch_size=64, limit=640,
                      eval_samples=200, workdir=str(root / name),
                      data_dir='/nonexistent/mock_tfds', progress=False, cas=False,
                      classifier_dir=classifier_store.shipped_dir('mnist'),
                      conditional=name == 'conditional')
      trainer.train_and_evaluate(config, log=_quiet)
      out[name] = config
    evaluate.CAS_IMAGES = cas_images
    yield out
  if cache is None:
    del os.environ['XDG_CACHE_HOME']
  else:
    os.environ['XDG_CACHE_HOME'] = cache


def _tree(folder):
  """Every file under `folder` with its SHA-256."""
  out = {}
  for dirpath, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
  return out


def _image_folder_examples(root):
  """What tfds.folder_dataset.ImageFolder(root) reads: its label names and each
  split's (file, label index). TFDS lists folders through tf.io.gfile; without
  TensorFlow installed, the os functions stand in for it."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.folder_dataset import image_folder
  gfile = types.SimpleNamespace(listdir=os.listdir, isdir=os.path.isdir)
  original = image_folder.tf
  image_folder.tf = types.SimpleNamespace(io=types.SimpleNamespace(gfile=gfile))
  try:
    split_examples, names = image_folder._get_split_label_images(root)
  finally:
    image_folder.tf = original
  assert tfds.folder_dataset.ImageFolder is image_folder.ImageFolder
  return names, {split: [(e.image_path, names.index(e.label)) for e in examples]
                 for split, examples in split_examples.items()}


def test_conditional_export_loads_in_tfds_and_numpy_with_the_right_labels(runs, tmp_path):
  dest = tmp_path / 'set'
  config = runs['conditional'].replace(num_samples=50, export_dir=str(dest), seed=3)
  manifest = export.export_from_run(config, log=_quiet)
  names, splits = _image_folder_examples(str(dest))
  assert names == [str(c) for c in range(10)] and list(splits) == ['train']
  assert len(splits['train']) == 50
  for path, label in splits['train']:  # The folder's label is the class index.
    assert os.path.basename(os.path.dirname(path)) == str(label)
  data = np.load(dest / 'data.npz')
  assert data['x'].shape == (50, 28, 28) and data['x'].dtype == np.uint8
  assert data['y'].shape == (50,) and data['y'].dtype == np.uint8
  assert np.bincount(data['y']).tolist() == [5] * 10  # Balanced.
  with open(dest / 'labels.csv') as f:
    rows = list(csv.DictReader(f))
  assert [int(r['label']) for r in rows] == data['y'].tolist()
  for i, row in enumerate(rows):  # The PNG, the npz row and the csv row agree.
    assert row['file'] == f'train/{data["y"][i]}/{i:05d}.png'
    assert np.array_equal(np.asarray(Image.open(dest / row['file'])), data['x'][i])
  assert manifest['counts'] == {str(c): 5 for c in range(10)}
  assert manifest['source']['checkpoint_epoch'] == 1 and manifest['seed'] == 3
  assert set(manifest['quality']) >= {'fd', 'is', 'precision', 'recall',
                                      'memorisation_ratio', 'fd_per_class'}
  assert manifest['generator']['platforms'] == ['cpu', 'cuda', 'tpu']
  assert (dest / 'generator.jax').stat().st_size > 0  # Loaded in tests/test_serialize.py.
  with open(dest / 'manifest.json') as f:
    assert json.load(f) == json.loads(json.dumps(manifest))
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.export')]
  # The same seed, the same images; --label: one class, every class folder present.
  again = export.export_from_run(config.replace(export_dir=str(tmp_path / 'again')),
                                 log=_quiet)
  assert again == manifest
  assert _tree(tmp_path / 'again') == _tree(dest)  # Byte for byte.
  sevens = export.export_from_run(config.replace(export_dir=str(tmp_path / 'sevens'),
                                                 label=7, num_samples=12), log=_quiet)
  assert sevens['counts']['7'] == 12
  assert sorted(os.listdir(tmp_path / 'sevens' / 'train')) == [str(c) for c in range(10)]


def test_a_refused_export_changes_nothing_and_overwrite_replaces_only_an_export(
    runs, tmp_path):
  dest = tmp_path / 'set'
  config = runs['conditional'].replace(num_samples=20, export_dir=str(dest))
  export.export_from_run(config, log=_quiet)
  before = _tree(dest)
  with pytest.raises(export.ExportError, match='not empty; pass --overwrite'):
    export.export_from_run(config.replace(seed=1), log=_quiet)
  assert _tree(dest) == before
  replaced = export.export_from_run(config.replace(seed=1, overwrite=True), log=_quiet)
  assert replaced['seed'] == 1 and _tree(dest) != before
  assert sorted(os.listdir(tmp_path)) == ['set']  # No temporary folder left.
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'notes.txt').write_text('keep me')
  with pytest.raises(export.ExportError, match='not an export of gan_jax'):
    export.export_from_run(config.replace(export_dir=str(mine), overwrite=True), log=_quiet)
  assert (mine / 'notes.txt').read_text() == 'keep me' and os.listdir(mine) == ['notes.txt']


def test_unconditional_export_labels_with_the_classifier_and_drops_unsure_images(
    runs, tmp_path, monkeypatch):
  config = runs['unconditional'].replace(num_samples=40, export_dir=str(tmp_path / 'all'))
  everything = export.export_from_run(config, log=_quiet)
  assert everything['labels']['dropped'] == 0
  with open(tmp_path / 'all' / 'labels.csv') as f:
    rows = list(csv.DictReader(f))
  assert all(r['label'] == r['classifier_label'] for r in rows)
  threshold = float(np.median([float(r['classifier_confidence']) for r in rows]))
  sure = export.export_from_run(config.replace(export_dir=str(tmp_path / 'sure'),
                                               min_confidence=threshold), log=_quiet)
  labels = sure['labels']
  assert sure['num_images'] == 40 and labels['dropped'] > 0
  assert labels['generated'] == 40 + labels['dropped']
  with open(tmp_path / 'sure' / 'labels.csv') as f:
    kept = [float(r['classifier_confidence']) for r in csv.DictReader(f)]
  assert len(kept) == 40 and min(kept) >= threshold - 1e-4
  monkeypatch.setattr(export, 'MAX_DRAWS', 1)  # One draw of 40 has about 20 that sure.
  with pytest.raises(export.ExportError, match='lower --min_confidence'):
    export.export_from_run(config.replace(export_dir=str(tmp_path / 'none'),
                                          min_confidence=threshold), log=_quiet)
  assert not (tmp_path / 'none').exists()


def test_noise_scale_draws_the_generator_on_scaled_noise_and_is_recorded(runs, tmp_path):
  import jax
  from gan_jax import images
  config = runs['conditional'].replace(num_samples=30, seed=2)
  plain = export.export_from_run(config.replace(export_dir=str(tmp_path / 'plain')),
                                 log=_quiet)
  lines = []
  wide = export.export_from_run(config.replace(export_dir=str(tmp_path / 'wide'),
                                               noise_scale=1.5), log=lines.append)
  assert plain['noise_scale'] == 1 and wide['noise_scale'] == 1.5
  exported, = [line for line in lines if line.startswith('Exported ')]
  assert exported.endswith('(noise scale 1.5)')
  x = {name: np.load(tmp_path / name / 'data.npz') for name in ('plain', 'wide')}
  assert np.array_equal(x['plain']['y'], x['wide']['y'])
  assert not np.array_equal(x['plain']['x'], x['wide']['x'])
  # The same noise, 1.5 times as large, through the generator.
  state, _, _ = sampling.load_latest_run(config, log=_quiet)
  key = jax.random.fold_in(sampling.keys(config.seed)['sample'], export.NOISE_STREAM)
  z = 1.5 * np.asarray(sampling.sample_noise(key, 30, state.noise_dim))
  expected = images.to_uint8(sampling.generate(state, z, x['wide']['y'].astype(np.int32)))[..., 0]
  # Equal up to the rounding of one pixel level (float summation order).
  assert np.abs(expected.astype(int) - x['wide']['x']).max() <= 1


def test_an_export_of_one_image_has_no_precision_but_is_written(runs, tmp_path):
  manifest = export.export_from_run(runs['conditional'].replace(
      num_samples=1, export_dir=str(tmp_path / 'one')), log=_quiet)
  assert manifest['num_images'] == 1 and manifest['quality']['precision'] is None
  assert np.load(tmp_path / 'one' / 'data.npz')['x'].shape == (1, 28, 28)


def test_min_confidence_on_a_conditional_run_is_refused(runs, tmp_path):
  with pytest.raises(export.ExportError, match='conditional'):
    export.export_from_run(runs['conditional'].replace(
        export_dir=str(tmp_path / 'x'), min_confidence=0.5), log=_quiet)
  assert not (tmp_path / 'x').exists()


def test_export_reports_the_cas_in_the_manifest_and_on_stdout(runs, tmp_path, monkeypatch):
  from gan_jax import augmentation_check
  monkeypatch.setattr(augmentation_check, 'STEPS', 50)  # Its four CNNs: seconds, not minutes.
  lines = []
  manifest = export.export_from_run(runs['conditional'].replace(
      num_samples=60, export_dir=str(tmp_path / 'set'), cas=True), log=lines.append)
  # Beside the CAS, the augmentation check of the exported set and the run's 640 images.
  check = manifest['augmentation_check']
  assert check['real_images'] == 640 and check['synthetic_images'] == 60 and check['steps'] == 50
  assert any(line.startswith('  augmentation check (real test split): real ') for line in lines)
  cas = manifest['cas']
  assert cas['images'] == 60 and cas['real_images'] == 60
  assert 0 <= cas['cas'] <= 1 and 0 <= cas['cas_real'] <= 1
  assert len(cas['cas_per_class']) == len(cas['cas_real_per_class']) == 10
  line, = [line for line in lines if line.startswith('  CAS: ')]
  assert ', furthest below its real-trained accuracy: ' in line


def test_training_features_are_cached_and_read_back(runs, tmp_path, monkeypatch):
  from gan_jax import feature_cache, input_pipeline
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  stored = classifier_store.load('mnist', classifier_store.shipped_dir('mnist'), shipped=True)
  args = (stored.classifier, stored.meta['params_sha256'], 'mnist', '/nonexistent/mock_tfds')
  from mock_tfds import fake_datasets
  with fake_datasets():
    features, labels = feature_cache.training_features(*args)
    assert os.path.exists(feature_cache.cache_path('mnist', args[1], args[3]))

    def no_loading(*_, **__):
      raise AssertionError('the cached features were not used')
    monkeypatch.setattr(input_pipeline, 'load_split', no_loading)
    again, again_labels = feature_cache.training_features(*args)
  np.testing.assert_array_equal(again, features)
  np.testing.assert_array_equal(again_labels, labels)


def test_tfds_is_first_read_in_the_main_thread(runs, tmp_path, monkeypatch):
  # While TFDS loads its modules, etils swaps Python's import function for the
  # whole process; a first read in the quality thread would catch the imports
  # jax makes in the main thread meanwhile.
  import threading
  from gan_jax import input_pipeline
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))  # Features not cached.
  load, in_main = input_pipeline.load_split, []

  def recording(*args, **kwargs):
    in_main.append(threading.current_thread() is threading.main_thread())
    return load(*args, **kwargs)

  monkeypatch.setattr(input_pipeline, 'load_split', recording)
  export.export_from_run(runs['unconditional'].replace(
      num_samples=20, export_dir=str(tmp_path / 'set')), log=_quiet)
  assert len(in_main) >= 2 and in_main[0]  # The test split first, then the training one.

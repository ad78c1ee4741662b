"""The dataset table: names a user may type, class names, image shape."""

import json
import os

import pytest

from gan_jax import config, datasets


def test_names_and_class_names():
  assert datasets.canonical_name('Fashion') == 'fashion_mnist'
  assert datasets.canonical_name('fashion-mnist') == 'fashion_mnist'
  assert datasets.canonical_name('fashion_mnist') == 'fashion_mnist'
  assert datasets.get('fashion_mnist').class_names[9] == 'Ankle boot'
  with pytest.raises(ValueError, match='unknown dataset'):
    datasets.canonical_name('svhn')


def test_every_name_the_pipeline_reads_passes_validation():
  for name in datasets.ALIASES:
    assert config.check('dataset', name) is None, name
  assert config.check('dataset', 'svhn') is not None


def test_a_registered_dataset_trains_labels_and_samples_end_to_end(
    tmp_path, mock_data_dir, monkeypatch):
  """A third dataset is one record and its two presets: --dataset, its default
  network, its own classifier (trained into a folder), its labels and
  --mode=sample follow."""
  from gan_jax import presets, sampling, trainer
  from gan_jax.config import Config
  for table in ('DATASETS', 'ALIASES'):  # Registered for this test only.
    monkeypatch.setattr(datasets, table, dict(getattr(datasets, table)))
  monkeypatch.setattr(presets, 'PRESETS', dict(presets.PRESETS))
  names = ('o', 'ki', 'su', 'tsu', 'na', 'ha', 'ma', 'ya', 're', 'wo')
  datasets.register(datasets.Dataset(
      name='kmnist', aliases=('kuzushiji', 'kmnist'), version='3.0.1', class_names=names,
      classifier_epochs=1))
  for conditional in (False, True):
    presets.register(presets.Preset(
        dataset='kmnist', conditional=conditional, arch='mlp', mode_seeking=0.0,
        class_loss_weight=1.0 if conditional else 0.0, reconstruction=0.0,
        standing_batch=presets.CONDITIONAL_STANDING_BATCH if conditional else None,
        why='a test', section='Frontier'))
  assert config.check('dataset', 'kuzushiji') is None
  workdir = tmp_path / 'run'
  run = Config(dataset='kuzushiji', conditional=True, epochs=1, save_interval=1,
               batch_size=64, limit=640, eval_samples=200, workdir=str(workdir),
               data_dir=mock_data_dir, classifier_dir=str(tmp_path / 'classifier'),
               progress=False, cas=False)
  report = trainer.train_and_evaluate(run, log=lambda *_: None)
  assert list(report['label_counts']) == list(names)
  with open(tmp_path / 'classifier' / 'classifier.json') as f:
    assert json.load(f)['dataset'] == 'kmnist'  # Trained for it, into the folder given.
  with open(workdir / 'run.json') as f:
    recorded = json.load(f)['config']
  assert recorded['arch'] == 'mlp' and datasets.canonical_name(recorded['dataset']) == 'kmnist'
  with open(workdir / 'final_generated_images' / 'labels.csv') as f:
    assert set(names) & set(f.read().replace(',', ' ').split())
  paths = sampling.sample_from_run(
      Config(workdir=str(workdir), num_samples=20, label=3, sample_dir=str(tmp_path / 's'),
             data_dir=mock_data_dir, classifier_dir=str(tmp_path / 'classifier')),
      log=lambda *_: None)
  assert len(paths) == 20 and all(os.path.exists(p) for p in paths)

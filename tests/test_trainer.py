"""End-to-end training runs on fake MNIST data (tests/mock_tfds.py); one
test reads the real data folder.

Marked slow: each trains for real (a few seconds per run with --arch=mlp).
"""

import json
import os
import re
import signal

import numpy as np
import pytest
from PIL import Image

from gan_jax import checkpoints, config as config_lib, evaluate, files, sampling, trainer
from gan_jax.config import Config

pytestmark = pytest.mark.slow


def _config(tmp_path, data_dir, classifier_dir, **kw):
  base = dict(arch='mlp', epochs=2, save_interval=1, batch_size=64, limit=640,
              eval_samples=200, workdir=str(tmp_path / 'run'), data_dir=data_dir,
              classifier_dir=classifier_dir, progress=False)
  base.update(kw)
  return Config(**base)


def _quiet(*_):
  pass


def _outputs(workdir):
  """Everything a run produces, as bytes, except timing-dependent files."""
  out = {}
  for folder in ('generated_samples', 'final_generated_images'):
    for name in sorted(os.listdir(os.path.join(workdir, folder))):
      with open(os.path.join(workdir, folder, name), 'rb') as f:
        out[f'{folder}/{name}'] = f.read()
  records = files.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
  for r in records:  # Wall-clock figures differ between any two runs.
    r.pop('seconds'), r.pop('images_per_s')
  out['metrics'] = records
  return out


def test_a_run_writes_every_output(tmp_path, mock_data_dir, classifier_dir):
  lines = []
  config = _config(tmp_path, mock_data_dir, classifier_dir)
  report = trainer.train_and_evaluate(config, log=lines.append)
  # Fidelity and diversity at every evaluation, and the memorisation check.
  for key in ('precision', 'recall'):
    assert 0 <= report['final'][key] <= 1
    assert all(key in r for r in files.read_jsonl(os.path.join(config.workdir,
                                                                'metrics.jsonl')))
  assert any('| precision ' in line and '| recall ' in line for line in lines), lines
  assert report['memorisation_ratio'] > 0.3, report  # Random-ish images copy nothing.
  assert 'cas' not in report  # Only conditional runs measure it.
  assert Image.open(os.path.join(config.workdir, 'final_generated_images',
                                 'nearest_train.png')).size[0] > 4 * 28
  workdir = config.workdir
  epoch_lines = [l for l in lines if l.startswith('Epoch ')]
  assert len(epoch_lines) == 2
  assert epoch_lines[0].startswith('Epoch 1/2 | D_loss: ')
  for name in ('epoch_01.png', 'epoch_02.png', 'progression.gif'):
    assert os.path.exists(os.path.join(workdir, 'generated_samples', name)), name
  grid = Image.open(os.path.join(workdir, 'generated_samples', 'epoch_02.png'))
  assert grid.mode == 'L' and grid.size[0] >= 5 * 28
  final = os.path.join(workdir, 'final_generated_images')
  pngs = sorted(n for n in os.listdir(final) if n.startswith('img_'))
  assert pngs == [f'img_{i:03d}.png' for i in range(100)]
  for name in pngs[:3]:
    image = Image.open(os.path.join(final, name))
    assert image.size == (28, 28) and image.mode == 'L'
  for name in ('final_grid.png', 'final_labeled_grid.png', 'labels.csv',
               'label_distribution.json'):
    assert os.path.exists(os.path.join(final, name)), name
  with open(os.path.join(final, 'labels.csv')) as f:
    assert len(f.read().strip().splitlines()) == 101
  records = files.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
  assert [r['epoch'] for r in records] == [1, 2]
  for r in records:
    assert {'d_loss', 'd_acc', 'g_loss', 'fd', 'is', 'classes_covered'} <= set(r)
  for name in ('losses.png', 'quality.png', 'label_distribution.png'):
    assert os.path.exists(os.path.join(workdir, 'plots', name)), name
  with open(os.path.join(workdir, 'report.json')) as f:
    saved = json.load(f)
  assert saved['final']['epoch'] == 2 and saved['reference']['is'] > 1
  assert sum(saved['label_counts'].values()) == 100
  assert report['final']['fd'] == saved['final']['fd']
  with open(os.path.join(workdir, 'run.json')) as f:
    info = json.load(f)
  assert info['config']['arch'] == 'mlp' and 'jax' in info['versions']
  assert info['preset'] == 'mnist'  # The preset the unset settings came from.
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['1', '2']
  leftovers = [n for _, _, names in os.walk(workdir) for n in names if n.startswith('.tmp-')]
  assert not leftovers


def test_same_seed_gives_identical_outputs(tmp_path, mock_data_dir, classifier_dir):
  a = _config(tmp_path / 'a', mock_data_dir, classifier_dir)
  b = _config(tmp_path / 'b', mock_data_dir, classifier_dir)
  trainer.train_and_evaluate(a, log=_quiet)
  trainer.train_and_evaluate(b, log=_quiet)
  assert _outputs(a.workdir) == _outputs(b.workdir)
  c = _config(tmp_path / 'c', mock_data_dir, classifier_dir, seed=1)
  trainer.train_and_evaluate(c, log=_quiet)
  assert _outputs(a.workdir)['metrics'] != _outputs(c.workdir)['metrics']


def test_interrupted_and_resumed_run_ends_identical_to_uninterrupted_run(
    tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  full = _config(tmp_path / 'full', mock_data_dir, classifier_dir, epochs=4, save_interval=2)
  trainer.train_and_evaluate(full, log=_quiet)

  part = _config(tmp_path / 'part', mock_data_dir, classifier_dir, epochs=4, save_interval=2)
  real_chunk, sent = trainer.train.run_chunk, []
  steps_per_epoch = part.limit // part.batch_size

  def interrupted(state, *args, **kwargs):  # Ctrl-C once epoch 2 has begun.
    if int(state.generator.step) >= steps_per_epoch and not sent:
      sent.append(True)
      os.kill(os.getpid(), signal.SIGINT)
    return real_chunk(state, *args, **kwargs)

  monkeypatch.setattr(trainer.train, 'run_chunk', interrupted)
  with pytest.raises(trainer.Interrupted, match='after epoch 2/4'):
    trainer.train_and_evaluate(part, log=_quiet)
  monkeypatch.undo()
  assert os.listdir(os.path.join(part.workdir, 'checkpoints')) == ['2']
  lines = []
  trainer.train_and_evaluate(part, log=lines.append)
  assert any('Resuming from the checkpoint of epoch 2' in l for l in lines)
  assert [l.split(' |')[0] for l in lines if l.startswith('Epoch')] == ['Epoch 3/4', 'Epoch 4/4']
  assert _outputs(full.workdir) == _outputs(part.workdir)


def test_finished_run_is_not_trained_again(tmp_path, mock_data_dir, classifier_dir):
  config = _config(tmp_path, mock_data_dir, classifier_dir, epochs=1)
  first = trainer.train_and_evaluate(config, log=_quiet)
  kept = {name: (tmp_path / 'run' / name).read_bytes() for name in ('report.json', 'run.json')}
  lines = []
  again = trainer.train_and_evaluate(config, log=lines.append)
  assert any('already complete' in l for l in lines)
  assert not any(l.startswith('Epoch') for l in lines)
  # The finished run's report (its wall time included) and run.json stay as they were.
  assert again == first
  for name, content in kept.items():
    assert (tmp_path / 'run' / name).read_bytes() == content, name


def test_different_config_in_same_workdir_is_refused_unless_overwrite(
    tmp_path, mock_data_dir, classifier_dir):
  config = _config(tmp_path, mock_data_dir, classifier_dir, epochs=1)
  trainer.train_and_evaluate(config, log=_quiet)
  before = _outputs(config.workdir)
  with pytest.raises(trainer.RunError, match='noise_dim'):
    trainer.train_and_evaluate(config.replace(noise_dim=64), log=_quiet)
  assert _outputs(config.workdir) == before  # Nothing touched.
  # The class loss only exists in conditional runs: changing it here is no change.
  trainer.train_and_evaluate(config.replace(class_loss_weight=0.5), log=_quiet)
  assert _outputs(config.workdir) == before
  lines = []
  trainer.train_and_evaluate(config.replace(noise_dim=64, overwrite=True), log=lines.append)
  assert any('--overwrite: removing' in l for l in lines)
  with open(os.path.join(config.workdir, 'run.json')) as f:
    assert json.load(f)['config']['noise_dim'] == 64


def test_corrupt_checkpoint_names_the_path(tmp_path, mock_data_dir, classifier_dir):
  config = _config(tmp_path, mock_data_dir, classifier_dir, epochs=1)
  trainer.train_and_evaluate(config, log=_quiet)
  state_dir = os.path.join(config.workdir, 'checkpoints', '1', 'state')
  for root, _, names in os.walk(state_dir):
    for name in names:
      with open(os.path.join(root, name), 'r+b') as f:
        f.truncate(3)
  with pytest.raises(checkpoints.CheckpointError, match=os.path.join('checkpoints', '1')):
    trainer.train_and_evaluate(config.replace(epochs=2), log=_quiet)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  config = _config(tmp_path, mock_data_dir, classifier_dir, epochs=1)
  trainer.train_and_evaluate(config, log=_quiet)
  real_chunk = trainer.train.run_chunk

  def poisoned(*args, **kwargs):  # A blow-up: NaN losses from epoch 2 on.
    state, metrics = real_chunk(*args, **kwargs)
    return state, {**metrics, 'g_loss': metrics['g_loss'] * float('nan')}

  monkeypatch.setattr(trainer.train, 'run_chunk', poisoned)
  with pytest.raises(trainer.NonFiniteLossError, match='epoch 2: non-finite loss'):
    trainer.train_and_evaluate(config.replace(epochs=3), log=_quiet)
  assert os.listdir(os.path.join(config.workdir, 'checkpoints')) == ['1']


def test_sample_mode_writes_n_images_deterministically(tmp_path, mock_data_dir, classifier_dir):
  config = _config(tmp_path, mock_data_dir, classifier_dir, epochs=1)
  trainer.train_and_evaluate(config, log=_quiet)
  paths = sampling.sample_from_run(config.replace(num_samples=7, sample_dir=str(tmp_path / 's1')),
                                  log=_quiet)
  assert len(paths) == 7 and all(os.path.exists(p) for p in paths)
  again = sampling.sample_from_run(config.replace(num_samples=7, sample_dir=str(tmp_path / 's2')),
                                  log=_quiet)
  for p, q in zip(paths, again):
    assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(q)))
  assert Image.open(paths[0]).size == (28, 28)
  lines = []
  narrow = sampling.sample_from_run(config.replace(num_samples=7, noise_scale=0.5,
                                                  sample_dir=str(tmp_path / 's3')),
                                   log=lines.append)
  assert lines[-1].endswith('(noise scale 0.5)')
  assert not all(np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(q)))
                 for p, q in zip(paths, narrow))


def test_conditional_run_grids_a_class_per_row_and_samples_a_requested_class(
    tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  from gan_jax import augmentation_check
  monkeypatch.setattr(evaluate, "CAS_IMAGES", 500)  # The CAS of 10,000 takes a minute.
  monkeypatch.setattr(augmentation_check, 'STEPS', 50)  # Its four CNNs likewise.
  config = _config(tmp_path, mock_data_dir, classifier_dir, conditional=True, epochs=1)
  lines = []
  report = trainer.train_and_evaluate(config, log=lines.append)
  # Beside the CAS, the augmentation check: the run's real images, as many synthetic.
  check = report['augmentation']
  assert check['synthetic_images'] == check['real_images'] and check['steps'] == 50
  assert 0 <= check['real_plus_synthetic_shifted'] <= 1
  assert any(line.startswith('Augmentation check (real test split): ') for line in lines)
  assert 0.0 <= report['final']['label_agreement'] <= 1.0
  # Fidelity per class: the worst one is named on the quality line and in the report.
  final = report['final']
  assert len(final['fd_per_class']) == 10 and 0 <= final['worst_class'] < 10
  assert final['fd_per_class'][final['worst_class']] == max(
      v for v in final['fd_per_class'] if v is not None)
  quality_line, = [l for l in lines if l.startswith('  quality at epoch 1: ')]
  assert re.fullmatch(
      r'  quality at epoch 1: FD \d+\.\d\d \| IS \d+\.\d\d \(real \d+\.\d\d\) \| classes '
      r'\d+/10 \| confidence \d\.\d\d \| label agreement \d+\.\d% \| precision \d\.\d\d \| '
      r'recall \d\.\d\d \| worst class \d \(FD \d+\.\d\) \| \d+\.\ds', quality_line), quality_line
  cas = report['cas']
  assert cas['images'] == 500 and 0 <= cas['cas'] <= 1 and 0 <= cas['cas_real'] <= 1
  gaps = np.subtract(cas['cas_real_per_class'], cas['cas_per_class'])
  assert len(gaps) == 10 and cas['worst_class'] == int(np.argmax(gaps))
  assert any(l.startswith('CAS ') and ', furthest below its real-trained accuracy: ' in l
             for l in lines), lines
  assert 'label_agreement' in files.read_jsonl(
      os.path.join(config.workdir, 'metrics.jsonl'))[-1]
  grid = Image.open(os.path.join(config.workdir, 'generated_samples', 'epoch_01.png'))
  plain = Image.open(os.path.join(config.workdir, 'final_generated_images', 'final_grid.png'))
  assert grid.size == plain.size  # 10x10, like the final grid.
  final = sorted(n for n in os.listdir(os.path.join(config.workdir, 'final_generated_images'))
                 if n.startswith('img_'))
  assert len(final) == 100
  # The grid rows are the classes: the same noise per column, another label per row.
  rows = sampling.class_rows(config, 10)
  assert rows.tolist() == [c for c in range(10) for _ in range(10)]
  noise = np.asarray(sampling.grid_noise(config, sampling.keys(0)['grid']))
  np.testing.assert_array_equal(noise[:10], noise[10:20])
  sevens = sampling.sample_from_run(config.replace(num_samples=4, label=7,
                                                  sample_dir=str(tmp_path / 's7')), log=_quiet)
  threes = sampling.sample_from_run(config.replace(num_samples=4, label=3,
                                                  sample_dir=str(tmp_path / 's3')), log=_quiet)
  assert len(sevens) == 4
  # The same noise, another class: other images.
  assert not np.array_equal(np.asarray(Image.open(sevens[0])), np.asarray(Image.open(threes[0])))
  # A conditional run is trained with its class loss: another weight is another run.
  with pytest.raises(trainer.RunError, match='class_loss_weight'):
    trainer.train_and_evaluate(config.replace(class_loss_weight=0.5), log=_quiet)


def test_a_run_without_arch_trains_and_records_its_datasets_default_network(
    tmp_path, mock_data_dir, classifier_dir):
  config = _config(tmp_path, mock_data_dir, classifier_dir, arch=None, epochs=1)
  trainer.train_and_evaluate(config, log=_quiet)
  with open(os.path.join(config.workdir, 'run.json')) as f:
    assert json.load(f)['config']['arch'] == 'mlp_bn'  # MNIST's default.
  # Resuming with the network named explicitly is the same run.
  lines = []
  trainer.train_and_evaluate(config.replace(arch='mlp_bn', epochs=2), log=lines.append)
  assert any('Resuming from the checkpoint of epoch 1' in l for l in lines)


def test_sample_mode_without_checkpoint_is_an_error(tmp_path):
  with pytest.raises(trainer.RunError, match='no checkpoint'):
    sampling.sample_from_run(Config(workdir=str(tmp_path)), log=_quiet)


def test_workdir_that_is_a_file_is_refused(tmp_path, mock_data_dir, classifier_dir):
  path = tmp_path / 'file'
  path.write_text('mine')
  with pytest.raises(trainer.RunError, match='is a file'):
    trainer.train_and_evaluate(_config(tmp_path, mock_data_dir, classifier_dir, workdir=str(path)),
                               log=_quiet)
  assert path.read_text() == 'mine'


def test_batch_larger_than_dataset_is_refused_before_writing(tmp_path, mock_data_dir, classifier_dir):
  config = _config(tmp_path, mock_data_dir, classifier_dir, batch_size=1024, limit=100)
  with pytest.raises(trainer.RunError, match='larger than the 100 training examples'):
    trainer.train_and_evaluate(config, log=_quiet)
  assert not os.path.exists(config.workdir)


def test_run_failing_before_its_first_checkpoint_leaves_nothing_in_the_way(
    tmp_path, mock_data_dir, classifier_dir, monkeypatch):
  config = _config(tmp_path, mock_data_dir, classifier_dir, epochs=2, save_interval=2)
  os.makedirs(config.workdir)
  (tmp_path / 'run' / 'notes.txt').write_text('mine')  # The user's own file stays.
  real_chunk = trainer.train.run_chunk
  calls = []

  def crash_in_epoch_1(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      raise MemoryError('out of memory in epoch 1')
    return real_chunk(*args, **kwargs)

  monkeypatch.setattr(trainer.train, 'run_chunk', crash_in_epoch_1)
  with pytest.raises(MemoryError):
    trainer.train_and_evaluate(config, log=_quiet)
  assert sorted(os.listdir(config.workdir)) == ['notes.txt']
  monkeypatch.setattr(trainer.train, 'run_chunk', real_chunk)
  report = trainer.train_and_evaluate(config, log=_quiet)  # The same call, no --overwrite.
  assert report['final']['epoch'] == 2
  assert (tmp_path / 'run' / 'notes.txt').read_text() == 'mine'


def test_data_folder_from_the_environment_reaches_every_part_of_a_run(
    tmp_path, data_dir, monkeypatch):
  """TFDS_DATA_DIR alone (no data_dir): training and a classifier of one's own,
  trained and given its reference statistics from the same folder."""
  monkeypatch.setenv('TFDS_DATA_DIR', data_dir)
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  from gan_jax import classifier as classifier_lib
  real_train = classifier_lib.train_classifier
  quick = classifier_lib.TrainConfig(epochs=1, train_limit=500, test_limit=200)
  monkeypatch.setattr(classifier_lib, 'train_classifier',
                      lambda dataset, data_dir, config, **k: real_train(dataset, data_dir,
                                                                        quick, **k))
  config = _config(tmp_path, None, str(tmp_path / 'own_classifier'), epochs=1)
  report = trainer.train_and_evaluate(config, log=_quiet)
  assert report['classifier']['shipped'] is False
  assert report['reference']['num_examples'] == 10000
  with open(os.path.join(config.workdir, 'run.json')) as f:
    assert json.load(f)['config']['data_dir'] == data_dir


def _png(path):
  return np.asarray(Image.open(path))


def test_sample_mode_draws_the_requested_class_and_single_images_look_real(
    tmp_path, data_dir, classifier_dir):
  """A short conditional run on real MNIST with the BatchNorm generator:
  single-class batches of --mode=sample --label=k are of class k, and one image
  alone spreads over the pixel range as real digits do."""
  from gan_jax import classifier_store
  config = _config(tmp_path, data_dir, classifier_dir, arch='mlp_bn', conditional=True,
                   epochs=3, save_interval=3, batch_size=32, limit=5000, eval_samples=500,
                   cas=False)  # --nocas: no final CAS (trains two CNNs on 10,000 images).
  report = trainer.train_and_evaluate(config, log=_quiet)
  assert 'cas' not in report
  classify = classifier_store.load_or_train('mnist', data_dir, classifier_dir,
                                            log=_quiet).classifier.predict
  drawn = {}
  for k in (3, 7):
    paths = sampling.sample_from_run(config.replace(
        num_samples=200, label=k, sample_dir=str(tmp_path / f'class{k}')), log=_quiet)
    drawn[k] = np.stack([_png(p) for p in paths]).astype(np.float32) / 127.5 - 1
    agreement = np.mean(classify(drawn[k][..., None]) == k)
    assert agreement > 0.5, (k, agreement)  # Chance is 0.1.
  assert np.mean(np.abs(drawn[3] - drawn[7])) > 0.1  # The same noise, another class.
  # The evaluation (single-class batches too) agrees.
  assert report['final']['label_agreement'] > 0.5
  (single,) = sampling.sample_from_run(config.replace(
      num_samples=1, label=8, sample_dir=str(tmp_path / 'one')), log=_quiet)
  pixels = _png(single)
  # Real digits: black background, white strokes (0 and 255 both present).
  assert pixels.min() < 40 and pixels.max() > 215 and pixels.std() > 40, pixels


def test_a_checkpoint_from_before_the_reconstruction_term_resumes_and_loads_without_it():
  resolved = config_lib.resolve(Config(dataset='fashion', conditional=True))
  assert resolved.reconstruction == 10.0
  meta = {'config': {k: getattr(resolved, k) for k in config_lib.RESUME_FIELDS
                     if k != 'reconstruction'}}
  with pytest.raises(trainer.RunError, match='to continue it, pass --reconstruction=0.0;'):
    checkpoints.check_resumable(meta, resolved, 'ckpt')  # pylint: disable=protected-access
  checkpoints.check_resumable(meta, resolved.replace(reconstruction=0.0), 'ckpt')  # pylint: disable=protected-access
  # Sampling and export rebuild such a run's generator without an encoder.
  assert checkpoints.saved_config(meta)['reconstruction'] == 0.0  # pylint: disable=protected-access


def test_a_checkpoint_from_before_mode_seeking_resumes_only_without_it():
  resolved = config_lib.resolve(Config(dataset='mnist'))
  meta = {'config': {k: getattr(resolved, k) for k in config_lib.RESUME_FIELDS
                     if k not in ('mode_seeking', 'class_loss_weight')}}
  checkpoints.check_resumable(meta, resolved, 'ckpt')  # pylint: disable=protected-access
  with pytest.raises(trainer.RunError, match='mode_seeking: checkpoint 0.0, now 1.0'):
    checkpoints.check_resumable(meta, resolved.replace(mode_seeking=1.0), 'ckpt')  # pylint: disable=protected-access
  # The error names the flags that continue the run.
  with pytest.raises(trainer.RunError,
                     match='to continue it, pass --conditional=false --mode_seeking=0.0;'):
    checkpoints.check_resumable(meta, resolved.replace(mode_seeking=1.0, conditional=True),  # pylint: disable=protected-access
                             'ckpt')

"""The command line: flag validation, help, interactive mode, signals.

Each test runs `python run.py` in a subprocess, as a user would; those that
train read the fake data of tests/mock_tfds.py (`fake_data=True`: run.py
started through it, with an empty folder as --data_dir).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from gan_jax import files

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO_ROOT, 'run.py')
ON_FAKE_DATA = [os.path.join(REPO_ROOT, 'tests', 'mock_tfds.py'), RUN]


def _run(args, cwd, timeout=120, stdin=None, fake_data=False):
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  command = [sys.executable, *(ON_FAKE_DATA if fake_data else [RUN]), *args]
  return subprocess.run(command, cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, input=stdin, env=env)


BAD_FLAGS = [
    (['--epochs=0'], '--epochs'),
    (['--epochs=-5'], '--epochs'),
    (['--epochs=abc'], '--epochs'),
    (['--batch_size=-3'], '--batch_size'),
    (['--batch_size=0'], '--batch_size'),
    (['--batch_size=100000000'], '--batch_size'),
    (['--noise_dim=0'], '--noise_dim'),
    (['--noise_dim=1000000000'], '--noise_dim'),
    (['--learning_rate=abc'], '--learning_rate'),
    (['--learning_rate=0'], '--learning_rate'),
    (['--learning_rate=-1e-3'], '--learning_rate'),
    (['--learning_rate=nan'], '--learning_rate'),
    (['--learning_rate=1e9'], '--learning_rate'),
    (['--beta1=1.5'], '--beta1'),
    (['--ema_decay=1'], '--ema_decay'),
    (['--label_smoothing=0.7'], '--label_smoothing'),
    (['--loss=wasserstein'], '--loss'),
    (['--conditional', '--class_loss_weight=-1'], '--class_loss_weight'),
    (['--save_interval=0'], '--save_interval'),
    (['--save_interval=50', '--epochs=10'], '--save_interval'),
    (['--dataset=cifar10'], '--dataset'),
    (['--arch=resnet'], '--arch'),
    (['--dtype=float16'], '--dtype'),
    (['--mode=serve'], '--mode'),
    (['--seed=-1'], '--seed'),
    (['--eval_samples=0'], '--eval_samples'),
    (['--keep_checkpoints=0'], '--keep_checkpoints'),
    (['--limit=0'], '--limit'),
    (['--train_examples=5'], '--train_examples'),
    (['--train_examples=100', '--limit=50'], '--train_examples'),
    (['--augment=flip'], '--augment'),
    (['--synthetic_per_real=0'], '--synthetic_per_real'),
    (['--limit=3'], '--limit'),  # Precision and recall need k+1 = 4 images.
    (['--limit=20'], '--batch_size=32 is larger than the 20 training examples of --limit=20'),
    (['--eval_samples=3'], '--eval_samples'),
    (['--mode=sample', '--label=10'], '--label'),
    (['--mode=sample', '--label=-1'], '--label'),
    (['--label=3'], '--label'),
    (['--mode=export', '--min_confidence=2'], '--min_confidence'),
    (['--mode=export', '--min_confidence=-0.1'], '--min_confidence'),
    (['--mode=export', '--num_samples=0'], '--num_samples'),
    (['--min_confidence=0.5'], '--min_confidence'),
    (['--export_dir=x'], '--export_dir'),
    (['--mode=sample', '--nocas'], '--cas'),
    (['--mode=sample', '--noise_scale=0'], '--noise_scale'),
    (['--mode=export', '--noise_scale=11'], '--noise_scale'),
    (['--mode=sample', '--noise_scale=nan'], '--noise_scale'),
    (['--noise_scale=1.5'], '--noise_scale'),
]


@pytest.mark.parametrize('args,flag', BAD_FLAGS, ids=[' '.join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_values_fail_fast_with_one_line_and_create_nothing(tmp_path, args, flag):
  workdir = tmp_path / 'run'
  start = time.time()
  result = _run([*args, f'--workdir={workdir}'], cwd=tmp_path)
  assert result.returncode != 0
  error_lines = [l for l in result.stderr.splitlines() if flag in l]
  assert error_lines, result.stderr
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()
  assert time.time() - start < 30


@pytest.mark.parametrize('arg,words', [('--reconstruction=abc', 'could not convert'),
                                        ('--epochs=many', 'invalid literal'),
                                        ('--no_such_flag=1', 'no_such_flag')])
def test_a_flag_absl_cannot_parse_is_one_error_line_with_exit_2(tmp_path, arg, words):
  result = _run([arg, f'--workdir={tmp_path}/run'], cwd=tmp_path)
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ') and words in lines[0], lines
  assert not (tmp_path / 'run').exists()


def test_help_lists_every_flag_with_its_default(tmp_path):
  from gan_jax import config
  result = _run(['--helpshort'], cwd=tmp_path)
  text = result.stdout + result.stderr
  for field in config.FIELDS:  # Every setting is a flag, shown with its help.
    name = f'--[no]{field.name}' if field.type == 'bool' else f'--{field.name}'
    assert f'  {name}: ' in text, field.name
    assert field.metadata['help'][:40].split()[-2] in text, field.name
  for flag in ('mode', 'interactive', 'distributed', 'traceback'):  # The command's own.
    assert f'--{flag}' in text or f'--[no]{flag}' in text, flag
  assert "(default: '30')" in text and "(default: '0.0004')" in text


def test_missing_data_dir_is_reported(tmp_path):
  result = _run([f'--data_dir={tmp_path}/nope', f'--workdir={tmp_path}/run'], cwd=tmp_path)
  assert result.returncode != 0
  assert '--data_dir' in result.stderr and 'does not exist' in result.stderr
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_data_not_available_offline_fails_fast_naming_the_fix(tmp_path):
  empty = tmp_path / 'empty_tfds'
  empty.mkdir()
  start = time.time()
  result = _run([f'--data_dir={empty}', f'--workdir={tmp_path}/run'], cwd=tmp_path)
  assert result.returncode != 0
  assert time.time() - start < 30
  assert 'not prepared' in result.stderr and 'TFDS_DATA_DIR' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_workdir_that_is_a_file_or_unwritable_is_refused(tmp_path):
  target = tmp_path / 'a_file'
  target.write_text('keep me')
  result = _run([f'--workdir={target}', f'--data_dir={tmp_path}', '--limit=256'], cwd=tmp_path,
                fake_data=True)
  assert result.returncode != 0 and 'is a file' in result.stderr
  assert target.read_text() == 'keep me'
  result = _run(['--workdir=/proc/gan_jax_run', f'--data_dir={tmp_path}', '--limit=256'],
                cwd=tmp_path, fake_data=True)
  assert result.returncode != 0 and 'cannot write' in result.stderr


@pytest.mark.slow
def test_batch_size_larger_than_the_dataset(tmp_path):
  result = _run([f'--workdir={tmp_path}/run', f'--data_dir={tmp_path}', '--limit=300',
                 '--batch_size=512'], cwd=tmp_path, fake_data=True)
  assert result.returncode != 0
  assert 'larger than the 300 training examples' in result.stderr
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_sample_mode_without_a_checkpoint(tmp_path):
  result = _run(['--mode=sample', f'--workdir={tmp_path}'], cwd=tmp_path)
  assert result.returncode != 0 and 'no checkpoint' in result.stderr


@pytest.mark.slow
def test_export_without_a_checkpoint_writes_nothing(tmp_path):
  export_dir = tmp_path / 'set'
  result = _run(['--mode=export', f'--workdir={tmp_path / "run"}',
                 f'--export_dir={export_dir}'], cwd=tmp_path)
  assert result.returncode == 2
  assert [l for l in result.stderr.splitlines() if l.startswith('error:')] == [
      result.stderr.strip()], result.stderr
  assert 'no checkpoint' in result.stderr
  assert not export_dir.exists() and not (tmp_path / 'run').exists()


def test_label_is_refused_out_of_range_in_training_and_on_an_unconditional_run(
    tmp_path, classifier_dir):
  workdir = tmp_path / 'run'
  common = [f'--workdir={workdir}', f'--data_dir={tmp_path}']
  for args in (['--mode=sample', '--label=10'], ['--label=3']):
    result = _run([*args, *common], cwd=tmp_path, fake_data=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count('error: --label') == 1, result.stderr
  assert not workdir.exists()
  trained = _run(['--epochs=1', '--limit=128', '--batch_size=64', '--eval_samples=100',
                  f'--classifier_dir={classifier_dir}', *common], cwd=tmp_path, timeout=300,
                 fake_data=True)
  assert trained.returncode == 0, trained.stderr
  result = _run(['--mode=sample', '--label=3', *common], cwd=tmp_path, fake_data=True)
  assert result.returncode == 2, result.stderr
  assert 'unconditional' in result.stderr and 'Traceback' not in result.stderr
  assert len([l for l in result.stderr.splitlines() if l.startswith('error:')]) == 1
  assert not (workdir / 'samples').exists()


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_resume_continues(tmp_path, classifier_dir):
  workdir = tmp_path / 'run'
  args = ['--arch=mlp', f'--workdir={workdir}', f'--data_dir={tmp_path}', '--limit=2560',
          '--batch_size=64', f'--classifier_dir={classifier_dir}', '--eval_samples=100',
          '--epochs=1000000000', '--save_interval=1000']
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  proc = subprocess.Popen([sys.executable, *ON_FAKE_DATA, *args], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  first = ''
  deadline = time.time() + 120
  while time.time() < deadline:
    first = proc.stdout.readline()
    if first.startswith('Epoch 1/'):
      break
  assert first.startswith('Epoch 1/1000000000 | D_loss:'), first
  assert 'ETA ' in first  # A billion epochs is allowed, and the ETA says what it means.
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  assert 'Run the same command again to resume' in err
  assert err.strip().splitlines()[-1].startswith('stopped: after epoch ')  # Not an error.
  checkpoints = os.listdir(workdir / 'checkpoints')
  assert len(checkpoints) == 1
  saved_epoch = int(checkpoints[0])
  records = files.read_jsonl(str(workdir / 'metrics.jsonl'))
  assert records[-1]['epoch'] == saved_epoch
  # Resume, asking for just one more epoch than was saved.
  resumed = _run([*args[:-2], f'--epochs={saved_epoch + 1}', '--save_interval=1'], cwd=tmp_path,
                 fake_data=True)
  assert resumed.returncode == 0, resumed.stderr
  assert f'Resuming from the checkpoint of epoch {saved_epoch}' in resumed.stdout
  assert f'Epoch {saved_epoch + 1}/{saved_epoch + 1} |' in resumed.stdout


@pytest.mark.slow
def test_interactive_mode_asks_and_reasks_then_runs(tmp_path, classifier_dir):
  # dataset, epochs (bad, then good), batch_size, noise_dim (default), lr (default), save_interval
  answers = 'cifar\nmnist\n0\n1\n64\n\n\n1\n'
  result = _run(['--interactive', '--arch=mlp', f'--workdir={tmp_path}/run',
                 f'--data_dir={tmp_path}', '--limit=640', f'--classifier_dir={classifier_dir}',
                 '--eval_samples=100'], cwd=tmp_path, stdin=answers, timeout=300, fake_data=True)
  assert result.returncode == 0, result.stderr
  assert result.stdout.count('Invalid') >= 2  # cifar and 0 were re-asked.
  assert 'Epoch 1/1 | D_loss:' in result.stdout
  assert os.path.exists(tmp_path / 'run' / 'final_generated_images' / 'img_099.png')


@pytest.mark.slow
def test_interactive_input_that_ends_or_never_answers_is_one_error_line(tmp_path):
  ended = _run(['--interactive', f'--workdir={tmp_path}/run'], cwd=tmp_path, stdin='')
  assert ended.returncode == 2, ended.stderr
  assert ended.stderr.splitlines() == [
      'error: --interactive: no answer for dataset: input ended (EOF); nothing was started; '
      'run it in a terminal, or pass the parameters as flags instead']
  # `yes | python run.py --interactive`: gives up within seconds, the output bounded.
  start = time.time()
  yes = subprocess.Popen(['yes'], stdout=subprocess.PIPE)
  try:
    result = subprocess.run([sys.executable, RUN, '--interactive', f'--workdir={tmp_path}/run'],
                            stdin=yes.stdout, capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED='1'))
  finally:
    yes.kill()
    yes.wait()
  assert time.time() - start < 30 and result.returncode == 2, result.stderr
  assert len(result.stdout) + len(result.stderr) < 5000
  assert result.stdout.count('Invalid dataset') == 5
  assert result.stderr.splitlines() == [
      "error: --interactive: no valid answer for dataset in 5 tries (the last: must be 1 "
      "(mnist) or 2 (fashion); got 'y'); nothing was started; pass the parameters as flags "
      'instead (--dataset=...)']
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_run_failing_at_set_up_then_the_same_command_runs(tmp_path, classifier_dir):
  """A damaged classifier folder stops the run before anything is written;
  once it is repaired, the very same command trains (no --overwrite)."""
  import shutil
  own = tmp_path / 'my_classifier'
  shutil.copytree(classifier_dir, own)
  (own / 'classifier.json').write_text('{"schema_ver')  # Truncated.
  args = ['--epochs=1', '--batch_size=64', '--limit=640', '--eval_samples=100',
          f'--data_dir={tmp_path}', f'--classifier_dir={own}', f'--workdir={tmp_path}/run']
  failed = _run(args, cwd=tmp_path, fake_data=True)
  assert failed.returncode == 2
  lines = failed.stderr.strip().splitlines()
  assert lines[-1].startswith('error: classifier checkpoint at ') and str(own) in lines[-1]
  assert not (tmp_path / 'run').exists()
  shutil.rmtree(own)
  shutil.copytree(classifier_dir, own)
  again = _run(args, cwd=tmp_path, fake_data=True)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'Epoch 1/1 | D_loss:' in again.stdout


@pytest.mark.slow
def test_a_run_on_a_few_hundred_labelled_images_ends_with_every_output(tmp_path, data_dir):
  """The scarce-data command of the README, shortened: 300 real images, one epoch
  (--nocas: the CAS and the augmentation check are tested in test_trainer.py)."""
  import json
  workdir = tmp_path / 'run'
  result = _run(['--dataset=mnist', '--conditional', '--train_examples=300', '--epochs=1',
                 '--arch=mlp', '--eval_samples=500', '--nocas',
                 f'--workdir={workdir}', f'--data_dir={data_dir}', '--progress=false'],
                cwd=tmp_path, timeout=900)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'Epoch 1/1' in result.stdout and 'Memorisation ratio' in result.stdout
  info = json.loads((workdir / 'run.json').read_text())
  indices = info['train_example_indices']
  assert len(indices) == len(set(indices)) == 300 and info['config']['augment'] != 'none'
  report = json.loads((workdir / 'report.json').read_text())
  assert 0 <= report['recall_whole_split'] <= 1 and report['memorisation_ratio'] > 0
  # An epoch of a run on 300 images shows about 60,000 (200 passes).
  record, = files.read_jsonl(str(workdir / 'metrics.jsonl'))
  assert record['epoch'] == 1 and 'fd' in record
  for name in ('generated_samples/epoch_01.png', 'final_generated_images/img_099.png',
               'final_generated_images/nearest_train.png', 'plots/quality.png', 'checkpoints/1'):
    assert (workdir / name).exists(), name

"""Every path gan_jax writes is checked before any work: not inside another
output of gan_jax, not another kind of output, a folder, writable (outputs.py).
The folders are made by hand here, marked as gan_jax marks its own."""

import json
import os

import pytest

from gan_jax import outputs
from gan_jax.errors import RunError


@pytest.fixture
def place(tmp_path):
  """A run (W, with checkpoints/1), an export, a sample and a classifier folder."""
  (tmp_path / 'W' / 'checkpoints' / '1').mkdir(parents=True)
  (tmp_path / 'W' / 'run.json').write_text('{}')
  (tmp_path / 'E').mkdir()
  (tmp_path / 'E' / 'manifest.json').write_text(json.dumps({'format': 'gan_jax-export'}))
  (tmp_path / 'S').mkdir()
  (tmp_path / 'S' / '.gan_jax-sample.json').write_text(
      json.dumps({'format': 'gan_jax-sample', 'files': ['sample_0.png']}))
  (tmp_path / 'C').mkdir()
  (tmp_path / 'C' / 'classifier.json').write_text('{}')
  (tmp_path / 'a_file').write_text('mine')
  return tmp_path


def test_each_output_of_gan_jax_is_told_by_the_file_that_marks_it(place):
  assert [outputs.what_is(str(place / n)) for n in ('W', 'E', 'S', 'C', 'a_file')] == [
      outputs.RUN, outputs.EXPORT, outputs.SAMPLE, outputs.CLASSIFIER, None]
  assert outputs.what_is(str(place)) is None


@pytest.mark.parametrize('flag,path,inside', [
    ('--export_dir', 'W/checkpoints/7', 'W/checkpoints'),
    ('--sample_dir', 'W/checkpoints/2', 'W/checkpoints'),
    ('--sample_dir', 'W/plots/x', 'W/plots'),
    ('--workdir', 'W/checkpoints/run', 'W/checkpoints'),
    ('--classifier_dir', 'W/generated_samples', 'W/generated_samples'),
    ('--workdir', 'E/train/new', 'E'),
    ('--export_dir', 'S/more', 'S'),
    ('--classifier_dir', 'C/params/x', 'C'),
])
def test_a_path_inside_another_output_is_refused(place, flag, path, inside):
  with pytest.raises(RunError) as info:
    outputs.check(flag, str(place / path), None)
  message = str(info.value)
  assert message.startswith(f'{flag}={place / path} is refused: it is ')
  assert f'{place / inside}' in message and '\n' not in message
  assert message.endswith('writing there could damage it, so nothing was written; choose a '
                          'folder outside it')
  assert not (place / path).exists()


@pytest.mark.parametrize('flag,path,may_be,what', [
    ('--workdir', 'E', outputs.RUN, 'an export'),
    ('--workdir', 'S', outputs.RUN, 'a sample'),
    ('--workdir', 'C', outputs.RUN, 'a classifier folder'),
    ('--export_dir', 'W', outputs.EXPORT, 'the workdir of a run'),
    ('--sample_dir', 'E', outputs.SAMPLE, 'an export'),
    ('--classifier_dir', 'W', outputs.CLASSIFIER, 'the workdir of a run'),
])
def test_another_kind_of_output_is_refused(place, flag, path, may_be, what):
  with pytest.raises(RunError, match=f'is {what} written by gan_jax, not a place for this '
                     'output; it is kept as it is'):
    outputs.check(flag, str(place / path), may_be)


def test_a_file_or_an_unwritable_place_is_refused_and_the_rest_passes(place):
  with pytest.raises(RunError, match=r'is a file, not a folder; it is kept as it is'):
    outputs.check('--classifier_dir', str(place / 'a_file'), outputs.CLASSIFIER)
  with pytest.raises(RunError, match=r'cannot write in .*/a_file \(Not a directory\)'):
    outputs.check('--sample_dir', str(place / 'a_file' / 'x'), outputs.SAMPLE, beside=True)
  with pytest.raises(RunError, match=r'cannot write in /proc'):
    outputs.check('--workdir', '/proc/gan_jax_run', outputs.RUN)
  assert outputs.check('--workdir', str(place / 'W'), outputs.RUN) == str(place / 'W')
  assert outputs.check('--export_dir', str(place / 'E'), outputs.EXPORT) == str(place / 'E')
  # A folder beside a run's own folders is the user's to choose.
  assert outputs.check('--sample_dir', str(place / 'W' / 'samples'), outputs.SAMPLE)
  os.symlink(place / 'W' / 'checkpoints', place / 'link')  # Followed.
  with pytest.raises(RunError, match='inside'):
    outputs.check('--export_dir', str(place / 'link' / '3'), outputs.EXPORT)

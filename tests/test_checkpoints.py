"""Orbax checkpoints of the GAN state: round trip, keep-N, damaged files."""

import os

import jax
import numpy as np
import pytest

from gan_jax import checkpoints, train
from gan_jax.config import Config


def _tree(seed=0):
  state = train.create_state(Config(arch='mlp'), jax.random.PRNGKey(seed))
  return {'gan': state, 'fixed_noise': np.ones((25, 100), np.float32)}


def test_round_trip_restores_every_array_and_the_meta(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path), max_to_keep=2)
  saved = _tree(0)
  checkpoints.save(manager, 3, saved, {'epoch': 3, 'history': [{'epoch': 1}]})
  restored, meta = checkpoints.restore(manager, 3, _tree(1))
  assert meta == {'epoch': 3, 'history': [{'epoch': 1}]}
  assert isinstance(restored['gan'], train.GANState)
  for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(a, b)


def test_only_the_last_n_are_kept(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path), max_to_keep=2)
  for epoch in (1, 2, 3):
    checkpoints.save(manager, epoch, _tree(), {'epoch': epoch})
  assert sorted(os.listdir(checkpoints.checkpoint_dir(str(tmp_path)))) == ['2', '3']
  assert checkpoints.has_checkpoint(str(tmp_path))


def test_a_deleted_file_gives_an_error_naming_the_checkpoint(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  checkpoints.save(manager, 1, _tree(), {'epoch': 1})
  state_dir = os.path.join(checkpoints.checkpoint_dir(str(tmp_path)), '1', 'state')
  os.remove(os.path.join(state_dir, 'manifest.ocdbt'))
  with pytest.raises(checkpoints.CheckpointError, match=r'checkpoints/1 .*--overwrite'):
    checkpoints.restore(checkpoints.make_manager(str(tmp_path)), 1, _tree())


def test_a_digest_is_written_and_a_changed_byte_fails_it(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  checkpoints.save(manager, 1, _tree(), {'epoch': 1})
  step = os.path.join(checkpoints.checkpoint_dir(str(tmp_path)), '1')
  assert os.path.exists(os.path.join(step, checkpoints.DIGEST))
  assert checkpoints.verify(manager, 1) is True
  paths = [os.path.join(r, n) for r, _, names in os.walk(os.path.join(step, 'state'))
           for n in names]
  largest = max(paths, key=os.path.getsize)
  with open(largest, 'r+b') as f:
    f.seek(os.path.getsize(largest) // 2)
    byte = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([byte[0] ^ 1]))
  assert checkpoints.verify(manager, 1) is False


def test_a_checkpoint_without_a_digest_is_unchecked(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  checkpoints.save(manager, 1, _tree(), {'epoch': 1})
  os.remove(os.path.join(checkpoints.checkpoint_dir(str(tmp_path)), '1', checkpoints.DIGEST))
  assert checkpoints.verify(manager, 1) is None  # Written by an older version: restored.
  restored, meta = checkpoints.restore(manager, 1, _tree(1))
  assert meta == {'epoch': 1}


def test_set_aside_renames_outside_orbaxs_steps_and_never_deletes(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  for epoch in (1, 2):
    checkpoints.save(manager, epoch, _tree(), {'epoch': epoch})
  path = checkpoints.set_aside(manager, 2)
  assert path.endswith(os.path.join('checkpoints', '2.damaged')) and os.path.isdir(path)
  manager.reload()
  assert manager.latest_step() == 1 and checkpoints.latest_epoch(str(tmp_path)) == 1
  checkpoints.save(manager, 2, _tree(), {'epoch': 2})
  assert checkpoints.set_aside(manager, 2).endswith('2.damaged-2')

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

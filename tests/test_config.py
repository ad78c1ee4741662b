"""The rules every run configuration must obey."""

import pytest

from gan_jax import config, presets


def test_defaults_are_valid_and_the_documented_ones():
  config.validate(config.Config())
  c = config.resolve(config.Config())
  assert (c.epochs, c.noise_dim, c.save_interval, c.beta1) == (30, 100, 5, 0.5)
  assert c.augment == 'none' and c.train_examples is None
  # The quality defaults chosen in docs/quality.md.
  assert (config.Config().arch, c.batch_size, c.learning_rate, c.ema_decay,
          c.label_smoothing) == (None, 32, 4e-4, 0.999, 0.1)


@pytest.mark.parametrize('dataset,conditional,arch,mode_seeking', [
    ('mnist', False, 'mlp_bn', 0.0), ('mnist', True, 'mlp_bn', 1.0),
    ('fashion', False, 'mlp_wide', 1.0), ('fashion', True, 'mlp_wide', 0.3),
    ('fashion_mnist', False, 'mlp_wide', 1.0)])
def test_unset_arch_and_mode_seeking_are_the_datasets_defaults_and_given_ones_stay(
    dataset, conditional, arch, mode_seeking):
  resolved = config.resolve(config.Config(dataset=dataset, conditional=conditional))
  assert (resolved.arch, resolved.mode_seeking) == (arch, mode_seeking)
  given = config.resolve(config.Config(dataset=dataset, conditional=conditional,
                                       arch='dcgan', mode_seeking=0.5))
  assert (given.arch, given.mode_seeking) == ('dcgan', 0.5)


@pytest.mark.parametrize('dataset,weight', [('mnist', 1.0), ('fashion', 0.5)])
def test_an_unset_class_loss_weight_is_the_datasets_default_for_conditional_runs(
    dataset, weight):
  assert config.resolve(config.Config(dataset=dataset, conditional=True)
                        ).class_loss_weight == weight
  assert config.resolve(config.Config(dataset=dataset)).class_loss_weight == 0.0
  assert config.resolve(config.Config(dataset=dataset, conditional=True,
                                      class_loss_weight=2.0)).class_loss_weight == 2.0


@pytest.mark.parametrize('dataset,weight', [('mnist', 0.0), ('fashion', 10.0)])
def test_an_unset_reconstruction_weight_is_the_datasets_default_for_conditional_runs(
    dataset, weight):
  assert config.resolve(config.Config(dataset=dataset, conditional=True)
                        ).reconstruction == weight
  assert config.resolve(config.Config(dataset=dataset)).reconstruction == 0.0
  assert config.resolve(config.Config(dataset=dataset, reconstruction=3.0)
                        ).reconstruction == 3.0


def test_only_a_conditional_run_keeps_its_class_loss():
  assert config.resolve(config.Config(class_loss_weight=0.5)).class_loss_weight == 0.0
  assert config.resolve(config.Config(conditional=True,
                                      class_loss_weight=0.5)).class_loss_weight == 0.5


@pytest.mark.parametrize('field,value,words', [
    ('epochs', 0, 'positive'), ('epochs', 2.5, 'whole number'), ('batch_size', -3, 'positive'),
    ('noise_dim', 10**7, 'at most'), ('learning_rate', 0.0, '(0, 1]'),
    ('learning_rate', float('inf'), '(0, 1]'), ('learning_rate', 'abc', 'number'),
    ('beta1', 1.0, '[0, 1)'), ('ema_decay', 1.0, '[0, 1)'), ('ema_decay', 'x', 'number'),
    ('label_smoothing', 0.5, '[0, 0.5)'), ('label_smoothing', -0.1, '[0, 0.5)'), ('dataset', 'cifar', 'mnist'), ('arch', 'vit', 'dcgan'),
    ('dtype', 'float16', 'bfloat16'), ('seed', -1, '2**32'),
    ('class_loss_weight', -1.0, '[0, 100)'), ('class_loss_weight', float('nan'), '[0, 100)'),
    ('mode_seeking', -0.5, '[0, 100)'), ('mode_seeking', 'lots', 'number'),
    ('reconstruction', -1, '[0, 100)'), ('reconstruction', 100, '[0, 100)'),
    ('noise_scale', 0.0, '(0, 10]'), ('noise_scale', 10.5, '(0, 10]'),
    ('noise_scale', float('nan'), '(0, 10]'), ('noise_scale', True, 'number'),
])
def test_bad_values_name_the_field_and_what_is_allowed(field, value, words):
  with pytest.raises(ValueError) as e:
    config.validate(config.Config().replace(**{field: value}))
  assert f'--{field}' in str(e.value) and words in str(e.value)
  assert config.check(field, value)


def test_save_interval_cannot_exceed_epochs():
  with pytest.raises(ValueError, match='--save_interval=6 is larger than --epochs=5'):
    config.validate(config.Config(epochs=5, save_interval=6))
  config.validate(config.Config(epochs=5, save_interval=5))


def test_limit_must_be_positive_when_given():
  with pytest.raises(ValueError, match='--limit'):
    config.validate(config.Config(limit=0))
  config.validate(config.Config(limit=10, batch_size=8))


@pytest.mark.parametrize('field', ['limit', 'eval_samples'])
def test_too_few_images_for_an_evaluation_are_refused_at_start(field):
  # Precision and recall (k-NN) need k+1 real and k+1 generated images.
  from gan_jax import quality
  assert config.MIN_EVAL_IMAGES == quality.PR_NEIGHBOURS + 1 == config.PR_NEIGHBOURS + 1
  for n in (1, 2, 3):
    with pytest.raises(ValueError, match=rf'--{field}: must be at least 4, got {n}: each '
                       r"evaluation's precision and recall \(k-NN with k=3\) need 4"):
      config.validate(config.Config(**{field: n, 'batch_size': 1}))
  config.validate(config.Config(**{field: 4, 'batch_size': 1}))


def test_a_limit_below_one_batch_is_refused_at_start():
  with pytest.raises(ValueError, match=r'--batch_size=32 is larger than the 10 training '
                     r'examples of --limit=10: an epoch needs one whole batch; use '
                     r'--batch_size=10 or less, or --limit=32 or more'):
    config.validate(config.Config(limit=10))
  config.validate(config.Config(limit=32))


@pytest.mark.parametrize('label', [-1, 2.5, True])
def test_label_must_be_a_class_number(label):
  with pytest.raises(ValueError, match=r'--label: must be a class number \(0, 1, ...\)'):
    config.validate(config.Config(label=label))
  config.validate(config.Config(label=9))


def test_label_must_be_below_the_class_count():
  with pytest.raises(ValueError, match=r'--label: must be a class number from 0 to 9 \(10 '):
    config.validate(config.Config(label=10))


def test_a_run_on_few_examples_has_the_scarce_data_defaults():
  c = config.resolve(config.Config(train_examples=1000, conditional=True))
  assert (c.epochs, c.save_interval, c.augment) == (
      presets.SCARCE.epochs, presets.SCARCE.save_interval, presets.SCARCE.augment)
  # Given values win; the save interval's default stays within the epochs.
  c = config.resolve(config.Config(train_examples=1000, epochs=1, augment='none'))
  assert (c.epochs, c.save_interval, c.augment) == (1, 1, 'none')
  assert config.resolve(config.Config(epochs=3)).save_interval == 3
  with pytest.raises(ValueError, match='both choose the training images'):
    config.validate(config.Config(train_examples=100, limit=50))
  with pytest.raises(ValueError, match='--save_interval=40 is larger than --epochs=30'):
    config.validate(config.Config(save_interval=40))
  assert presets.passes_per_epoch(False, 1000) == 1
  assert presets.passes_per_epoch(True, 1000) == 60 and presets.passes_per_epoch(True, 7000) == 9

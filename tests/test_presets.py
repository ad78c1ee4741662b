"""The presets table: every dataset has both, resolve and the docs follow it."""

import os
import re

import pytest

from gan_jax import config, datasets, presets

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The flags a preset sets; the README shows each of these it has a row for.
README_FLAGS = {'arch': None, 'mode_seeking': None, 'reconstruction': None,
                'class_loss_weight': True}  # field -> describe()'s `conditional`.


def _read(path):
  with open(os.path.join(REPO_ROOT, path), encoding='utf-8') as f:
    return f.read()


def test_every_dataset_has_a_preset_with_and_without_conditional():
  assert set(presets.PRESETS) == {(name, conditional) for name in datasets.DATASETS
                                  for conditional in (False, True)}
  for (name, conditional), preset in presets.PRESETS.items():
    assert (preset.dataset, preset.conditional) == (name, conditional)


def test_the_presets_and_their_names():
  names = {key: p.name for key, p in presets.PRESETS.items()}
  assert names == {('mnist', False): 'mnist', ('mnist', True): 'mnist-conditional',
                   ('fashion_mnist', False): 'fashion',
                   ('fashion_mnist', True): 'fashion-conditional'}
  values = {p.name: (p.arch, p.mode_seeking, p.class_loss_weight, p.reconstruction,
                     p.standing_batch) for p in presets.PRESETS.values()}
  assert values == {
      'mnist': ('mlp_bn', 0.0, 0.0, 0.0, None),
      'mnist-conditional': ('mlp_bn', 1.0, 1.0, 0.0, 500),
      'fashion': ('mlp_wide', 1.0, 0.0, 0.0, None),
      'fashion-conditional': ('mlp_wide', 0.3, 0.5, 10.0, 500)}


@pytest.mark.parametrize('alias', sorted(datasets.ALIASES))
def test_get_takes_any_name_of_the_dataset(alias):
  for conditional in (False, True):
    preset = presets.get(alias, conditional)
    assert preset.dataset == datasets.canonical_name(alias)
    assert preset.conditional is conditional


def test_every_value_is_one_its_flag_accepts_and_a_float_where_a_number():
  for preset in presets.PRESETS.values():
    for field in presets.FIELDS:
      value = getattr(preset, field)
      assert config.check(field, value) is None, (preset.name, field)
      assert field == 'arch' or type(value) is float, (preset.name, field)
    assert preset.standing_batch == (presets.CONDITIONAL_STANDING_BATCH
                                     if preset.conditional else None), preset.name
    if not preset.conditional:
      assert preset.class_loss_weight == 0.0, preset.name


def test_each_preset_says_why_and_names_a_section_of_the_quality_doc():
  headings = set(re.findall(r'(?m)^#+ (.+?)\s*$', _read('docs/quality.md')))
  for preset in presets.PRESETS.values():
    assert preset.why.strip(), preset.name
    assert preset.section in headings, (preset.name, preset.section)


@pytest.mark.parametrize('key', sorted(presets.PRESETS))
def test_resolve_fills_every_unset_field_from_the_preset(key):
  preset = presets.PRESETS[key]
  for name in (preset.dataset, *datasets.DATASETS[preset.dataset].aliases):
    resolved = config.resolve(config.Config(dataset=name, conditional=preset.conditional))
    for field in presets.FIELDS:
      assert getattr(resolved, field) == getattr(preset, field), (name, field)


@pytest.mark.parametrize('key', sorted(presets.PRESETS))
def test_explicit_flags_override_the_preset(key):
  preset = presets.PRESETS[key]
  given = {'arch': 'dcgan', 'mode_seeking': 2.5, 'class_loss_weight': 3.5,
           'reconstruction': 4.5}
  resolved = config.resolve(config.Config(dataset=preset.dataset,
                                          conditional=preset.conditional, **given))
  # An unconditional run has no class loss, whatever it is given.
  expected = dict(given, class_loss_weight=3.5 if preset.conditional else 0.0)
  assert {f: getattr(resolved, f) for f in presets.FIELDS} == expected
  # Zero is a value, not "unset".
  zeros = config.resolve(config.Config(dataset=preset.dataset, conditional=preset.conditional,
                                       mode_seeking=0.0, reconstruction=0.0))
  assert (zeros.mode_seeking, zeros.reconstruction) == (0.0, 0.0)


def test_the_flag_help_shows_each_fields_defaults_from_the_table():
  helps = {f.name: f.metadata['help'] for f in config.FIELDS}
  for field, conditional in README_FLAGS.items():
    assert f'Default per dataset: {presets.describe(field, conditional)}.' in helps[field]
  assert presets.describe('mode_seeking') == \
      'mnist 0 (--conditional 1), fashion 1 (--conditional 0.3)'
  assert presets.describe('reconstruction') == 'mnist 0, fashion 0 (--conditional 10)'
  assert presets.describe('class_loss_weight', conditional=True) == 'mnist 1, fashion 0.5'


def readme_default_cells():
  """The README flag table's default cell per flag (the first flag of a row)."""
  cells = {}
  for line in _read('README.md').splitlines():
    parts = [c.strip() for c in line.strip().strip('|').split('|')]
    if line.startswith('| `--') and len(parts) >= 3:
      names = re.findall(r'`--(\w+)`', parts[0])
      if names:
        cells[names[0]] = parts[1]
  return cells


def test_the_readme_flag_table_shows_the_presets_defaults():
  cells = readme_default_cells()
  assert {'arch', 'mode_seeking', 'reconstruction'} <= set(cells)
  for field, conditional in README_FLAGS.items():
    if field in cells:  # Backticks aside, the help's text.
      assert cells[field].replace('`', '') == presets.describe(field, conditional), (
          f'README.md: the --{field} row\'s default should read '
          f'{presets.describe(field, conditional)!r} (gan_jax/presets.py)')


@pytest.fixture
def third_dataset(monkeypatch):
  """A dataset registered (for this test only) without a preset."""
  for table in ('DATASETS', 'ALIASES'):
    monkeypatch.setattr(datasets, table, dict(getattr(datasets, table)))
  monkeypatch.setattr(presets, 'PRESETS', dict(presets.PRESETS))
  datasets.register(datasets.Dataset(
      name='kmnist', aliases=('kuzushiji', 'kmnist'), version='3.0.1',
      class_names=tuple('abcdefghij'), classifier_epochs=1))


def test_a_dataset_without_a_preset_fails_naming_the_missing_one(third_dataset):
  with pytest.raises(ValueError, match=r"no preset 'kuzushiji'.*gan_jax/presets\.py"):
    presets.get('kmnist', False)
  with pytest.raises(ValueError, match="no preset 'kuzushiji-conditional'"):
    config.resolve(config.Config(dataset='kuzushiji', conditional=True))
  with pytest.raises(ValueError, match="no preset 'kuzushiji'"):
    presets.describe('arch')  # The flag help of an import would fail the same way.


def test_a_registered_preset_is_used(third_dataset):
  presets.register(presets.Preset(
      dataset='kmnist', conditional=False, arch='mlp', mode_seeking=0.5,
      class_loss_weight=0.0, reconstruction=0.0, standing_batch=None,
      why='a test', section='Frontier'))
  assert presets.get('kuzushiji', False).name == 'kuzushiji'
  assert config.resolve(config.Config(dataset='kmnist')).arch == 'mlp'
  with pytest.raises(ValueError, match='class_loss_weight 0'):
    presets.register(presets.Preset(
        dataset='kmnist', conditional=False, arch='mlp', mode_seeking=0.0,
        class_loss_weight=1.0, reconstruction=0.0, standing_batch=None,
        why='a test', section='Frontier'))
  with pytest.raises(ValueError, match='unknown dataset'):
    presets.register(presets.Preset(
        dataset='svhn', conditional=False, arch='mlp', mode_seeking=0.0,
        class_loss_weight=0.0, reconstruction=0.0, standing_batch=None,
        why='a test', section='Frontier'))

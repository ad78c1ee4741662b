"""Tests for gan_jax.quality: Fréchet distance, IS, entropy, coverage, evaluate."""

import math

import numpy as np
import pytest

from gan_jax import quality


def _one_hot(labels, k=10):
  return np.eye(k)[np.asarray(labels)]


def test_fd_of_a_set_with_itself_is_zero():
  feats = np.random.default_rng(0).normal(size=(500, 16))
  mu, sigma = quality.feature_stats(feats)
  assert mu.shape == (16,) and sigma.shape == (16, 16)
  assert quality.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)


def test_fd_grows_with_shift():
  feats = np.random.default_rng(1).normal(size=(1000, 8))
  mu, sigma = quality.feature_stats(feats)
  fds = []
  for shift in (0.5, 1.0, 2.0):
    mu2, sigma2 = quality.feature_stats(feats + shift)
    fds.append(quality.frechet_distance(mu, sigma, mu2, sigma2))
    # Same covariance: FD is exactly the squared mean difference.
    assert fds[-1] == pytest.approx(8 * shift ** 2, rel=1e-6)
  assert fds[0] < fds[1] < fds[2]


def test_fd_closed_form_for_diagonal_covariances():
  a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])  # b is singular.
  fd = quality.frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
  expected = 3 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fd == pytest.approx(expected, rel=1e-9)


def test_fd_rejects_mismatched_shapes():
  with pytest.raises(ValueError):
    quality.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


@pytest.mark.parametrize('k', [1, 2, 5, 10])
def test_inception_score_of_even_one_hot_is_k(k):
  probs = _one_hot(np.arange(100 * k) % k)
  assert quality.inception_score(probs) == pytest.approx(k, rel=1e-6)
  assert quality.label_entropy(probs) == pytest.approx(math.log(k), abs=1e-6)
  assert quality.classes_covered(probs) == k
  assert quality.mean_confidence(probs) == pytest.approx(1.0)


def test_uniform_predictions():
  probs = np.full((50, 10), 0.1)
  assert quality.inception_score(probs) == pytest.approx(1.0)
  assert quality.label_entropy(probs) == pytest.approx(math.log(10))
  assert quality.mean_confidence(probs) == pytest.approx(0.1)


def test_classes_covered_threshold():
  labels = [0] * 50 + [1] * 30 + [2] * 19 + [3] * 1
  probs = _one_hot(labels)
  assert quality.classes_covered(probs) == 4  # Default 1%: one image of 100.
  assert quality.classes_covered(probs, min_fraction=0.02) == 3
  assert quality.classes_covered(probs, min_fraction=0.5) == 1


def test_label_entropy_known_marginal():
  probs = _one_hot([0, 0, 1, 2])  # Marginal (1/2, 1/4, 1/4).
  expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
  assert quality.label_entropy(probs) == pytest.approx(expected)


class _FakeClassifier:
  """Features = flattened pixels' first 4 values; probs from the mean pixel."""

  def features_and_probs(self, images):
    images = np.asarray(images)
    feats = images.reshape(len(images), -1)[:, :4]
    labels = (np.abs(images).mean(axis=(1, 2, 3)) * 10).astype(int) % 10
    return feats, _one_hot(labels)


def test_evaluate_keys_and_types():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, size=(200, 28, 28, 1)).astype(np.float32)
  feats, _ = _FakeClassifier().features_and_probs(images)
  mu, sigma = quality.feature_stats(feats)
  ref = quality.ReferenceStats(mu=mu, sigma=sigma, inception_score=1.0,
                               label_entropy=0.0, classes_covered=1,
                               mean_confidence=1.0, num_examples=200)
  out = quality.evaluate(_FakeClassifier(), images, ref)
  assert list(out) == ['fd', 'is', 'label_entropy', 'classes_covered', 'mean_confidence']
  assert all(type(out[k]) is float for k in ('fd', 'is', 'label_entropy', 'mean_confidence'))
  assert type(out['classes_covered']) is int
  assert out['fd'] == pytest.approx(0, abs=1e-6)


class _KnownAnswers:
  """A classifier whose answer for image i is the class written in its first pixel."""

  def features_and_probs(self, images):
    answers = np.asarray(images)[:, 0, 0, 0].astype(int)
    probs = 0.01 + 0.9 * _one_hot(answers)  # Rows sum to 1.
    return probs.copy(), probs


def test_label_agreement_is_the_share_of_images_classified_as_requested():
  requested = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  answers = np.array([0, 1, 2, 3, 4, 5, 6, 7, 1, 1])   # 8 of 10 as requested.
  images = np.zeros((10, 28, 28, 1), np.float32)
  images[:, 0, 0, 0] = answers
  feats, probs = _KnownAnswers().features_and_probs(images)
  assert quality.label_agreement(probs, requested) == pytest.approx(0.8)
  assert quality.label_agreement(probs, answers) == 1.0
  mu, sigma = quality.feature_stats(feats)
  reference = quality.ReferenceStats(mu=mu, sigma=sigma, inception_score=1.0,
                                     label_entropy=0.0, classes_covered=1,
                                     mean_confidence=1.0, num_examples=10)
  out = quality.evaluate(_KnownAnswers(), images, reference, requested_labels=requested)
  assert out['label_agreement'] == pytest.approx(0.8)
  assert 'label_agreement' not in quality.evaluate(_KnownAnswers(), images, reference)
  with pytest.raises(ValueError, match='one requested label per image'):
    quality.label_agreement(probs, requested[:5])


def _two_clusters(rng, n, dim=16, gap=50.0):
  return np.concatenate([rng.normal(size=(n // 2, dim)),
                         rng.normal(size=(n - n // 2, dim)) + gap]).astype(np.float32)


def test_precision_and_recall_of_identical_far_apart_and_half_covering_sets():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(600, 16)).astype(np.float32)
  assert quality.precision_recall(real, real) == (1.0, 1.0)
  assert quality.precision_recall(real, real + 100) == (0.0, 0.0)
  both = _two_clusters(rng, 600)
  half = both[:300] + 0.01 * rng.normal(size=(300, 16)).astype(np.float32)
  precision, recall = quality.precision_recall(both, half)
  assert precision == pytest.approx(1.0, abs=0.02)  # Every fake image is realistic...
  assert recall == pytest.approx(0.5, abs=0.03)     # ...but only half the real set is covered.


def test_nearest_neighbours_agree_with_brute_force_across_blocks():
  rng = np.random.default_rng(1)
  points = rng.normal(size=(1500, 8)).astype(np.float32)  # More than one block of queries.
  dists, idx = quality.nearest_neighbours(points, points, k=3, exclude_self=True)
  brute = np.linalg.norm(points[:, None] - points[None], axis=-1)
  np.fill_diagonal(brute, np.inf)
  np.testing.assert_array_equal(idx, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(dists, np.sort(brute, axis=1)[:, :3], rtol=1e-3, atol=1e-3)


def test_memorisation_ratio_flags_copies_of_training_images_only():
  rng = np.random.default_rng(2)
  train = rng.normal(size=(3000, 16)).astype(np.float32)
  test = rng.normal(size=(300, 16)).astype(np.float32)
  copies = train[:300] + 1e-3 * rng.normal(size=(300, 16)).astype(np.float32)
  fresh = rng.normal(size=(300, 16)).astype(np.float32)
  assert quality.memorisation_ratio(copies, test, train) < 0.05
  assert quality.memorisation_ratio(fresh, test, train) == pytest.approx(1.0, abs=0.1)


def test_per_class_fd_names_the_class_that_is_off():
  rng = np.random.default_rng(3)
  labels = np.arange(2000) % 10
  real = quality.real_features(rng.normal(size=(2000, 4)) + labels[:, None], labels)
  fake = rng.normal(size=(2000, 4)) + labels[:, None] + 5.0 * (labels == 6)[:, None]
  scores = quality.evaluate(_FixedFeatures(fake), np.zeros((2000, 28, 28)),
                            _reference(real), requested_labels=labels, real=real)
  assert scores['worst_class'] == 6 and len(scores['fd_per_class']) == 10
  assert scores['fd_per_class'][6] > 10 * max(scores['fd_per_class'][:6])
  assert 0.0 <= scores['precision'] <= 1.0 and 0.0 <= scores['recall'] <= 1.0
  # Every figure an evaluation gives is an entry of the metrics table, in its order.
  assert tuple(scores) == quality.evaluation_keys(conditional=True)
  unconditional = quality.evaluate(_FixedFeatures(fake), np.zeros((2000, 28, 28)),
                                   _reference(real), real=real)
  assert tuple(unconditional) == quality.evaluation_keys(conditional=False)


def test_a_metric_is_printed_and_plotted_from_its_table_entry():
  fd, agreement = quality.METRICS['fd'], quality.METRICS['label_agreement']
  assert fd.text(8.2761) == 'FD 8.28' and agreement.text(0.996) == 'label agreement 99.6%'
  assert fd.title == 'Fréchet distance (lower is better)'
  assert [m.key for m in quality.CURVES] == ['fd', 'is', 'label_agreement', 'precision',
                                             'recall']


class _FixedFeatures:
  """A stand-in classifier whose features are given (probabilities uniform)."""

  def __init__(self, features):
    self._features = np.asarray(features, np.float32)

  def features_and_probs(self, images):
    return self._features, np.full((len(self._features), 10), 0.1)


def _reference(real):
  return quality.ReferenceStats(mu=real.class_mu.mean(0), sigma=np.eye(4),
                                inception_score=1.0, label_entropy=0.0, classes_covered=10,
                                mean_confidence=1.0, num_examples=1)

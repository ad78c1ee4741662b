"""Sample-quality metrics computed with a domain classifier.

As in TF-GAN's MNIST example, generated images are judged by a small CNN
trained on the real data (`gan_jax.classifier`) instead of Inception-v3:
Fréchet distance (FD) between Gaussians fitted to its penultimate features of
generated and real test images; the classifier Inception Score (IS) =
exp(E_x KL(p(y|x) || p(y))), at most the number of classes; label entropy
(nats) of p(y); classes covered (predicted for at least `min_fraction` of the
samples); mean confidence, the average of max_y p(y|x); and improved
precision and recall, per-class FD and the memorisation ratio on features.

Everything here except `evaluate` is a pure function of arrays (NumPy, and
jax for the blocked pairwise distances).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator, Protocol

import jax
import jax.numpy as jnp
import numpy as np

# A class counts as covered when at least this fraction of the samples is
# predicted as it: 1% is a tenth of its fair share with 10 balanced classes, so
# only a class the generator (nearly) never produces is "missing".
DEFAULT_MIN_FRACTION = 0.01

_EPS = 1e-12  # Guards log(0) for exactly one-hot probabilities.


@dataclasses.dataclass(frozen=True)
class ReferenceStats:
  """The metrics of the real test set, and its feature statistics for FD.

  Attributes:
    mu: mean of the classifier features of the real test images, shape (D,).
    sigma: their covariance, shape (D, D).
    inception_score: classifier IS of the real test images.
    label_entropy: entropy (nats) of their predicted-label marginal.
    classes_covered: classes covered by the real test images.
    mean_confidence: mean max-probability on the real test images.
    num_examples: how many real test images the figures are computed on.
    fd_train_vs_test: FD between `fd_train_samples` real *training* images and
      the test statistics: the FD a perfect generator would get with that many
      samples (FD is biased upwards for small sample sizes). None if unknown.
    fd_train_samples: number of training images behind `fd_train_vs_test`.
  """
  mu: np.ndarray
  sigma: np.ndarray
  inception_score: float
  label_entropy: float
  classes_covered: int
  mean_confidence: float
  num_examples: int
  fd_train_vs_test: float | None = None
  fd_train_samples: int | None = None

  def summary(self) -> dict[str, Any]:
    """The scalar figures (no arrays), in the key names `evaluate` uses."""
    return {
        'is': self.inception_score,
        'label_entropy': self.label_entropy,
        'classes_covered': self.classes_covered,
        'mean_confidence': self.mean_confidence,
        'num_examples': self.num_examples,
        'fd_train_vs_test': self.fd_train_vs_test,
        'fd_train_samples': self.fd_train_samples,
    }


class FeatureModel(Protocol):
  """What `evaluate` needs from a classifier (`gan_jax.classifier.Classifier`)."""

  def features_and_probs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ...


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric positive semi-definite matrix via eigh."""
  matrix = (matrix + matrix.T) / 2  # Remove round-off asymmetry.
  eigvals, eigvecs = np.linalg.eigh(matrix)
  # Tiny negative eigenvalues are round-off of a PSD matrix: clip them.
  return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray,
                     mu2: np.ndarray, sigma2: np.ndarray) -> float:
  """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

  d = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).

  The trace term uses tr((s1 s2)^(1/2)) = tr((s1^(1/2) s2 s1^(1/2))^(1/2)): the
  inner matrix is symmetric PSD, so both square roots come from `eigh` (no
  complex parts, unlike `scipy.linalg.sqrtm` on the non-symmetric s1 s2).
  Computed in float64, from means of shape (D,) and covariances (D, D).

  Returns:
    The distance, a non-negative Python float.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f'shape mismatch: mu {mu1.shape} vs {mu2.shape}, '
                     f'sigma {sigma1.shape} vs {sigma2.shape}')
  sqrt1 = _sqrtm_psd(sigma1)
  inner = sqrt1 @ sigma2 @ sqrt1
  inner = (inner + inner.T) / 2
  trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)))
  diff = mu1 - mu2
  fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
  return float(max(fd, 0.0))  # Round-off can give -1e-12 for equal inputs.


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (float64) of features of shape (N, D), N >= 2."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f'need features of shape (N>=2, D), got {features.shape}')
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _check_probs(probs: np.ndarray) -> np.ndarray:
  probs = np.asarray(probs, np.float64)
  if probs.ndim != 2 or probs.shape[0] == 0:
    raise ValueError(f'need probabilities of shape (N>0, K), got {probs.shape}')
  return probs


def inception_score(probs: np.ndarray) -> float:
  """Classifier Inception Score exp(E_x KL(p(y|x) || p(y))).

  Args:
    probs: p(y|x), shape (N, K), rows summing to 1.

  Returns:
    A float in [1, K]: K for confident predictions spread evenly over K classes.
  """
  probs = _check_probs(probs)
  marginal = probs.mean(axis=0)
  kl = np.sum(probs * (np.log(probs + _EPS) - np.log(marginal + _EPS)), axis=1)
  return float(np.exp(kl.mean()))


def label_entropy(probs: np.ndarray) -> float:
  """Entropy in nats of the marginal label distribution p(y) = E_x p(y|x).

  Args:
    probs: p(y|x), shape (N, K).

  Returns:
    A float in [0, ln K]; ln 10 ~= 2.303 for ten equally frequent classes.
  """
  marginal = _check_probs(probs).mean(axis=0)
  return float(-np.sum(marginal * np.log(marginal + _EPS)))


def classes_covered(probs: np.ndarray,
                    min_fraction: float = DEFAULT_MIN_FRACTION) -> int:
  """Number of classes that are the argmax label of >= min_fraction of samples.

  Args:
    probs: p(y|x), shape (N, K).
    min_fraction: the share of the samples a class needs to count (default 1%:
      with 100 samples, one image; with 5000, fifty).

  Returns:
    An int in [1, K].
  """
  probs = _check_probs(probs)
  counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
  return int(np.sum(counts >= min_fraction * probs.shape[0]))


def mean_confidence(probs: np.ndarray) -> float:
  """Mean over samples of the top-class probability max_y p(y|x)."""
  return float(_check_probs(probs).max(axis=1).mean())


def label_agreement(probs: np.ndarray, requested: np.ndarray) -> float:
  """Share of images whose most probable class is the one they were generated for.

  Args:
    probs: p(y|x) of a conditional GAN's images, shape (N, K).
    requested: the label each image was generated with, shape (N,).

  Returns:
    A float in [0, 1].
  """
  probs = _check_probs(probs)
  requested = np.asarray(requested)
  if requested.shape != probs.shape[:1]:
    raise ValueError(f'need one requested label per image: {requested.shape} labels '
                     f'for {probs.shape[0]} images')
  return float(np.mean(probs.argmax(axis=1) == requested))


def evaluate(classifier: FeatureModel, images: np.ndarray,
             reference_stats: ReferenceStats,
             requested_labels: np.ndarray | None = None,
             real: RealFeatures | None = None) -> dict[str, Any]:
  """Scores generated images against the real test set: a dict with 'fd', 'is',
  'label_entropy' (nats), 'classes_covered', 'mean_confidence', and the keys
  the optional arguments add.

  Args:
    classifier: a `gan_jax.classifier.Classifier` (anything with
      `features_and_probs(images) -> (features (N, D), probs (N, K))`).
    images: generated images, shape (N, 28, 28, 1) (or (N, 28, 28)) in [-1, 1];
      N >= 2. FD is biased upwards for small N, so compare runs at equal N.
    reference_stats: the real test set's statistics (`StoredClassifier.reference`).
    requested_labels: for a conditional GAN, the label each image was
      generated with; adds 'label_agreement'.
    real: real training images' features; adds 'precision' and 'recall', and
      with `requested_labels` 'fd_per_class' (a list) and 'worst_class'.
  """
  features, probs = classifier.features_and_probs(images)
  mu, sigma = feature_stats(features)
  metrics = {
      'fd': frechet_distance(mu, sigma, reference_stats.mu, reference_stats.sigma),
      'is': inception_score(probs),
      'label_entropy': label_entropy(probs),
      'classes_covered': classes_covered(probs),
      'mean_confidence': mean_confidence(probs),
  }
  if requested_labels is not None:
    metrics['label_agreement'] = label_agreement(probs, requested_labels)
  if real is not None:
    metrics['precision'], metrics['recall'] = precision_recall(real.sample, features)
    if requested_labels is not None:
      fds = per_class_fd(features, requested_labels, real)
      metrics['fd_per_class'] = fds
      metrics['worst_class'] = int(np.nanargmax(np.array(fds, dtype=float)))
  return metrics


# Improved precision and recall (Kynkäänniemi et al. 2019): k of the k-NN balls.
PR_NEIGHBOURS = 3
# Real training images whose features precision, recall and memorisation compare with.
REAL_SAMPLE = 5000
_BLOCK = 1000  # Rows of a pairwise-distance block: 1000 x 60,000 float32 = 240 MB.

@dataclasses.dataclass(frozen=True)
class Metric:
  """One figure: its key (metrics.jsonl, report.json, TensorBoard), its label
  and format (the quality line, the summary), its direction and, if it has a
  curve over the epochs, the title and colour of its panel in quality.png."""
  key: str
  label: str
  fmt: str = '.2f'
  higher_is_better: bool | None = None  # None: not a score (e.g. a class index).
  plot: str | None = None
  color: str = 'black'
  at_each_evaluation: bool = True  # False: measured once, at the end of a run.
  conditional: bool = False  # Only a conditional run has it.

  def text(self, value: Any) -> str:
    """`label value`, e.g. 'FD 8.28' or 'label agreement 99.6%'."""
    return f'{self.label} {value:{self.fmt}}'

  @property
  def title(self) -> str:
    better = 'higher' if self.higher_is_better else 'lower'
    return f'{self.plot} ({better} is better)'


# Every figure of an evaluation and of a run's final checks, in report order.
# A new metric is one entry here plus the function that computes it.
METRICS = {m.key: m for m in (
    Metric('fd', 'FD', higher_is_better=False, plot='Fréchet distance', color='tab:red'),
    Metric('is', 'IS', higher_is_better=True, plot='Inception score', color='tab:purple'),
    Metric('label_entropy', 'label entropy', '.3f'),
    Metric('classes_covered', 'classes', 'd', higher_is_better=True),
    Metric('mean_confidence', 'confidence', higher_is_better=True),
    Metric('label_agreement', 'label agreement', '.1%', True, plot='Label agreement',
           color='tab:green', conditional=True),
    Metric('precision', 'precision', higher_is_better=True, plot='Precision: fidelity',
           color='tab:blue'),
    Metric('recall', 'recall', higher_is_better=True, plot='Recall: diversity',
           color='tab:orange'),
    Metric('fd_per_class', 'FD per class', '.1f', False, conditional=True),
    Metric('worst_class', 'worst class', 'd', conditional=True),
    Metric('memorisation_ratio', 'memorisation ratio', higher_is_better=True,
           at_each_evaluation=False),
    Metric('cas', 'CAS', '.2%', True, at_each_evaluation=False, conditional=True),
    Metric('cas_real', 'CAS of real data', '.2%', True, at_each_evaluation=False,
           conditional=True),
)}
# The figures with a curve over the epochs (quality.png, report.json's quality_curve).
CURVES = tuple(m for m in METRICS.values() if m.plot)


def evaluation_keys(conditional: bool) -> tuple[str, ...]:
  """The keys of an evaluation of a run (report.json's `final`), in order."""
  return tuple(m.key for m in METRICS.values()
               if m.at_each_evaluation and (conditional or not m.conditional))


@dataclasses.dataclass(frozen=True)
class RealFeatures:
  """Classifier features of real training images, for the figures that need a
  sample rather than a mean and covariance.

  Attributes:
    sample: features of up to `REAL_SAMPLE` real images, (n, D) (precision, recall).
    class_mu: per-class feature means (K, D) over every given image (per-class FD).
    class_sigma: per-class covariances (K, D, D).
  """
  sample: np.ndarray
  class_mu: np.ndarray
  class_sigma: np.ndarray


def real_features(features: np.ndarray, labels: np.ndarray,
                  num_classes: int = 10, sample: int = REAL_SAMPLE) -> RealFeatures:
  """`RealFeatures` from the features (N, D) and labels (N,) of real images."""
  features, labels = np.asarray(features, np.float32), np.asarray(labels)
  stats = [feature_stats(features[labels == c]) if np.sum(labels == c) > 1
           else (np.full(features.shape[1], np.nan), np.eye(features.shape[1]))
           for c in range(num_classes)]
  return RealFeatures(sample=features[:sample],
                      class_mu=np.stack([m for m, _ in stats]),
                      class_sigma=np.stack([s for _, s in stats]))


def _squared_distances(a, b):
  """|a_i - b_j|^2 for every pair, (len(a), len(b)), by one matrix product."""
  import jax.numpy as jnp
  d = jnp.sum(a * a, axis=1)[:, None] - 2 * a @ b.T + jnp.sum(b * b, axis=1)[None, :]
  return jnp.maximum(d, 0)


@functools.partial(jax.jit, static_argnames=('k', 'exclude_from'))
def _nearest_block(queries, points, k: int, exclude_from: int | None):
  d = _squared_distances(queries, points)
  if exclude_from is not None:  # Row i is point exclude_from + i: not its own neighbour.
    rows = jnp.arange(queries.shape[0])
    d = d.at[rows, exclude_from + rows].set(jnp.inf, mode='drop')
  neg, idx = jax.lax.top_k(-d, k)
  return jnp.sqrt(-neg), idx


@jax.jit
def _inside_block(points, centres, radii):
  return jnp.any(_squared_distances(points, centres) <= (radii ** 2)[None, :], axis=1)


def _blocks(x: np.ndarray) -> Iterator[tuple[int, np.ndarray, int]]:
  """(start, block padded to _BLOCK rows, real rows): one compiled shape."""
  for lo in range(0, len(x), _BLOCK):
    block = x[lo:lo + _BLOCK]
    n = len(block)
    if n < _BLOCK:
      block = np.concatenate([block, np.zeros((_BLOCK - n, x.shape[1]), x.dtype)])
    yield lo, block, n


def nearest_neighbours(queries: np.ndarray, points: np.ndarray, k: int = 1,
                       exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest `points` (Euclidean) of each query, computed in blocks (jax).

  Args:
    queries: (n, D); points: (m, D), m > k.
    k: neighbours per query.
    exclude_self: `queries` is `points`: skip each query's own row.

  Returns:
    Distances (n, k), ascending, and the neighbours' indices into `points` (n, k).
  """
  queries = np.asarray(queries, np.float32)
  points = jnp.asarray(np.asarray(points, np.float32))
  dists, idx = [], []
  for lo, block, n in _blocks(queries):
    d, i = _nearest_block(block, points, k, lo if exclude_self else None)
    dists.append(np.asarray(d)[:n])
    idx.append(np.asarray(i)[:n])
  return np.concatenate(dists), np.concatenate(idx)


def _share_in_balls(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
  """The share of `points` inside at least one ball (centre, radius)."""
  centres, radii = jnp.asarray(centres), jnp.asarray(radii)
  inside = sum(int(np.sum(np.asarray(_inside_block(block, centres, radii))[:n]))
               for _, block, n in _blocks(points))
  return inside / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_NEIGHBOURS
                     ) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets.

  Each set's manifold is the union of balls around its points reaching their
  k-th nearest neighbour. Precision: the share of `fake` inside the real
  manifold (fidelity); recall: the share of `real` inside the fake one (diversity).

  Args:
    real: (n, D) features of real images; fake: (m, D) of generated ones; n, m > k.
  """
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  if min(len(real), len(fake)) <= k:
    raise ValueError(f'need more than k={k} points per set, got {len(real)} and {len(fake)}')
  real_radii = nearest_neighbours(real, real, k, exclude_self=True)[0][:, -1]
  fake_radii = nearest_neighbours(fake, fake, k, exclude_self=True)[0][:, -1]
  return (_share_in_balls(fake, real, real_radii),
          _share_in_balls(real, fake, fake_radii))


def per_class_fd(features: np.ndarray, labels: np.ndarray, real: RealFeatures
                 ) -> list[float | None]:
  """FD of each class's generated features against that class's real ones
  (None for a class with fewer than two images)."""
  features, labels = np.asarray(features), np.asarray(labels)
  out = []
  for c in range(len(real.class_mu)):
    mine = features[labels == c]
    if len(mine) < 2 or np.isnan(real.class_mu[c]).any():
      out.append(None)
      continue
    mu, sigma = feature_stats(mine)
    out.append(frechet_distance(mu, sigma, real.class_mu[c], real.class_sigma[c]))
  return out


def memorisation_ratio(generated: np.ndarray, test: np.ndarray, train: np.ndarray
                       ) -> float | None:
  """Median distance of generated images to their nearest training image over
  that of real test images: about 1 when nothing is copied, far below 1 when
  generated images are (near) copies of training images. Features (n, D).
  None when the test images' median distance is 0 (they are training images)."""
  gen = np.median(nearest_neighbours(generated, train)[0])
  real = np.median(nearest_neighbours(test, train)[0])
  return float(gen / real) if real > 0 else None

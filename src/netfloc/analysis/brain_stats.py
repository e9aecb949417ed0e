"""The statistics of the brain comparison, as functions of arrays (:mod:`netfloc.analysis.brain` runs them).

RSA (Kriegeskorte, Mur & Bandettini 2008), with rsatoolbox (Schütt et al. 2023):

- RDM of an N × P array of responses (images × units or voxels): each unit (voxel) is first centred on its mean
  over the N images (removing the mean pattern, which otherwise dominates correlation distances: Walther et al.
  2016, Diedrichsen & Kriegeskorte 2017), then ``RDM[i, j] = 1 − r(x_i, x_j)``, Pearson r between the centred
  patterns of images i and j (:func:`netfloc.analysis.consistency.pearson_rdm`: exact; a constant pattern gets
  r = 0) — rsatoolbox's ``calc_rdm(..., method="correlation")`` of the centred array wherever that is defined.
- comparison of two RDMs: Spearman's ρ_a (rsatoolbox ``rho-a``: ρ without tie correction,
  12 Σ (a_i − ā)(b_i − b̄) / (n³ − n) over the n ranked dissimilarities; Nili et al. 2014), the ``score`` of
  ``brain.csv``; and Pearson r (``corr``), the score of ``brain_rsa_corr.csv``.
- 95% interval: percentile bootstrap over images (Efron & Tibshirani 1993): B resamples of the images with
  replacement, the RDMs subsampled with rsatoolbox's ``subsample_pattern`` (which leaves out the pairs of an image
  with its own copy), 2.5th and 97.5th percentiles of the comparison.
- noise ceiling across subjects: rsatoolbox's ``boot_noise_ceiling`` (Nili et al. 2014): lower bound = mean over
  subjects of the comparison of a subject's RDM with the pooled RDM of the other subjects, upper bound = with the
  pooled RDM of all subjects; it needs two or more subjects.

Encoding (Naselaris et al. 2011): each voxel's repeat-averaged response is predicted from the population's
responses (z-scored with the training images' mean and SD) by ridge regression, himalaya's ``RidgeCV`` choosing
α per voxel among :data:`ALPHAS` by :data:`INNER_FOLDS`-fold cross-validation on the training images; predictions
are made on held-out images (K-fold over images, seeded). ``score`` = mean over the ROI's voxels of Pearson r
between held-out predictions and responses (a constant prediction has r = 0); 95% interval by the same bootstrap
over images. Ceiling (with repeats): split-half reliability — the R repeats are split into two disjoint halves of
h = ⌊R/2⌋ repeats, r_half correlates the halves' mean responses, averaged over :data:`SPLITS` seeded splits, and
Spearman–Brown steps it up to R repeats, ρ_R = k·r / (1 + (k − 1)·r) with k = R/h (r clipped at 0); a voxel's
ceiling is √ρ_R (the largest correlation a perfect model can have with the noisy mean), averaged over the ROI.

Null: ``p_random = (1 + #{random sets scoring ≥ the population}) / (1 + P)`` (Phipson & Smyth 2010).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from himalaya.ridge import RidgeCV
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import RDMs, compare
from sklearn.model_selection import KFold

from netfloc.analysis.consistency import pearson_rdm

#: RDM comparisons: the first is the score of ``brain.csv``, the second that of ``brain_rsa_corr.csv``.
COMPARISONS = ("rho-a", "corr")
ALPHAS = np.logspace(-2, 8, 11)
INNER_FOLDS = 5
SPLITS = 20


def rdms_of(patterns: Sequence[np.ndarray]) -> RDMs:
    """rsatoolbox RDMs (correlation distance between unit-centred patterns) of N × P arrays with the same N images."""
    vectors = [pearson_rdm(pattern - pattern.mean(axis=0)) for pattern in patterns]
    return RDMs(np.stack(vectors), dissimilarity_measure="correlation")


def constant(rdms: RDMs) -> np.ndarray:
    """Which RDMs have one dissimilarity for every pair (nothing to correlate)."""
    vectors = rdms.get_vectors()
    return np.ptp(vectors, axis=1) == 0


def compare_all(a: RDMs, b: RDMs) -> dict[str, np.ndarray]:
    """Every comparison of :data:`COMPARISONS` between the RDMs of ``a`` and of ``b`` (n_a × n_b each)."""
    return {method: compare(a, b, method=method) for method in COMPARISONS}


def bootstrap_samples(n_images: int, n_samples: int, seed: int) -> np.ndarray:
    """``n_samples`` resamples (rows) of the image indices 0 … N − 1 with replacement, seeded."""
    return np.random.default_rng([seed, 5]).integers(0, n_images, size=(n_samples, n_images))


def bootstrap_compare(a: RDMs, b: RDMs, samples: np.ndarray) -> dict[str, np.ndarray]:
    """B × n_a × n_b comparisons of the RDMs subsampled to each bootstrap resample of the images."""
    draws: dict[str, list[np.ndarray]] = {method: [] for method in COMPARISONS}
    for sample in samples:
        for method, values in compare_all(
            a.subsample_pattern("index", sample), b.subsample_pattern("index", sample)
        ).items():
            draws[method].append(values)
    return {method: np.stack(values) for method, values in draws.items()}


def interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles over the first axis, of the finite draws (NaN where none is finite)."""
    low, high = np.full(draws.shape[1:], np.nan), np.full(draws.shape[1:], np.nan)
    flat = draws.reshape(draws.shape[0], -1)
    for index in range(flat.shape[1]):
        finite = flat[np.isfinite(flat[:, index]), index]
        if len(finite):
            low.flat[index], high.flat[index] = np.percentile(finite, [2.5, 97.5])
    return low, high


def rsa_ceiling(subject_rdms: RDMs, method: str) -> tuple[float, float]:
    """(lower, upper) noise ceiling of the subjects' RDMs of one ROI (NaN with fewer than two subjects)."""
    if subject_rdms.n_rdm < 2:
        return np.nan, np.nan
    low, high = boot_noise_ceiling(subject_rdms, method=method)
    return float(low), float(high)


def cv_predictions(features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Held-out ridge predictions (N × V) of ``targets`` from ``features`` (N × P), K-fold over images."""
    predictions = np.zeros_like(targets)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(features):
        mean, sd = features[train].mean(axis=0), features[train].std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        ridge = RidgeCV(alphas=ALPHAS, fit_intercept=True, cv=INNER_FOLDS, solver_params={"warn": False})
        ridge.fit((features[train] - mean) / sd, targets[train])
        predictions[test] = np.asarray(ridge.predict((features[test] - mean) / sd))
    return predictions


def correlations(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Pearson r between the columns of ``a`` and ``b`` (N × V) over images weighted by each row of ``weights``
    (W × N; a bootstrap resample is the count of each image): W × V, or V without weights; 0 where a column is
    constant."""
    single = weights is None
    weights = np.ones((1, a.shape[0])) if weights is None else weights
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    n = weights.sum(axis=1, keepdims=True)
    sum_a, sum_b = weights @ a, weights @ b
    covariance = weights @ (a * b) - sum_a * sum_b / n
    spread = np.sqrt(
        np.clip(weights @ (a * a) - sum_a**2 / n, 0, None) * np.clip(weights @ (b * b) - sum_b**2 / n, 0, None)
    )
    r = np.divide(covariance, spread, out=np.zeros_like(covariance), where=spread > 0)
    return np.clip(r[0] if single else r, -1.0, 1.0)


def resample_weights(samples: np.ndarray) -> np.ndarray:
    """Bootstrap resamples (B × N indices) as counts per image (B × N)."""
    n = samples.shape[1]
    return np.stack([np.bincount(sample, minlength=n) for sample in samples]).astype(np.float64)


def split_half_ceiling(responses: np.ndarray, seed: int) -> np.ndarray | None:
    """Per-voxel encoding ceiling √ρ_R from R × N × V repeated responses (module docstring); None when R < 2."""
    repeats = responses.shape[0]
    if repeats < 2:
        return None
    half = repeats // 2
    rng = np.random.default_rng([seed, 6])
    r = np.zeros(responses.shape[2])
    for _ in range(SPLITS):
        order = rng.permutation(repeats)
        r += correlations(responses[order[:half]].mean(axis=0), responses[order[half : 2 * half]].mean(axis=0))
    r = np.clip(r / SPLITS, 0.0, None)
    k = repeats / half
    return np.sqrt(k * r / (1 + (k - 1) * r))


def p_random(observed: float, random: np.ndarray) -> float:
    """``(1 + #{finite random scores ≥ observed}) / (1 + #finite random scores)``."""
    random = random[np.isfinite(random)]
    return float((1 + np.sum(random >= observed)) / (1 + len(random)))

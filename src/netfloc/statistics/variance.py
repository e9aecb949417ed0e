"""Per-group variances and pooled moments, with float32 rounding noise counted as zero.

Degenerate units. Layer outputs are float32, resolved to ε = 2⁻²³·|x| (``np.finfo(np.float32).eps``). The
same constant unit computed in batches of different composition differs by a few ulps (other GEMM blockings),
so a standard deviation below ``ZERO_VARIANCE_ULPS``·ε·scale (32 ulps, i.e. sd/scale < 3.8e-6, where the
unit's scale is the largest |mean| over its groups: the magnitude its float32 values and their sums are
resolved at) is rounding noise and counts as zero: below that, float32 holds fewer than five significant bits
of the variation. Where
the standard error of a comparison is zero (e.g. a dead ReLU unit, constant for every image) the test is undefined: it
is reported as t = 0, p = 1, so the unit is never selective, stays in the FDR family and yields no NaN.
"""

from __future__ import annotations

import numpy as np

ZERO_VARIANCE_ULPS = 32
ZERO_VARIANCE_RTOL = ZERO_VARIANCE_ULPS * float(np.finfo(np.float32).eps)


def unit_scale(mean: np.ndarray) -> np.ndarray:
    """Each unit's scale: the largest |mean| over its groups (module docstring)."""
    return np.maximum(mean.max(axis=0), -mean.min(axis=0))


def sample_variance(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Unbiased variance m2 / (n − 1), with float32 rounding noise (sd ≤ 32·ε_float32·scale; ``scale`` defaults
    to :func:`unit_scale` of ``mean``) set to exactly 0."""
    n = np.asarray(count, dtype=np.float64).reshape(-1, *([1] * (np.ndim(m2) - 1)))
    variance = m2 / np.maximum(n - 1, 1)
    variance *= n > 1
    scale = unit_scale(mean) if scale is None else scale
    np.putmask(variance, variance <= (ZERO_VARIANCE_RTOL * scale) ** 2, 0.0)
    return variance


def rest_moments(
    count: np.ndarray, mean: np.ndarray, m2: np.ndarray, k: int, scale: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """(n, mean, variance) of all images not in group k, pooled exactly; the variance's rounding tolerance uses
    the scale of every group (``scale``: :func:`unit_scale` of ``mean``, computed when not given)."""
    n_rest, rest_mean, rest_m2 = pooled_moments(count, mean, m2, _others(len(count), k))
    scale = unit_scale(mean) if scale is None else scale
    return n_rest, rest_mean, sample_variance(np.array([n_rest]), rest_mean[None], rest_m2[None], scale)[0]


def pooled_moments(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, groups: list[int]):
    """Exact (n, mean, m2) of the union of ``groups`` (rows of the arrays); see :func:`pool`."""
    return pool([count[g] for g in groups], [mean[g] for g in groups], [m2[g] for g in groups])


def pool(counts: list, means: list[np.ndarray], m2s: list[np.ndarray]):
    """Exact (n, mean, m2) of the union of disjoint groups given as parallel lists (counts of shape S, means and
    m2 of shape S×U; S = () for single groups), Chan et al.'s (1979) merge:
    n = Σ n_g, mean = Σ n_g·mean_g / n, m2 = Σ m2_g + Σ n_g·(mean_g − mean)²."""
    weights = [np.asarray(n, dtype=np.float64)[..., None] for n in counts]
    total = sum(weights)
    pooled_mean, pooled_m2, spread, term = (np.zeros(means[0].shape) for _ in range(4))
    for weight, mean in zip(weights, means, strict=True):
        pooled_mean += np.multiply(mean, weight, out=term)
    pooled_mean /= total
    for weight, mean, m2 in zip(weights, means, m2s, strict=True):
        pooled_m2 += m2
        np.subtract(mean, pooled_mean, out=term)
        np.square(term, out=term)
        spread += np.multiply(term, weight, out=term)
    pooled_m2 += spread
    return total[..., 0], pooled_mean, pooled_m2


def _others(k: int, category: int) -> list[int]:
    return [j for j in range(k) if j != category]

"""Statistics from accumulated moments: t-tests, one-way ANOVA, FDR, selectivity rules, CSI and d′.

All functions are pure and work on float64 numpy arrays of per-group moments: ``count`` (K,), ``mean``
(K, U) and ``m2`` (K, U) (sum of squared deviations), as held by
:class:`~netfloc.moments.accumulator.MomentAccumulator`. With sample variances s²_g = m2_g / (n_g − 1):

- Welch:   t = (m_a − m_b) / sqrt(s²_a/n_a + s²_b/n_b),
           ν = (s²_a/n_a + s²_b/n_b)² / ((s²_a/n_a)²/(n_a − 1) + (s²_b/n_b)²/(n_b − 1))   (Welch 1947)
- Student: s²_p = ((n_a − 1)s²_a + (n_b − 1)s²_b) / (n_a + n_b − 2),
           t = (m_a − m_b) / (s_p·sqrt(1/n_a + 1/n_b)),   ν = n_a + n_b − 2
- two-sided p = 2·T_ν(−|t|), with T_ν the Student t CDF (``scipy.special.stdtr``).
- ANOVA:   F = [Σ_g n_g (m_g − m)² / (K − 1)] / [Σ_g m2_g / (N − K)],  p = 1 − F_{K−1,N−K}(F).
- FDR over the units of a layer, per comparison: Benjamini–Yekutieli (2001, default) or
  Benjamini–Hochberg (1995), via ``scipy.stats.false_discovery_control``.

Speed. The comparisons of a layer run on every core (threads: numpy, ``stdtr`` and the sorts release the GIL).
Where only the verdict is needed (null permutations, cross-validation folds), :func:`selective_mask` decides
q < α without the full FDR: q_(i) = min_{j≥i} p_(j)·m·c/j < α needs p_(i) ≤ α/c (c = Σ_{j≤m} 1/j for BY, 1
for BH), and p ≥ 2Φ(−|t|) for every ν (Student tails are heavier than the normal's), so only units with
|t| ≥ Φ⁻¹(1 − α/2c) get a p-value and are ranked — the same verdicts as the full computation (a test checks).

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

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special, stats

TestName = Literal["welch", "student"]
FdrName = Literal["by", "bh"]
RuleName = Literal["each", "pooled", "top"]

ZERO_VARIANCE_ULPS = 32
ZERO_VARIANCE_RTOL = ZERO_VARIANCE_ULPS * float(np.finfo(np.float32).eps)


def parallel_map(function: Callable, items: Iterable) -> list:
    """``[function(item) for item in items]`` on every core (threads)."""
    items = list(items)
    if len(items) < 2 or (os.cpu_count() or 1) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


def unit_scale(mean: np.ndarray) -> np.ndarray:
    """Each unit's scale: the largest |mean| over its groups (module docstring)."""
    return np.abs(mean).max(axis=0)


def sample_variance(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Unbiased variance m2 / (n − 1), with float32 rounding noise (sd ≤ 32·ε_float32·scale; ``scale`` defaults
    to :func:`unit_scale` of ``mean``) set to exactly 0."""
    n = np.asarray(count, dtype=np.float64).reshape(-1, *([1] * (np.ndim(m2) - 1)))
    variance = np.where(n > 1, m2 / np.maximum(n - 1, 1), 0.0)
    scale = unit_scale(mean) if scale is None else scale
    return np.where(variance <= (ZERO_VARIANCE_RTOL * scale) ** 2, 0.0, variance)


def rest_moments(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, k: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(n, mean, variance) of all images not in group k, pooled exactly; the variance's rounding tolerance uses
    the scale of every group."""
    n_rest, rest_mean, rest_m2 = pooled_moments(count, mean, m2, _others(len(count), k))
    return n_rest, rest_mean, sample_variance(np.array([n_rest]), rest_mean[None], rest_m2[None], unit_scale(mean))[0]


def welch_t(n_a, mean_a, var_a, n_b, mean_b, var_b) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t and its Welch–Satterthwaite degrees of freedom (module docstring). Zero error -> t = 0."""
    a, b = var_a / n_a, var_b / n_b
    se2 = a + b
    defined = se2 > 0
    safe = np.where(defined, se2, 1.0)
    t = np.where(defined, (mean_a - mean_b) / np.sqrt(safe), 0.0)
    denominator = a**2 / (n_a - 1) + b**2 / (n_b - 1)
    df = np.where(defined, safe**2 / np.where(denominator > 0, denominator, 1.0), 1.0)
    return t, df


def student_t(n_a, mean_a, var_a, n_b, mean_b, var_b) -> tuple[np.ndarray, np.ndarray]:
    """Student's equal-variance t and ν = n_a + n_b − 2 (module docstring). Zero error -> t = 0."""
    df = n_a + n_b - 2.0
    pooled = ((n_a - 1) * var_a + (n_b - 1) * var_b) / df
    se2 = pooled * (1.0 / n_a + 1.0 / n_b)
    defined = se2 > 0
    t = np.where(defined, (mean_a - mean_b) / np.sqrt(np.where(defined, se2, 1.0)), 0.0)
    return t, np.broadcast_to(df, np.shape(t)).astype(np.float64)


def two_sided_p(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """p = 2·T_ν(−|t|); t = 0 gives p = 1."""
    return np.minimum(2.0 * special.stdtr(df, -np.abs(t)), 1.0)


TESTS = {"welch": welch_t, "student": student_t}


def t_test(n_a, mean_a, var_a, n_b, mean_b, var_b, test: TestName = "welch"):
    """(t, df, two-sided p) of group a against group b."""
    t, df = TESTS[test](n_a, mean_a, var_a, n_b, mean_b, var_b)
    return t, df, two_sided_p(t, df)


def anova_oneway(count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-way ANOVA F and p across the K groups, per unit (module docstring). No within-group variance
    -> F = 0, p = 1."""
    n = count.reshape(-1, 1).astype(np.float64)
    total = n.sum()
    grand = (n * mean).sum(axis=0) / total
    between = (n * (mean - grand) ** 2).sum(axis=0) / (len(count) - 1)
    within_ss = np.where(sample_variance(count, mean, m2) > 0, m2, 0.0).sum(axis=0)
    defined = within_ss > 0
    f = np.where(defined, between / np.where(defined, within_ss / (total - len(count)), 1.0), 0.0)
    p = np.where(defined, special.fdtrc(len(count) - 1, total - len(count), f), 1.0)
    return f, p


def fdr(p: np.ndarray, method: FdrName = "by") -> np.ndarray:
    """FDR-adjusted p-values (q) over a family of tests (scipy.stats.false_discovery_control)."""
    return stats.false_discovery_control(p, method=method)


def pooled_moments(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, groups: list[int]):
    """Exact (n, mean, m2) of the union of ``groups`` (Chan et al. 1979 merge of group moments)."""
    n = count[groups].astype(np.float64)
    total = n.sum()
    pooled_mean = (n[:, None] * mean[groups]).sum(axis=0) / total
    pooled_m2 = m2[groups].sum(axis=0) + (n[:, None] * (mean[groups] - pooled_mean) ** 2).sum(axis=0)
    return total, pooled_mean, pooled_m2


def csi(mean: np.ndarray) -> np.ndarray:
    """Category Selectivity Index per category and unit (K, U):
    CSI_k = (m_k − m_rest) / (|m_k| + |m_rest|), m_rest = mean of the other categories' means.
    A zero denominator gives 0."""
    k = mean.shape[0]
    rest = (mean.sum(axis=0, keepdims=True) - mean) / (k - 1)
    denominator = np.abs(mean) + np.abs(rest)
    return np.where(denominator > 0, (mean - rest) / np.where(denominator > 0, denominator, 1.0), 0.0)


def dprime(count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """d′ per category and unit (K, U): d′_k = (m_k − m_rest) / sqrt((s²_k + s²_rest)/2), with m_rest the
    mean of the other categories' means and s²_rest the sample variance of all other-category images.
    A zero denominator gives 0."""
    k = mean.shape[0]
    rest_mean = (mean.sum(axis=0, keepdims=True) - mean) / (k - 1)
    variance = sample_variance(count, mean, m2)
    out = np.empty_like(mean)
    for category in range(k):
        rest_var = rest_moments(count, mean, m2, category)[2]
        scale = np.sqrt((variance[category] + rest_var) / 2.0)
        difference = mean[category] - rest_mean[category]
        out[category] = np.where(scale > 0, difference / np.where(scale > 0, scale, 1.0), 0.0)
    return out


def _others(k: int, category: int) -> list[int]:
    return [j for j in range(k) if j != category]


@dataclass(frozen=True)
class SelectivitySettings:
    """How units are called selective (see :func:`selectivity`)."""

    test: TestName = "welch"
    fdr: FdrName = "by"
    alpha: float = 0.05
    rule: RuleName = "each"
    top_percent: float = 1.0

    def __post_init__(self) -> None:
        if self.test not in ("welch", "student"):
            raise ValueError(f"test must be welch or student, not {self.test!r}")
        if self.fdr not in ("by", "bh"):
            raise ValueError(f"fdr must be by or bh, not {self.fdr!r}")
        if self.rule not in ("each", "pooled", "top"):
            raise ValueError(f"rule must be each, pooled or top, not {self.rule!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), not {self.alpha}")
        if not 0 < self.top_percent <= 100:
            raise ValueError(f"top_percent must lie in (0, 100], not {self.top_percent}")


@dataclass
class Selectivity:
    """Per-category, per-unit results of one layer (arrays K×U unless noted).

    ``t_min``: the binding t (smallest t_kj over j for rule ``each``; the pooled t otherwise);
    ``q_max``: the matching largest q; ``selective``: the rule's verdict; ``preferred`` (U,): the category
    with the largest mean, −1 where all category means are equal; ``anova_f``/``anova_p`` (U,).
    """

    t_min: np.ndarray
    q_max: np.ndarray
    selective: np.ndarray
    csi: np.ndarray
    dprime: np.ndarray
    preferred: np.ndarray
    anova_f: np.ndarray
    anova_p: np.ndarray


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(k) for b in range(a + 1, k)]


def pairwise_t(count, mean, variance, pair: tuple[int, int], test: TestName) -> tuple[np.ndarray, np.ndarray]:
    """(t, ν) of category a against category b."""
    a, b = pair
    return TESTS[test](count[a], mean[a], variance[a], count[b], mean[b], variance[b])


def pairwise_extremes(count, mean, m2, settings: SelectivitySettings) -> tuple[np.ndarray, np.ndarray]:
    """For each k: min over j≠k of t_kj and max over j≠k of q_kj, with q from FDR over units per pair.

    Each unordered pair is tested once (t_jk = −t_kj and q_jk = q_kj), the pairs on every core.
    """
    k, units = mean.shape
    variance = sample_variance(count, mean, m2)

    def test(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        t, df = pairwise_t(count, mean, variance, pair, settings.test)
        return t, fdr(two_sided_p(t, df), settings.fdr)

    t_min = np.full((k, units), np.inf)
    q_max = np.zeros((k, units))
    for (a, b), (t, q) in zip(_pairs(k), parallel_map(test, _pairs(k)), strict=True):
        np.minimum(t_min[a], t, out=t_min[a])
        np.minimum(t_min[b], -t, out=t_min[b])
        np.maximum(q_max[a], q, out=q_max[a])
        np.maximum(q_max[b], q, out=q_max[b])
    return t_min, q_max


def pooled_t(count, mean, m2, variance, k: int, test: TestName) -> tuple[np.ndarray, np.ndarray]:
    """(t, ν) of category k against all other categories' images pooled into one group."""
    n_rest, rest_mean, rest_var = rest_moments(count, mean, m2, k)
    return TESTS[test](count[k], mean[k], variance[k], n_rest, rest_mean, rest_var)


def pooled_comparison(count, mean, m2, settings: SelectivitySettings) -> tuple[np.ndarray, np.ndarray]:
    """For each k: t and q of k against all other categories' images pooled into one group (on every core)."""
    variance = sample_variance(count, mean, m2)

    def test(k: int) -> tuple[np.ndarray, np.ndarray]:
        t, df = pooled_t(count, mean, m2, variance, k, settings.test)
        return t, fdr(two_sided_p(t, df), settings.fdr)

    results = parallel_map(test, range(mean.shape[0]))
    return np.stack([t for t, _ in results]), np.stack([q for _, q in results])


def fdr_reject(t: np.ndarray, df: np.ndarray, alpha: float, method: FdrName = "by") -> np.ndarray:
    """``fdr(two_sided_p(t, df), method) < alpha`` without p-values for most units (module docstring)."""
    m = t.size
    c = float(np.sum(1 / np.arange(1, m + 1, dtype=np.float64))) if method == "by" else 1.0
    z = special.ndtri(1.0 - alpha / (2.0 * c)) * (1.0 - 1e-9)
    candidates = np.flatnonzero(np.abs(t) >= z)
    p = two_sided_p(t[candidates], df[candidates])
    order = np.argsort(p)
    q = p[order] * (m / np.arange(1, len(p) + 1, dtype=np.float64))
    if method == "by":
        q *= c
    np.minimum.accumulate(q[::-1], out=q[::-1])
    rejected = np.zeros(m, dtype=bool)
    rejected[candidates[order]] = q < alpha
    return rejected


def selective_mask(count, mean, m2, settings: SelectivitySettings) -> np.ndarray:
    """The K×U verdict of :func:`selectivity` alone (null permutations, folds): no q-values, CSI or d′."""
    count = np.asarray(count, dtype=np.float64)
    k = mean.shape[0]
    variance = sample_variance(count, mean, m2)
    if settings.rule == "each":

        def test(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
            t, df = pairwise_t(count, mean, variance, pair, settings.test)
            return t, fdr_reject(t, df, settings.alpha, settings.fdr)

        mask = np.ones(mean.shape, dtype=bool)
        for (a, b), (t, rejected) in zip(_pairs(k), parallel_map(test, _pairs(k)), strict=True):
            mask[a] &= (t > 0) & rejected
            mask[b] &= (t < 0) & rejected
        return mask
    tests = parallel_map(lambda j: pooled_t(count, mean, m2, variance, j, settings.test), range(k))
    if settings.rule == "top":
        return top_units(np.stack([t for t, _ in tests]), settings.top_percent)
    return np.stack([(t > 0) & fdr_reject(t, df, settings.alpha, settings.fdr) for t, df in tests])


def top_units(t: np.ndarray, percent: float) -> np.ndarray:
    """Boolean mask of the top ``percent`` % of units by t (ceil(percent/100·U) of them), among units
    with t > 0 (Alkhamissi et al. 2024 use the top 1% by a pooled t)."""
    mask = np.zeros(t.shape, dtype=bool)
    n_top = math.ceil(percent * t.shape[-1] / 100.0 - 1e-9)
    for category in range(t.shape[0]):
        order = np.argsort(-t[category], kind="stable")[:n_top]
        mask[category, order] = t[category, order] > 0
    return mask


def preferred_category(mean: np.ndarray) -> np.ndarray:
    """argmax_k m_k per unit; −1 where every category mean is the same."""
    preferred = np.argmax(mean, axis=0)
    return np.where(np.ptp(mean, axis=0) > 0, preferred, -1)


def selectivity(
    count: np.ndarray, mean: np.ndarray, m2: np.ndarray, settings: SelectivitySettings | None = None
) -> Selectivity:
    """Call units selective with the chosen rule.

    - ``each`` (default; Prince, Alvarez & Konkle 2024): u is k-selective iff for every j ≠ k,
      t_kj(u) > 0 and q_kj(u) < alpha, i.e. ``t_min > 0 and q_max < alpha``.
    - ``pooled``: k against the pooled other categories, t > 0 and q < alpha.
    - ``top``: the top ``top_percent`` % of units by the pooled t (t > 0), no significance threshold.
    """
    settings = settings or SelectivitySettings()
    count = np.asarray(count, dtype=np.float64)
    if settings.rule == "each":
        t_min, q_max = pairwise_extremes(count, mean, m2, settings)
        selective = (t_min > 0) & (q_max < settings.alpha)
    else:
        t_min, q_max = pooled_comparison(count, mean, m2, settings)
        if settings.rule == "pooled":
            selective = (t_min > 0) & (q_max < settings.alpha)
        else:
            selective = top_units(t_min, settings.top_percent)
    anova_f, anova_p = anova_oneway(count, mean, m2)
    return Selectivity(
        t_min=t_min,
        q_max=q_max,
        selective=selective,
        csi=csi(mean),
        dprime=dprime(count, mean, m2),
        preferred=preferred_category(mean),
        anova_f=anova_f,
        anova_p=anova_p,
    )

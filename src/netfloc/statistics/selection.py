"""Selectivity rules on a layer's category moments: each-pair (default), pooled and top-percent; CSI and d′.

A unit is k-selective under rule ``each`` (Prince, Alvarez & Konkle 2024) when t_kj > 0 and q_kj < α for every
other category j; under ``pooled`` when k beats all other categories' images pooled into one group; under
``top`` when it is among the top percent of units by the pooled t (Alkhamissi et al. 2024). Tests and FDR:
:mod:`netfloc.statistics.inference`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from netfloc.parallel import parallel_map
from netfloc.statistics.inference import (
    TESTS,
    FdrName,
    GroupTerms,
    TestName,
    anova_oneway,
    fdr_q,
    fdr_reject,
)
from netfloc.statistics.variance import rest_moments, sample_variance, unit_scale

RuleName = Literal["each", "pooled", "top"]


def csi(mean: np.ndarray) -> np.ndarray:
    """Category Selectivity Index per category and unit (K, U):
    CSI_k = (m_k − m_rest) / (|m_k| + |m_rest|), m_rest = mean of the other categories' means.
    A zero denominator gives 0."""
    k = mean.shape[0]
    rest = (mean.sum(axis=0, keepdims=True) - mean) / (k - 1)
    denominator = np.abs(mean) + np.abs(rest)
    return np.where(denominator > 0, (mean - rest) / np.where(denominator > 0, denominator, 1.0), 0.0)


def dprime(
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    variance: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """d′ per category and unit (K, U): d′_k = (m_k − m_rest) / sqrt((s²_k + s²_rest)/2), with m_rest the
    mean of the other categories' means and s²_rest the sample variance of all other-category images.
    A zero denominator gives 0. ``variance``, ``scale``: :func:`sample_variance` and :func:`unit_scale` of the
    moments, if already computed."""
    k = mean.shape[0]
    rest_mean = (mean.sum(axis=0, keepdims=True) - mean) / (k - 1)
    unit = unit_scale(mean) if scale is None else scale
    variance = sample_variance(count, mean, m2, unit) if variance is None else variance
    found = np.zeros(mean.shape)
    for category in range(k):
        rest_var = rest_moments(count, mean, m2, category, unit)[2]
        spread = np.sqrt((variance[category] + rest_var) / 2.0)
        np.divide(mean[category] - rest_mean[category], spread, out=found[category], where=spread > 0)
    return found


#: Most units per chunk of :func:`descriptives`: its K×chunk float64 temporaries stay in the cores' caches.
CHUNK_UNITS = 16384


def unit_chunks(units: int) -> list[slice]:
    """Slices covering ``range(units)``: :data:`CHUNK_UNITS` units each, or fewer (at least 1024) when that
    leaves a core without a chunk."""
    step = min(CHUNK_UNITS, max(1024, -(-units // (os.cpu_count() or 1))))
    return [slice(start, start + step) for start in range(0, units, step)]


def descriptives(
    count: np.ndarray, mean: np.ndarray, m2: np.ndarray, variance: np.ndarray, scale: np.ndarray
) -> dict[str, np.ndarray]:
    """``csi``, ``dprime`` (K×U), ``preferred``, ``anova_f`` and ``anova_p`` (U,) of every unit, as
    :func:`csi`, :func:`dprime`, :func:`preferred_category` and :func:`anova_oneway` give them: each is per
    unit, so they are computed in chunks of units (:func:`unit_chunks`), the chunks on every core, and the
    temporaries are K×chunk arrays (memory holds little more than the results). ``variance``, ``scale``:
    :func:`sample_variance` and :func:`unit_scale` of the moments."""
    k, units = mean.shape
    found = {
        "csi": np.empty((k, units)),
        "dprime": np.empty((k, units)),
        "preferred": np.empty(units, dtype=np.intp),
        "anova_f": np.empty(units),
        "anova_p": np.empty(units),
    }

    def fill(chunk: slice) -> None:
        part_mean, part_m2, part_variance = mean[:, chunk], m2[:, chunk], variance[:, chunk]
        found["csi"][:, chunk] = csi(part_mean)
        found["dprime"][:, chunk] = dprime(count, part_mean, part_m2, part_variance, scale[chunk])
        found["preferred"][chunk] = preferred_category(part_mean)
        found["anova_f"][chunk], found["anova_p"][chunk] = anova_oneway(count, part_mean, part_m2, part_variance)

    parallel_map(fill, unit_chunks(units))
    return found


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


def pairwise_extremes(
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    settings: SelectivitySettings,
    variance: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each k: min over j≠k of t_kj and max over j≠k of q_kj, with q from FDR over units per pair.

    Each unordered pair is tested once (t_jk = −t_kj and q_jk = q_kj), the pairs on every core, then merged in
    chunks of units on every core. ``variance``: :func:`sample_variance` of the moments, if already computed.
    """
    k, units = mean.shape
    terms = GroupTerms(count, mean, m2, settings.test, variance)

    def test(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        t = terms.t(*pair)
        return t, fdr_q(t, partial(terms.df, *pair), settings.fdr)

    tested = list(zip(_pairs(k), parallel_map(test, _pairs(k)), strict=True))
    t_min, q_max = np.empty((k, units)), np.empty((k, units))

    def merge(chunk: slice) -> None:
        part_t, part_q = t_min[:, chunk], q_max[:, chunk]
        part_t.fill(np.inf)
        part_q.fill(0.0)
        for (a, b), (t, q) in tested:
            np.minimum(part_t[a], t[chunk], out=part_t[a])
            np.minimum(part_t[b], np.negative(t[chunk]), out=part_t[b])
            np.maximum(part_q[a], q[chunk], out=part_q[a])
            np.maximum(part_q[b], q[chunk], out=part_q[b])

    parallel_map(merge, unit_chunks(units))
    return t_min, q_max


def pooled_t(
    count, mean, m2, variance, k: int, test: TestName, scale: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(t, ν) of category k against all other categories' images pooled into one group."""
    n_rest, rest_mean, rest_var = rest_moments(count, mean, m2, k, scale)
    return TESTS[test](count[k], mean[k], variance[k], n_rest, rest_mean, rest_var)


def pooled_tests(
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    test: TestName,
    variance: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(t, ν) of every category against the pooled others (on every core); ``variance``, ``scale`` as in
    :func:`dprime`."""
    scale = unit_scale(mean) if scale is None else scale
    variance = sample_variance(count, mean, m2, scale) if variance is None else variance
    return parallel_map(lambda k: pooled_t(count, mean, m2, variance, k, test, scale), range(mean.shape[0]))


def pooled_comparison(
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    settings: SelectivitySettings,
    variance: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each k: t and q of k against all other categories' images pooled into one group (``variance``,
    ``scale`` as in :func:`dprime`)."""
    tests = pooled_tests(count, mean, m2, settings.test, variance, scale)
    q = parallel_map(lambda found: fdr_q(found[0], found[1], settings.fdr), tests)
    return np.stack([t for t, _ in tests]), np.stack(q)


def selective_mask(count, mean, m2, settings: SelectivitySettings) -> np.ndarray:
    """The K×U verdict of :func:`selectivity` alone (null permutations, folds): no q-values, CSI or d′."""
    count = np.asarray(count, dtype=np.float64)
    k = mean.shape[0]
    if settings.rule == "each":
        terms = GroupTerms(count, mean, m2, settings.test)

        def test(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
            t = terms.t(*pair)
            return t, fdr_reject(t, partial(terms.df, *pair), settings.alpha, settings.fdr)

        mask = np.ones(mean.shape, dtype=bool)
        for (a, b), (t, rejected) in zip(_pairs(k), parallel_map(test, _pairs(k)), strict=True):
            mask[a] &= (t > 0) & rejected
            mask[b] &= (t < 0) & rejected
        return mask
    tests = pooled_tests(count, mean, m2, settings.test)
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
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    settings: SelectivitySettings | None = None,
    variance: np.ndarray | None = None,
) -> Selectivity:
    """Call units selective with the chosen rule.

    - ``each`` (default; Prince, Alvarez & Konkle 2024): u is k-selective iff for every j ≠ k,
      t_kj(u) > 0 and q_kj(u) < alpha, i.e. ``t_min > 0 and q_max < alpha``.
    - ``pooled``: k against the pooled other categories, t > 0 and q < alpha.
    - ``top``: the top ``top_percent`` % of units by the pooled t (t > 0), no significance threshold.

    ``variance``: :func:`sample_variance` of the moments, if the caller already computed it (computed once here
    otherwise, and shared by every test).
    """
    settings = settings or SelectivitySettings()
    count = np.asarray(count, dtype=np.float64)
    scale = unit_scale(mean)
    variance = sample_variance(count, mean, m2, scale) if variance is None else variance
    if settings.rule == "each":
        t_min, q_max = pairwise_extremes(count, mean, m2, settings, variance)
        selective = (t_min > 0) & (q_max < settings.alpha)
    else:
        t_min, q_max = pooled_comparison(count, mean, m2, settings, variance, scale)
        if settings.rule == "pooled":
            selective = (t_min > 0) & (q_max < settings.alpha)
        else:
            selective = top_units(t_min, settings.top_percent)
    return Selectivity(t_min=t_min, q_max=q_max, selective=selective, **descriptives(count, mean, m2, variance, scale))

"""Tests per unit from group moments: Welch's and Student's t, one-way ANOVA, and FDR over a layer's units.

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
  Benjamini–Hochberg (1995), as ``scipy.stats.false_discovery_control`` computes it (:func:`fdr_q`).

Speed. The comparisons of a layer run on every core (threads: numpy, ``stdtr`` and the sorts release the GIL),
and each comparison computes only what its result needs. t needs per-group terms shared by every pair
(:class:`GroupTerms`); ν and p are computed only for units whose q can be below ε (ε = 1 for q-values, α
where only the verdict is needed: null permutations, cross-validation folds). With c = Σ_{j≤m} 1/j (BY) or 1
(BH), q_(i) = min(1, min_{j≥i} p_(j)·m·c/j) < ε exactly for the ranks i ≤ J = max{j : p_(j)·m·c/j < ε}.
Every p is at least p_lo = 2Φ(−|t|) (Student tails are heavier than the normal's), a decreasing function of
|t|; let τ_(1) ≥ τ_(2) ≥ … be the |t| and J_lo = max{j : 2Φ(−τ_(j))·m·c/j < ε}. A unit u of rank ≤ J has
|t_u| ≥ τ_(J_lo): the units with |t| ≥ |t_u| and the J units of rank ≤ J all have p_lo ≤ p_(J), so their
number N ≥ J satisfies the condition of J_lo (p_lo,(N)·m·c/N ≤ p_(J)·m·c/J < ε), so #{|t| ≥ |t_u|} ≤ N ≤
J_lo. So only the units with |t| ≥ τ_(J_lo) get a p-value and are ranked among themselves with scipy's
arithmetic: every unit left out has p > p_(J) (the argument holds for any unit with p ≤ p_(J)), so the
candidates' ranks up to J are their ranks among all units, and every other value they get is ≥ ε (q = 1, or
no rejection). Results equal ``scipy.stats.false_discovery_control`` on every p-value (tests check values and
verdicts).

Verdicts alone (:func:`fdr_reject`) need fewer p-values still. The units of rank ≤ J are those with
p ≤ π = p_(J), and with r_j = p_(j)·m·c/j, π is the largest p_u with r < ε at j = g(p_u) = #{p ≤ p_u}. Every
p lies between bounds that are monotone in |t| and cost no tail per unit: p_lo = 2Φ(−|t|) below, and above
p_hi = 2·T_ν₀(−|t|), with ν₀ the smallest ν among the candidates (at fixed |t| the two-sided Student tail
falls as ν grows: T_ν = Z/√V with V = χ²_ν/ν, the tail is convex in V, and V shrinks in convex order with ν).
Then J ≥ j wherever p_hi,(j)·m·c/j < ε (p_(j) ≤ p_hi,(j)), so π ≥ π_lo = p_lo,(j) for the largest such j on a
grid of ranks. Candidates with p_hi < π_lo are rejected without a p-value; the others get one. Counting for
each of those the first kind and the others' p-values ≤ p gives g(p) exactly for p in [π_lo, π], never more
than g(p) above π (units left out of the candidates have larger p) and possibly more below π_lo, where every
unit is rejected anyway. So the largest p with r < ε at that count is π — the unit at rank J is never of the
first kind — and the verdicts are exact. On ResNet-50's layers (864 images) a tenth of the candidates get a
p-value, and the verdicts of every pair, layer, test, FDR method and α in {0.01, 0.05, 0.2} equal the
p-values-for-all-candidates path's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import special

from netfloc.statistics.variance import sample_variance

TestName = Literal["welch", "student"]
FdrName = Literal["by", "bh"]
#: ν of a comparison: an array over all units, or a function giving ν on the units at some indices.
DegreesOfFreedom = np.ndarray | Callable[[np.ndarray], np.ndarray]
#: Relative margin that keeps the candidate search on the safe side of rounding.
_MARGIN = 1e-6
#: Relative margin that keeps the p-value bounds of :func:`fdr_reject` on the safe side of rounding.
_BOUND_MARGIN = 1e-6


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


def anova_oneway(
    count: np.ndarray, mean: np.ndarray, m2: np.ndarray, variance: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One-way ANOVA F and p across the K groups, per unit (module docstring). No within-group variance
    -> F = 0, p = 1. ``variance``: :func:`sample_variance` of the moments, if already computed."""
    n = count.reshape(-1, 1).astype(np.float64)
    total = n.sum()
    grand = (n * mean).sum(axis=0) / total
    between = (n * (mean - grand) ** 2).sum(axis=0) / (len(count) - 1)
    variance = sample_variance(count, mean, m2) if variance is None else variance
    within_ss = np.where(variance > 0, m2, 0.0).sum(axis=0)
    defined = within_ss > 0
    f = np.where(defined, between / np.where(defined, within_ss / (total - len(count)), 1.0), 0.0)
    p = np.where(defined, special.fdtrc(len(count) - 1, total - len(count), f), 1.0)
    return f, p


class GroupTerms:
    """Per-group terms every pairwise comparison of one set of moments shares: variances s², and s²/n (Welch)
    or (n − 1)·s² (Student), so a pair's t costs a few passes over the units and ν is computed only where
    asked (module docstring). ``variance``: :func:`sample_variance` of the moments, if already computed."""

    def __init__(
        self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray, test: TestName, variance: np.ndarray | None = None
    ) -> None:
        self.count, self.mean, self.test = np.asarray(count, dtype=np.float64), mean, test
        self.variance = sample_variance(self.count, mean, m2) if variance is None else variance
        n = self.count.reshape(-1, 1)
        self.error = self.variance / n if test == "welch" else (n - 1) * self.variance

    def t(self, a: int, b: int) -> np.ndarray:
        """t of group a against group b per unit (0 where the standard error is 0), as in :func:`welch_t` and
        :func:`student_t`."""
        se = self.error[a] + self.error[b]
        if self.test == "student":
            n_a, n_b = self.count[a], self.count[b]
            se /= n_a + n_b - 2.0
            se *= 1.0 / n_a + 1.0 / n_b
        np.sqrt(se, out=se)
        return np.divide(self.mean[a] - self.mean[b], se, out=np.zeros_like(se), where=se > 0)

    def df(self, a: int, b: int, units: np.ndarray) -> np.ndarray:
        """ν of the comparison of a with b on ``units`` (Welch–Satterthwaite, or n_a + n_b − 2)."""
        n_a, n_b = self.count[a], self.count[b]
        if self.test == "student":
            return np.full(len(units), n_a + n_b - 2.0)
        error_a, error_b = self.error[a, units], self.error[b, units]
        se2, denominator = error_a + error_b, error_a**2 / (n_a - 1) + error_b**2 / (n_b - 1)
        return np.where(se2 > 0, se2**2 / np.where(denominator > 0, denominator, 1.0), 1.0)


def _fdr_constant(m: int, method: FdrName) -> float:
    """c = Σ_{j≤m} 1/j for BY (computed as scipy does), 1 for BH."""
    return float(np.sum(1 / np.arange(1, m + 1, dtype=np.float64))) if method == "by" else 1.0


def _candidates(t: np.ndarray, c: float, epsilon: float, sort: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices of the units whose q can be below ``epsilon``: |t| ≥ τ_(J_lo) (module docstring), among the units
    whose p can be below ε/c at all (2Φ(−|t|) < ε/c); and their |t| in descending order when the search sorted
    them or ``sort`` asks for them (None otherwise)."""
    magnitude = np.abs(t)
    first = np.flatnonzero(magnitude >= -special.ndtri(epsilon / (2.0 * c)) * (1.0 - 1e-9))
    first_magnitude = magnitude[first]
    limit = epsilon * (1.0 + _MARGIN) / (t.size * c)
    # none, or the last rank passes (J_lo = all of them: BH q-values): the search needs no sort
    every_one = not first.size or 2.0 * special.ndtr(-first_magnitude.min()) < limit * first.size
    if every_one and not sort:
        return first, None
    tau = np.sort(first_magnitude)[::-1]
    if every_one:
        return first, tau
    ranks = np.arange(1, tau.size + 1, dtype=np.float64)
    possible = np.flatnonzero(2.0 * special.ndtr(-tau) < limit * ranks)
    if not possible.size:
        return first[:0], tau[:0]
    chosen = first_magnitude >= tau[possible[-1]]
    return first[chosen], tau[: np.count_nonzero(chosen)]


def _candidate_q(t: np.ndarray, df: DegreesOfFreedom, method: FdrName, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, q-values) of the units whose q can be below ``epsilon`` (module docstring); ``df``: ν of every
    unit, or a function giving ν on the units at some indices."""
    if not t.size:
        return np.zeros(0, dtype=np.intp), np.ones(0)
    c = _fdr_constant(t.size, method)
    candidates, _ = _candidates(t, c, epsilon)
    p = two_sided_p(t[candidates], df[candidates] if isinstance(df, np.ndarray) else df(candidates))
    return candidates, _ranked_q(p, t.size, c)


def _ranked_q(p: np.ndarray, m: int, c: float) -> np.ndarray:
    """q-values of the ``p`` that are the smallest of a family of m tests (scipy's arithmetic, unsorted)."""
    order = np.argsort(p)
    q = p[order] * (m / np.arange(1, len(p) + 1, dtype=np.float64))
    if c != 1.0:
        q *= c
    np.minimum.accumulate(q[::-1], out=q[::-1])
    out = np.empty_like(q)
    out[order] = np.clip(q, 0.0, 1.0)
    return out


def fdr_q(t: np.ndarray, df: DegreesOfFreedom, method: FdrName = "by") -> np.ndarray:
    """``scipy.stats.false_discovery_control(two_sided_p(t, ν), method)`` with p-values only where q < 1 is
    possible (module docstring). ``df``: ν per unit, or ``df(units)`` giving ν on the units at these indices."""
    candidates, candidate_q = _candidate_q(t, df, method, 1.0)
    q = np.ones(t.size)
    q[candidates] = candidate_q
    return q


def fdr_reject(t: np.ndarray, df: DegreesOfFreedom, alpha: float, method: FdrName = "by") -> np.ndarray:
    """``scipy.stats.false_discovery_control(two_sided_p(t, ν), method) < alpha`` with p-values only for the
    candidates whose verdict their bounds leave open (module docstring); ``df`` as in :func:`fdr_q`."""
    rejected = np.zeros(t.size, dtype=bool)
    if not t.size:
        return rejected
    c = _fdr_constant(t.size, method)
    candidates, tau = _candidates(t, c, alpha, sort=True)
    if not candidates.size:
        return rejected
    nu = df[candidates] if isinstance(df, np.ndarray) else df(candidates)
    smallest_nu, magnitude = float(nu.min()), np.abs(t[candidates])
    low = _threshold_low(tau, smallest_nu, t.size, c, alpha)
    certain = _prefix_and_ties(magnitude, tau, lambda x: _upper_p(x, smallest_nu) < low)
    open_ = np.flatnonzero(~certain)
    p = two_sided_p(t[candidates[open_]], nu[open_])
    ranks = np.count_nonzero(certain) + np.searchsorted(np.sort(p), p, side="right")  # g(p) of the open ones
    passing = (p * (t.size / ranks.astype(np.float64))) * c < alpha
    if certain.any() and not passing.any():
        raise RuntimeError("FDR bounds are inconsistent: units were certain but no threshold was found")
    rejected[candidates[certain]] = True
    if passing.any():
        rejected[candidates[open_[p <= p[passing].max()]]] = True
    return rejected


def _lower_p(magnitude: np.ndarray | float) -> np.ndarray | float:
    """2Φ(−|t|), lowered by the margin: below every Student two-sided p at this |t|."""
    return 2.0 * special.ndtr(-magnitude) / (1.0 + _BOUND_MARGIN)


def _upper_p(magnitude: np.ndarray | float, smallest_nu: float) -> np.ndarray | float:
    """2·T_ν₀(−|t|), raised by the margin: above the two-sided p at this |t| of every ν ≥ ν₀."""
    return 2.0 * special.stdtr(smallest_nu, -magnitude) * (1.0 + _BOUND_MARGIN)


def _threshold_low(tau: np.ndarray, smallest_nu: float, m: int, c: float, epsilon: float) -> float:
    """π_lo (module docstring): p_lo at the largest rank j with p_hi,(j)·m·c/j < ε on a geometric grid of
    ranks, refined on a linear grid up to the next grid rank; 0 where no rank passes. ``tau``: the candidates'
    |t|, descending."""

    def passing(ranks: np.ndarray) -> np.ndarray:
        return ranks[(_upper_p(tau[ranks - 1], smallest_nu) * (m / ranks.astype(np.float64))) * c < epsilon]

    coarse = np.unique(np.geomspace(1, tau.size, 128).astype(np.int64))
    found = passing(coarse)
    if not found.size:
        return 0.0
    following = coarse[coarse > found[-1]]
    if following.size:  # the fine grid starts at the rank that passed, so it passes again at least there
        found = passing(np.unique(np.linspace(found[-1], following[0] - 1, 128).astype(np.int64)))
    return float(_lower_p(tau[found[-1] - 1]))


def _prefix_and_ties(magnitude: np.ndarray, tau: np.ndarray, holds: Callable[[float], bool]) -> np.ndarray:
    """magnitude ≥ the last |t| of the prefix of ``tau`` (descending) on which ``holds`` is true — a predicate
    that is true on a prefix — found by bisection; all False where it holds nowhere."""
    low, high = 0, tau.size
    while low < high:
        middle = (low + high) // 2
        if holds(float(tau[middle])):
            low = middle + 1
        else:
            high = middle
    return magnitude >= tau[low - 1] if low else np.zeros(magnitude.shape, dtype=bool)

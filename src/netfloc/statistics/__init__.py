"""Statistics from accumulated moments: t-tests, one-way ANOVA, FDR, selectivity rules, CSI and d′.

All functions are pure (numpy/scipy, no torch) and work on float64 arrays of per-group moments: ``count`` (K,),
``mean`` (K, U) and ``m2`` (K, U) (sum of squared deviations), as held by
:class:`~netfloc.moments.accumulator.MomentAccumulator`.

- :mod:`~netfloc.statistics.variance`: sample variances with float32 rounding noise counted as zero, exact
  pooled moments of several groups.
- :mod:`~netfloc.statistics.inference`: Welch's and Student's t, ANOVA, Benjamini–Yekutieli/Hochberg FDR,
  computed only where a result can depend on them.
- :mod:`~netfloc.statistics.selection`: the selectivity rules, CSI and d′ (computed in chunks of units).
"""

from netfloc.statistics.inference import (
    TESTS,
    FdrName,
    GroupTerms,
    TestName,
    anova_oneway,
    fdr_q,
    fdr_reject,
    student_t,
    t_test,
    two_sided_p,
    welch_t,
)
from netfloc.statistics.selection import (
    RuleName,
    Selectivity,
    SelectivitySettings,
    csi,
    descriptives,
    dprime,
    pairwise_extremes,
    pooled_comparison,
    pooled_t,
    preferred_category,
    selective_mask,
    selectivity,
    top_units,
)
from netfloc.statistics.variance import (
    ZERO_VARIANCE_RTOL,
    ZERO_VARIANCE_ULPS,
    pool,
    pooled_moments,
    rest_moments,
    sample_variance,
    unit_scale,
)

__all__ = [
    "TESTS",
    "ZERO_VARIANCE_RTOL",
    "ZERO_VARIANCE_ULPS",
    "FdrName",
    "GroupTerms",
    "RuleName",
    "Selectivity",
    "SelectivitySettings",
    "TestName",
    "anova_oneway",
    "csi",
    "descriptives",
    "dprime",
    "fdr_q",
    "fdr_reject",
    "pairwise_extremes",
    "pool",
    "pooled_comparison",
    "pooled_moments",
    "pooled_t",
    "preferred_category",
    "rest_moments",
    "sample_variance",
    "selective_mask",
    "selectivity",
    "student_t",
    "t_test",
    "top_units",
    "two_sided_p",
    "unit_scale",
    "welch_t",
]

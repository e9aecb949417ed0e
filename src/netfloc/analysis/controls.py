"""Validity controls beyond the study: held-out localizers and label-permutation nulls.

Both are groupings of the stimuli accumulated in the same streaming pass as the main analysis (see
:mod:`netfloc.moments.groupings`), so they need no stored activations.

Cross-validation (``--cross-validate F``). The images of each category are split into F seeded folds of
near-equal size (stratified). For each fold f, units are selected on the other F − 1 folds (moments merged
exactly) with the run's rule, and evaluated on fold f, as independent fMRI localizer runs are:

- replication rate: of the units selected for k, the fraction that is again k-selective on the held-out
  images by the run's test — rule ``each``: t_kj > 0 and q_kj < alpha against every other category j;
  rules ``pooled`` and ``top``: k against the pooled other categories, t > 0 and q < alpha — with FDR over
  the selected units of that layer and category, per comparison; pooled over folds;
- held-out CSI and d′: the indices of the selected units computed from held-out images only (no double
  dipping), averaged over selected units and folds;
- split-half reliability: for each fold f, units are selected on all folds but f and g = f + 1 (mod F), and
  each selected unit's K category means on fold f are correlated (Pearson) with those on fold g — two halves
  that played no part in the selection, so noise cannot inflate it; averaged over units and f. It needs
  F ≥ 3 folds and K ≥ 3 categories (two points always correlate ±1) and is NaN otherwise; units whose
  profile is constant in a fold are left out.

Null control (``--null P``). P seeded permutations of the category labels across images (category sizes
kept); the full selection is run on each. Under permuted labels there is no true effect, and FDR control then
promises a *family-wise* bound: the chance that a (permutation, category) cell has any selective unit is at
most alpha (Benjamini & Hochberg 1995, §2.1; for rule ``each`` the verdict needs K − 1 such families at
once, so it is smaller still). Per model and layer, ``familywise_rate`` = x / n over the n = P·K cells, x of
which hold at least one selective unit, with the one-sided 95% Clopper–Pearson bounds: the 0.95 quantile of
Beta(x + 1, n − x) (upper, reported) and the 0.05 quantile of Beta(x, n − x + 1) (lower). A layer is
flagged (``exceeds_alpha``) when the lower bound is above alpha: the loss of control is then significant,
not a fluctuation. Cells of one permutation share images, so the bounds are approximate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from netfloc.parallel import parallel_map
from netfloc.statistics import (
    TESTS,
    SelectivitySettings,
    csi,
    dprime,
    fdr_reject,
    pool,
    rest_moments,
    sample_variance,
    selective_mask,
)

if TYPE_CHECKING:
    import pandas as pd


Moments = tuple[np.ndarray, np.ndarray, np.ndarray]


def merge_folds(moments: Moments, n_categories: int, n_folds: int, folds: list[int]) -> Moments:
    """Per-category moments of the union of ``folds``, from fold-level moments (group = k·F + f); one fold's
    moments are views, not copies."""
    count, mean, m2 = moments
    rows = [slice(f, n_categories * n_folds, n_folds) for f in folds]
    if len(rows) == 1:
        return count[rows[0]], mean[rows[0]], m2[rows[0]]
    return pool([count[r] for r in rows], [mean[r] for r in rows], [m2[r] for r in rows])


def heldout_replication(test: Moments, selected: np.ndarray, settings: SelectivitySettings) -> np.ndarray:
    """K×U mask: selected units that are again k-selective on the held-out moments, by the run's test (every
    j for rule ``each``, the pooled others otherwise), with FDR over the selected units of k per comparison."""
    count, mean, m2 = test
    variance = sample_variance(count, mean, m2)
    replicated = np.zeros_like(selected)
    for k in range(len(count)):
        units = np.flatnonzero(selected[k])
        if not len(units):
            continue
        passed = np.ones(len(units), dtype=bool)
        for n_other, mean_other, var_other in _opponents(test, variance, k, units, settings.rule):
            t, df = TESTS[settings.test](count[k], mean[k, units], variance[k, units], n_other, mean_other, var_other)
            passed &= (t > 0) & fdr_reject(t, df, settings.alpha, settings.fdr)
        replicated[k, units] = passed
    return replicated


def _opponents(moments: Moments, variance: np.ndarray, k: int, units: np.ndarray, rule: str):
    """(n, mean, variance) on ``units`` of every group category k is tested against under ``rule``."""
    count, mean, m2 = moments
    if rule == "each":
        return [(count[j], mean[j, units], variance[j, units]) for j in range(len(count)) if j != k]
    return [rest_moments(count, mean[:, units], m2[:, units], k)]


def profile_reliability(half_a: np.ndarray, half_b: np.ndarray) -> np.ndarray:
    """Per unit, Pearson r between two K-vectors of category means (NaN where either is constant)."""
    a = half_a - half_a.mean(axis=0)
    b = half_b - half_b.mean(axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    return np.divide((a * b).sum(axis=0), denominator, out=np.full(a.shape[1], np.nan), where=denominator > 0)


def heldout_reliability(
    fold_moments: Moments, n_categories: int, n_folds: int, settings: SelectivitySettings
) -> list[np.ndarray]:
    """Per category, the profile correlations of units selected without folds f and f + 1, between those two
    folds (module docstring); empty where F < 3 or K < 3."""
    if n_folds < 3 or n_categories < 3:
        return [np.array([]) for _ in range(n_categories)]

    def fold_values(fold: int) -> list[np.ndarray]:
        pair = [fold, (fold + 1) % n_folds]
        selection = merge_folds(fold_moments, n_categories, n_folds, [f for f in range(n_folds) if f not in pair])
        selected = selective_mask(*selection, settings)
        union = np.flatnonzero(selected.any(axis=0))
        first, second = (merge_folds(fold_moments, n_categories, n_folds, [f])[1][:, union] for f in pair)
        correlation = profile_reliability(first, second)
        chosen = [correlation[selected[category, union]] for category in range(n_categories)]
        return [values[np.isfinite(values)] for values in chosen]

    per_fold = parallel_map(fold_values, range(n_folds))  # the folds on every core
    return [np.concatenate([values[category] for values in per_fold]) for category in range(n_categories)]


def fold_selections(
    fold_moments: Moments, n_categories: int, n_folds: int, settings: SelectivitySettings
) -> list[np.ndarray]:
    """For each fold f, the K×U selection made on all other folds (the held-out localizer's training side); the
    folds on every core."""
    return parallel_map(
        lambda f: selective_mask(
            *merge_folds(fold_moments, n_categories, n_folds, [g for g in range(n_folds) if g != f]), settings
        ),
        range(n_folds),
    )


def crossval_rows(
    model: str,
    layer: str,
    categories: list[str],
    fold_moments: Moments,
    selections: list[np.ndarray],
    settings: SelectivitySettings,
) -> list[dict]:
    """Tidy rows (model, layer, category, measure, value) of the cross-validated localizer; ``selections`` are
    :func:`fold_selections` of the same moments."""
    k, n_folds = len(categories), len(selections)
    selected_total = np.zeros(k)
    replicated_total = np.zeros(k)
    heldout_csi: list[list[np.ndarray]] = [[] for _ in range(k)]
    heldout_dprime: list[list[np.ndarray]] = [[] for _ in range(k)]
    for fold, selected in enumerate(selections):
        test = merge_folds(fold_moments, k, n_folds, [fold])
        replicated = heldout_replication(test, selected, settings)
        selected_total += selected.sum(axis=1)
        replicated_total += replicated.sum(axis=1)
        union = np.flatnonzero(selected.any(axis=0))  # CSI and d′ are per unit: computed where they are read
        test_count, test_mean, test_m2 = test[0], test[1][:, union], test[2][:, union]
        test_csi, test_dprime = csi(test_mean), dprime(test_count, test_mean, test_m2)
        for category in range(k):
            heldout_csi[category].append(test_csi[category, selected[category, union]])
            heldout_dprime[category].append(test_dprime[category, selected[category, union]])
    reliability = heldout_reliability(fold_moments, k, n_folds, settings)
    rows = []
    for category, name in enumerate(categories):
        csi_values = np.concatenate(heldout_csi[category])
        dprime_values = np.concatenate(heldout_dprime[category])
        unit_reliability = reliability[category]
        measures = {
            "n_selected_per_fold": selected_total[category] / n_folds,
            "replication_rate": replicated_total[category] / selected_total[category]
            if selected_total[category]
            else np.nan,
            "heldout_mean_csi": csi_values.mean() if len(csi_values) else np.nan,
            "heldout_mean_dprime": dprime_values.mean() if len(dprime_values) else np.nan,
            "split_half_reliability": unit_reliability.mean() if len(unit_reliability) else np.nan,
        }
        rows.extend(
            {"model": model, "layer": layer, "category": name, "measure": measure, "value": float(value)}
            for measure, value in measures.items()
        )
    return rows


def null_rows(
    model: str,
    layer: str,
    categories: list[str],
    permutation_moments: list[tuple[int, Moments]],
    settings: SelectivitySettings,
) -> list[dict]:
    """Tidy rows (model, layer, category, permutation, n_units, n_selective, proportion) under the null, from
    (permutation index, moments) pairs; the permutations on every core."""
    rows, permutation_moments = [], list(permutation_moments)
    masks = parallel_map(lambda item: selective_mask(*item[1], settings), permutation_moments)
    for (permutation, _), selective in zip(permutation_moments, masks, strict=True):
        for k, name in enumerate(categories):
            n_selective = int(selective[k].sum())
            rows.append(
                {
                    "model": model,
                    "layer": layer,
                    "category": name,
                    "permutation": permutation,
                    "n_units": selective.shape[1],
                    "n_selective": n_selective,
                    "proportion": n_selective / selective.shape[1],
                }
            )
    return rows


NULL_SUMMARY_COLUMNS = [
    "model",
    "layer",
    "n_permutations",
    "familywise_rate",
    "familywise_ci_high",
    "null_proportion_mean",
    "alpha",
    "exceeds_alpha",
]


def clopper_pearson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """One-sided Clopper–Pearson (1934) bounds (lower, upper) of a binomial proportion at ``confidence``:
    quantiles of Beta distributions, ``scipy.special.betaincinv`` (the inverse of the regularised incomplete
    beta function, which ``scipy.stats.beta.ppf`` computes)."""
    lower = float(special.betaincinv(hits, n - hits + 1, 1 - confidence)) if hits > 0 else 0.0
    upper = float(special.betaincinv(hits + 1, n - hits, confidence)) if hits < n else 1.0
    return lower, upper


def null_summary(null: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per model and layer, the family-wise rate of the null control and whether it significantly exceeds alpha
    (module docstring; columns :data:`NULL_SUMMARY_COLUMNS`)."""
    import pandas as pd

    rows = []
    for (model, layer), cells in null.groupby(["model", "layer"], sort=False):
        hits, n = int((cells["n_selective"] > 0).sum()), len(cells)
        lower, upper = clopper_pearson(hits, n)
        rows.append(
            {
                "model": model,
                "layer": layer,
                "n_permutations": int(cells["permutation"].nunique()),
                "familywise_rate": hits / n,
                "familywise_ci_high": upper,
                "null_proportion_mean": float(cells["proportion"].mean()),
                "alpha": alpha,
                "exceeds_alpha": lower > alpha,
            }
        )
    return pd.DataFrame(rows, columns=NULL_SUMMARY_COLUMNS)

"""Validity controls beyond the study: held-out localizers and label-permutation nulls.

Both are groupings of the stimuli accumulated in the same streaming pass as the main analysis (see
:func:`netfloc.api.record_moments`), so they need no stored activations.

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
kept); the full selection is run on each. The proportion of units called selective under the null should
not exceed alpha; layers where it does are flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from netfloc.statistics import (
    SelectivitySettings,
    csi,
    dprime,
    fdr,
    pooled_moments,
    sample_variance,
    selectivity,
    t_test,
)

Moments = tuple[np.ndarray, np.ndarray, np.ndarray]


def stratified_folds(categories: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index of each image: within each category, a seeded permutation dealt round-robin."""
    rng = np.random.default_rng([seed, 1])
    folds = np.empty(len(categories), dtype=np.int64)
    for category in np.unique(categories):
        members = np.flatnonzero(categories == category)
        folds[rng.permutation(members)] = np.arange(len(members)) % n_folds
    return folds


def permuted_labels(categories: np.ndarray, n_permutations: int, seed: int) -> list[np.ndarray]:
    """``n_permutations`` seeded shuffles of the category labels across images."""
    rng = np.random.default_rng([seed, 2])
    return [rng.permutation(categories) for _ in range(n_permutations)]


def merge_folds(moments: Moments, n_categories: int, n_folds: int, folds: list[int]) -> Moments:
    """Per-category moments of the union of ``folds``, from fold-level moments (group = k·F + f)."""
    count, mean, m2 = moments
    merged = [pooled_moments(count, mean, m2, [k * n_folds + f for f in folds]) for k in range(n_categories)]
    return (
        np.array([n for n, _, _ in merged]),
        np.stack([m for _, m, _ in merged]),
        np.stack([s for _, _, s in merged]),
    )


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
            t, _, p = t_test(
                count[k], mean[k, units], variance[k, units], n_other, mean_other, var_other, settings.test
            )
            passed &= (t > 0) & (fdr(p, settings.fdr) < settings.alpha)
        replicated[k, units] = passed
    return replicated


def _opponents(moments: Moments, variance: np.ndarray, k: int, units: np.ndarray, rule: str):
    """(n, mean, variance) on ``units`` of every group category k is tested against under ``rule``."""
    count, mean, m2 = moments
    others = [j for j in range(len(count)) if j != k]
    if rule == "each":
        return [(count[j], mean[j, units], variance[j, units]) for j in others]
    n_rest, rest_mean, rest_m2 = pooled_moments(count, mean[:, units], m2[:, units], others)
    rest_var = sample_variance(np.array([n_rest]), rest_mean[None], rest_m2[None])[0]
    return [(n_rest, rest_mean, rest_var)]


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
    values: list[list[np.ndarray]] = [[] for _ in range(n_categories)]
    if n_folds < 3 or n_categories < 3:
        return [np.array([]) for _ in range(n_categories)]
    for fold in range(n_folds):
        pair = [fold, (fold + 1) % n_folds]
        selection = merge_folds(fold_moments, n_categories, n_folds, [f for f in range(n_folds) if f not in pair])
        selected = selectivity(*selection, settings).selective
        first, second = (merge_folds(fold_moments, n_categories, n_folds, [f])[1] for f in pair)
        correlation = profile_reliability(first, second)
        for category in range(n_categories):
            chosen = correlation[selected[category]]
            values[category].append(chosen[np.isfinite(chosen)])
    return [np.concatenate(parts) for parts in values]


def crossval_rows(
    model: str,
    layer: str,
    categories: list[str],
    fold_moments: Moments,
    n_folds: int,
    settings: SelectivitySettings,
) -> list[dict]:
    """Tidy rows (model, layer, category, measure, value) of the cross-validated localizer."""
    k = len(categories)
    selected_total = np.zeros(k)
    replicated_total = np.zeros(k)
    heldout_csi: list[list[np.ndarray]] = [[] for _ in range(k)]
    heldout_dprime: list[list[np.ndarray]] = [[] for _ in range(k)]
    for fold in range(n_folds):
        train = merge_folds(fold_moments, k, n_folds, [f for f in range(n_folds) if f != fold])
        test = merge_folds(fold_moments, k, n_folds, [fold])
        selected = selectivity(*train, settings).selective
        replicated = heldout_replication(test, selected, settings)
        selected_total += selected.sum(axis=1)
        replicated_total += replicated.sum(axis=1)
        test_csi, test_dprime = csi(test[1]), dprime(*test)
        for category in range(k):
            heldout_csi[category].append(test_csi[category, selected[category]])
            heldout_dprime[category].append(test_dprime[category, selected[category]])
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
    model: str, layer: str, categories: list[str], permutation_moments: list[Moments], settings: SelectivitySettings
) -> list[dict]:
    """Tidy rows (model, layer, category, permutation, n_units, n_selective, proportion) under the null."""
    rows = []
    for permutation, moments in enumerate(permutation_moments):
        selective = selectivity(*moments, settings).selective
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


def null_summary(null: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per model and layer: mean and max null proportion over categories and permutations, and whether
    the mean exceeds alpha (columns model, layer, null_proportion_mean, null_proportion_max, alpha,
    exceeds_alpha)."""
    grouped = null.groupby(["model", "layer"], sort=False)["proportion"]
    summary = pd.DataFrame({"null_proportion_mean": grouped.mean(), "null_proportion_max": grouped.max()}).reset_index()
    summary["alpha"] = alpha
    summary["exceeds_alpha"] = summary["null_proportion_mean"] > alpha
    return summary

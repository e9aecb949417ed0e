"""The report's summary of main findings: plain sentences with numbers, generated from the tables.

Sentences are plain text (the HTML writer escapes them). Tests of differences are two-sided and
uncorrected for multiple comparisons; "significant" means ``p < ALPHA``. The validity controls add sentences
on the held-out localizer, the null control (:func:`null_warnings`: one per model × layer whose null rate
exceeds α), trained vs untrained models and lesions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netfloc.analysis import run_tables as rt
from netfloc.analysis import tables as tb
from netfloc.results import LocalizerResult

#: Significance level of the report's sentences (two-sided, uncorrected).
ALPHA = 0.05


def percent(value: float) -> str:
    """``0.1234 -> '12.3%'``."""
    return f"{100 * value:.1f}%"


def p_value(p: float) -> str:
    """``p = 3e-07`` style, two significant digits; ``p < 1e-300`` when the float underflowed to 0."""
    return "p < 1e-300" if p == 0 else f"p = {p:.2g}"


def _lookup(table: pd.DataFrame, **keys: Any) -> dict[str, float]:
    """``measure -> value`` of the rows of a tidy table that match ``keys``."""
    chosen = table
    for column, value in keys.items():
        chosen = chosen[chosen[column] == value]
    return dict(zip(chosen["measure"], chosen["value"], strict=True))


def last_common_layer(result: LocalizerResult, model_a: str, model_b: str) -> str | None:
    """The deepest layer (in model_a's order) that both models have, or None."""
    names_b = {layer.layer for layer in result.model_layers(model_b)}
    shared = [layer.layer for layer in result.model_layers(model_a) if layer.layer in names_b]
    return shared[-1] if shared else None


def proportion_findings(result: LocalizerResult, proportions: pd.DataFrame) -> list[str]:
    """Per category: each model's proportion in its last layer (with 95% CI) and the layer where it peaks."""
    sentences = []
    for category in tb.categories(result):
        parts = []
        for model in result.models:
            layers = [layer.layer for layer in result.model_layers(model)]
            last = _lookup(proportions, model=model, layer=layers[-1], category=category)
            rows = proportions[
                (proportions["model"] == model)
                & (proportions["category"] == category)
                & (proportions["measure"] == "proportion")
            ]
            peak = rows.loc[rows["value"].idxmax()]
            parts.append(
                f"{model} has {percent(last['proportion'])} in its last layer {layers[-1]} "
                f"({int(last['n_selective'])} of {int(last['n_units'])} units; 95% CI "
                f"{percent(last['ci_low'])}–{percent(last['ci_high'])}) and most in {peak['layer']} "
                f"({percent(peak['value'])})"
            )
        sentences.append(f"{category}-selective units: " + "; ".join(parts) + ".")
    return sentences


def comparison_findings(result: LocalizerResult, comparison: pd.DataFrame) -> list[str]:
    """Per pair of models and category: the last shared layer's z test, and a count over all shared layers."""
    sentences = []
    pairs = dict.fromkeys(zip(comparison["model_a"], comparison["model_b"], strict=True))
    if pairs:
        sentences.append(
            "The proportion tests treat every unit as an independent sample. Units of a layer are correlated (same "
            "channels, same images), so with many thousands of units even small differences reach p < 0.05: read "
            "the size of a difference (in percentage points) before its p-value."
        )
    for model_a, model_b in pairs:
        layer = last_common_layer(result, model_a, model_b)
        pair = comparison[(comparison["model_a"] == model_a) & (comparison["model_b"] == model_b)]
        for category in tb.categories(result):
            row = _lookup(pair, layer=layer, category=category)
            high, low, x_high, x_low = model_a, model_b, row["proportion_a"], row["proportion_b"]
            if row["difference"] < 0:
                high, low, x_high, x_low = model_b, model_a, x_low, x_high
            verdict = "significant" if row["p"] < ALPHA else "not significant"
            tests = pair[(pair["category"] == category)].pivot(index="layer", columns="measure", values="value")
            more_a = int(((tests["p"] < ALPHA) & (tests["difference"] > 0)).sum())
            more_b = int(((tests["p"] < ALPHA) & (tests["difference"] < 0)).sum())
            sentences.append(
                f"In {layer}, {high} has {percent(x_high)} {category}-selective units vs {percent(x_low)} for "
                f"{low} (difference {100 * abs(row['difference']):.1f} points, z = {abs(row['z']):.2f}, "
                f"{p_value(row['p'])}; {verdict} at α = {ALPHA}). Over the {len(tests)} layers both models "
                f"have, {model_a} has significantly more {category}-selective units in {more_a} and {model_b} in "
                f"{more_b}."
            )
    return sentences


def specificity_findings(result: LocalizerResult, specificity: pd.DataFrame, tests: pd.DataFrame) -> list[str]:
    """Per pair of models and category: median CSI in the last shared layer, with the Mann–Whitney test."""
    sentences = []
    pairs = dict.fromkeys(zip(tests["model_a"], tests["model_b"], strict=True))
    for model_a, model_b in pairs:
        layer = last_common_layer(result, model_a, model_b)
        for category in tb.categories(result):
            row = tests[
                (tests["model_a"] == model_a)
                & (tests["model_b"] == model_b)
                & (tests["layer"] == layer)
                & (tests["category"] == category)
                & (tests["measure"] == "csi")
            ].iloc[0]
            if np.isnan(row["u"]):
                empty = model_a if row["n_a"] == 0 else model_b
                sentences.append(
                    f"The CSI of {category}-selective units in {layer} cannot be compared: {empty} has none."
                )
                continue
            median_a = _lookup(specificity, model=model_a, layer=layer, category=category)["median_csi"]
            median_b = _lookup(specificity, model=model_b, layer=layer, category=category)["median_csi"]
            verdict = "significant" if row["p"] < ALPHA else "not significant"
            sentences.append(
                f"Median CSI of {category}-selective units in {layer}: {model_a} {median_a:.3f} "
                f"(n = {int(row['n_a'])}) vs {model_b} {median_b:.3f} (n = {int(row['n_b'])}); Mann–Whitney "
                f"U = {row['u']:.0f}, {p_value(row['p'])}, rank-biserial r = {row['rank_biserial']:.2f} "
                f"({verdict} at α = {ALPHA})."
            )
    return sentences


def consistency_findings(summary: pd.DataFrame) -> list[str]:
    """Per model and selection (in-sample, held-out): the mean off-diagonal Spearman ρ between layers' RDMs for
    each category (categories without a value, e.g. no selective population, are left out)."""
    sentences = []
    for (model, selection), rows in summary.groupby(["model", "selection"], sort=False):
        parts = [
            f"{row.category} {row.mean_off_diagonal:.2f}"
            for row in rows.itertuples(index=False)
            if np.isfinite(row.mean_off_diagonal)
        ]
        if parts:
            sentences.append(
                f"Mean Spearman ρ between the RDMs of {model}'s layers ({selection} selection): "
                + ", ".join(parts)
                + "."
            )
    return sentences


def crossval_findings(result: LocalizerResult, crossval: pd.DataFrame) -> list[str]:
    """Per model: for each category, the replication rate and held-out vs in-sample mean d′ and CSI in the
    deepest layer with selected units, then the means over all layers and categories with selected units."""
    folds = result.run_info.get("settings", {}).get("cross_validate")
    name = f"Held-out localizer ({folds} folds)" if folds else "Held-out localizer"
    sentences = []
    for model in result.models:
        chosen = crossval[crossval["model"] == model]
        if chosen.empty:
            continue
        table = chosen.pivot(index=["layer", "category"], columns="measure", values="value")
        layers = [layer.layer for layer in result.model_layers(model)]
        parts = []
        for category in tb.categories(result):
            defined = [
                layer
                for layer in layers
                if (layer, category) in table.index and table.loc[(layer, category), "replication_rate"] >= 0
            ]
            if not defined:
                parts.append(f"no {category}-selective units in any training fold")
                continue
            row = table.loc[(defined[-1], category)]
            parts.append(
                f"{percent(row['replication_rate'])} of the {category}-selective units of {defined[-1]} replicate, "
                f"held-out mean d′ {row['heldout_mean_dprime']:.2f} vs {row['insample_mean_dprime']:.2f} "
                f"in-sample (mean CSI {row['heldout_mean_csi']:.3f} vs {row['insample_mean_csi']:.3f})"
            )
        selected = table[table["replication_rate"] >= 0]
        overall = (
            f" Over the {len(selected)} layer × category combinations with selected units: mean replication "
            f"{percent(selected['replication_rate'].mean())}, mean in-sample − held-out d′ "
            f"{selected['dprime_inflation'].mean():.2f}."
            if len(selected)
            else ""
        )
        sentences.append(f"{name}, {model}: " + "; ".join(parts) + "." + overall)
    return sentences


def null_warnings(null_summary: pd.DataFrame) -> list[str]:
    """One warning per model × layer whose family-wise null rate is significantly above α (its one-sided 95%
    Clopper–Pearson lower bound exceeds α: FDR control has failed there)."""
    return [
        f"Null control failed for {row.model} {row.layer}: with permuted category labels, "
        f"{percent(row.familywise_rate)} of the permutation × category cells have at least one selective unit "
        f"(95% upper bound {percent(row.familywise_ci_high)}), significantly above α = {row.alpha:g}; FDR control "
        "fails there and its selective units are not trustworthy."
        for row in null_summary[null_summary["exceeds_alpha"].astype(bool)].itertuples(index=False)
    ]


def null_findings(null_summary: pd.DataFrame) -> list[str]:
    """:func:`null_warnings`, or one sentence that no layer's family-wise rate exceeds α (with the largest)."""
    warnings = null_warnings(null_summary)
    if warnings or null_summary.empty:
        return warnings
    worst = null_summary.loc[null_summary["familywise_rate"].idxmax()]
    return [
        f"Null control: with permuted category labels, at most {percent(worst['familywise_rate'])} of a layer's "
        f"permutation × category cells have any selective unit ({worst['model']} {worst['layer']}, 95% upper "
        f"bound {percent(worst['familywise_ci_high'])}); no layer is significantly above α = {worst['alpha']:g} "
        f"in all {len(null_summary)} model × layer combinations."
    ]


def baseline_findings(result: LocalizerResult, baseline: pd.DataFrame) -> list[str]:
    """Per trained model and its random-weight baseline: each category's proportions and z test in the last
    shared layer, and how many layer × category tests are significant in each direction."""
    sentences = []
    for trained, untrained in dict.fromkeys(zip(baseline["model_a"], baseline["model_b"], strict=True)):
        layer = last_common_layer(result, trained, untrained)
        pair = baseline[(baseline["model_a"] == trained) & (baseline["model_b"] == untrained)]
        parts = []
        for category in tb.categories(result):
            row = _lookup(pair, layer=layer, category=category)
            parts.append(
                f"{category} {percent(row['proportion_a'])} vs {percent(row['proportion_b'])} "
                f"(z = {row['z']:.2f}, {p_value(row['p'])})"
            )
        tests = pair.pivot(index=["layer", "category"], columns="measure", values="value")
        more = int(((tests["p"] < ALPHA) & (tests["difference"] > 0)).sum())
        fewer = int(((tests["p"] < ALPHA) & (tests["difference"] < 0)).sum())
        sentences.append(
            f"Trained vs random weights in {layer}, selective units of {trained} vs {untrained}: "
            + "; ".join(parts)
            + f". Over {len(tests)} layer × category tests, {trained} has significantly more selective units "
            f"than its untrained version in {more} and fewer in {fewer} (α = {ALPHA})."
        )
    return sentences


def lesion_findings(lesions: dict[str, pd.DataFrame]) -> list[str]:
    """Per lesion: the drop in decoding of the lesioned category against random lesions (percentage points,
    z = (drop_selective − mean random drop) / SD of random drops), and the largest drop of another category."""
    sentences = []
    for summary in lesions.values():
        for (model, layer, lesioned), rows in summary.groupby(["model", "layer", "lesioned_category"], sort=False):
            others = rows.loc[rows["category"] != lesioned, "drop_selective"]
            for row in rows[rows["category"] == lesioned].itertuples(index=False):
                count = "" if np.isnan(row.n_lesioned) else f"{int(row.n_lesioned)} "
                noun = "unit" if row.n_lesioned == 1 else "units"
                z = "z undefined: the random drops do not vary" if np.isnan(row.z) else f"z = {row.z:.1f}"
                other = f"; other categories drop by at most {100 * others.max():.1f} points" if len(others) else ""
                sentences.append(
                    f"Silencing the {count}{lesioned}-selective {noun} of {model}'s {layer} drops {lesioned} decoding "
                    f"by {100 * row.drop_selective:.1f} points (random lesions of as many units: "
                    f"{100 * row.drop_random_mean:.1f} ± {100 * row.drop_random_sd:.1f} points, {z}){other}."
                )
    return sentences


def run_findings(run_info: dict[str, Any]) -> list[str]:
    """Cautions about merged runs whose settings or stimuli differ."""
    runs = run_info.get("runs", [])
    sentences = []
    if len({repr(run.get("settings")) for run in runs}) > 1:
        sentences.append("Caution: the merged runs used different statistics settings (see Run); compare with care.")
    if len({(run.get("stimuli") or {}).get("digest_sha256") for run in runs}) > 1:
        sentences.append("Caution: the merged runs used different stimulus sets (see Run); compare with care.")
    return sentences


def findings(
    result: LocalizerResult,
    tables: dict[str, pd.DataFrame],
    consistency_summary: pd.DataFrame | None = None,
    controls: rt.Controls | None = None,
) -> list[str]:
    """Every summary sentence, in report order: cautions and null-control warnings first. A trained model and
    its random-weight baseline are compared in the baseline sentences only, not again among all models."""
    controls = controls or rt.Controls()
    baselines = {untrained for _, untrained in tb.baseline_pairs(result.models)}
    comparison, tests = tables["comparison"], tables["specificity_tests"]

    def like_with_like(frame: pd.DataFrame) -> np.ndarray:
        """Pairs of two trained models or of two baselines (a model against its own or another model's
        random-weight baseline belongs to the baseline sentences)."""
        return np.array(
            [(a in baselines) == (b in baselines) for a, b in zip(frame["model_a"], frame["model_b"], strict=True)],
            dtype=bool,
        )

    return (
        run_findings(result.run_info)
        + (null_findings(controls.null_summary) if controls.null_summary is not None else [])
        + proportion_findings(result, tables["proportions"])
        + comparison_findings(result, comparison[like_with_like(comparison)])
        + specificity_findings(result, tables["specificity"], tests[like_with_like(tests)])
        + (consistency_findings(consistency_summary) if consistency_summary is not None else [])
        + (crossval_findings(result, controls.crossval) if controls.crossval is not None else [])
        + (baseline_findings(result, controls.baseline) if controls.baseline is not None else [])
        + lesion_findings(controls.lesions)
    )

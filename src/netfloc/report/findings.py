"""The report's summary of main findings: plain sentences with numbers, generated from the tables.

Sentences are plain text (the HTML writer escapes them). Tests of differences are two-sided and
uncorrected for multiple comparisons; "significant" means ``p < ALPHA``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netfloc.analysis import tables as tb
from netfloc.api import LocalizerResult

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
    names_b = {layer.layer for layer in tb.model_layers(result, model_b)}
    shared = [layer.layer for layer in tb.model_layers(result, model_a) if layer.layer in names_b]
    return shared[-1] if shared else None


def proportion_findings(result: LocalizerResult, proportions: pd.DataFrame) -> list[str]:
    """Per category: each model's proportion in its last layer (with 95% CI) and the layer where it peaks."""
    sentences = []
    for category in tb.categories(result):
        parts = []
        for model in result.models:
            layers = [layer.layer for layer in tb.model_layers(result, model)]
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
    """Per model: the mean off-diagonal Spearman ρ between layers' RDMs for each category."""
    sentences = []
    for model, rows in summary.groupby("model", sort=False):
        parts = [f"{row.category} {row.mean_off_diagonal:.2f}" for row in rows.itertuples(index=False)]
        sentences.append(f"Mean Spearman ρ between the RDMs of {model}'s layers: " + ", ".join(parts) + ".")
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
    result: LocalizerResult, tables: dict[str, pd.DataFrame], consistency_summary: pd.DataFrame | None = None
) -> list[str]:
    """Every summary sentence, in report order."""
    return (
        run_findings(result.run_info)
        + proportion_findings(result, tables["proportions"])
        + comparison_findings(result, tables["comparison"])
        + specificity_findings(result, tables["specificity"], tables["specificity_tests"])
        + (consistency_findings(consistency_summary) if consistency_summary is not None else [])
    )

"""The report's figures, drawn with matplotlib's object API (no pyplot, so no global backend or state).

Every figure is saved as PNG (200 dpi) and SVG (text kept as text) into ``OUT/figures/``. Panels are about
3.5 × 2.6 in, the width of one paper column, with 7–9 pt text. Colours are colour-blind safe: models take
the Okabe–Ito palette (Okabe & Ito 2008, *Color Universal Design*), categories Paul Tol's "muted" palette
(Tol 2021, *Colour Schemes*, SRON/EPS/TN/09-002), maps viridis (sequential) and PuOr (diverging); a model
has the same colour in every figure (:func:`model_colors`). A random-weight baseline ``X-random`` of a model
``X`` of the same run (``--baseline random``) takes a lighter tint of ``X``'s colour and, in line plots, a
dashed line (:func:`model_linestyles`), so that trained and untrained versions read as a pair.

:func:`make_figures` draws the main figures; :func:`make_control_figures` those of the validity controls
(cross-validation, null control, trained vs untrained baseline, lesions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from netfloc.analysis import tables as tb
from netfloc.api import LocalizerResult

#: Okabe–Ito colours, ordered so that the first models get the most distinct ones (yellow and black last).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: Paul Tol's muted qualitative palette.
TOL_MUTED = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499")
PANEL = (3.5, 2.6)
MAP_PANEL = (1.9, 1.7)
DPI = 200
STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "netfloc",
}
#: Significance markers of the comparison figure: (threshold, marker), two-sided uncorrected p.
STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
LINESTYLES = ("-", "--", ":", "-.")
#: How far a baseline's colour is mixed towards white: ``rgb' = rgb + BASELINE_TINT · (1 − rgb)``.
BASELINE_TINT = 0.5
#: Line style of a random-weight baseline (trained models: solid).
BASELINE_LINESTYLE = "--"
#: Drop after the selective lesion, random-lesion drops, and the band behind the lesioned category.
LESION_COLORS = {"selective": "#D55E00", "random": "#999999", "highlight": "#F0E442"}
FEATURE_LABELS = {
    "channels_occupied": "channels with ≥1\nselective unit (fraction)",
    "channel_entropy": "channel entropy\n(normalised, 0–1)",
    "channel_gini": "channel Gini (0–1)",
    "spatial_entropy": "spatial entropy\n(normalised, 0–1)",
    "spatial_radius": "spatial radius\n(grid cells)",
}


@dataclass(frozen=True)
class FigureFile:
    """One saved figure: file stem, title and caption for the report, and its PNG and SVG paths."""

    stem: str
    title: str
    caption: str
    png: Path
    svg: Path


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """Colour of each model: Okabe–Ito by position among the models that are not a baseline (cycles after 8);
    a baseline ``X-random`` of a model ``X`` in ``models`` gets ``X``'s colour tinted by :data:`BASELINE_TINT`."""
    trained_of = {untrained: trained for trained, untrained in tb.baseline_pairs(models)}
    own = [model for model in models if model not in trained_of]
    colors = {model: OKABE_ITO[i % len(OKABE_ITO)] for i, model in enumerate(own)}

    def color(model: str) -> str:
        if model in colors:
            return colors[model]
        rgb = np.array(to_rgb(color(trained_of[model])))
        return to_hex(rgb + BASELINE_TINT * (1.0 - rgb))

    return {model: color(model) for model in models}


def model_linestyles(models: Sequence[str]) -> dict[str, str]:
    """Line style of each model: :data:`BASELINE_LINESTYLE` for a baseline ``X-random`` of a model ``X`` in
    ``models``, solid otherwise."""
    untrained = {baseline for _, baseline in tb.baseline_pairs(models)}
    return {model: BASELINE_LINESTYLE if model in untrained else "-" for model in models}


def category_colors(categories: Sequence[str]) -> dict[str, str]:
    """Colour of each category, by position (Tol muted; cycles after 9 categories)."""
    return {category: TOL_MUTED[i % len(TOL_MUTED)] for i, category in enumerate(categories)}


def text(value: str) -> str:
    """User text (a model, layer or category name) safe for matplotlib: ``$`` would start mathtext."""
    return str(value).replace("$", r"\$")


def _panels(n: int, ncols: int, size: tuple[float, float] = PANEL) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` panels on a grid ``ncols`` wide; unused panels hidden."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    figure = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = list(figure.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure, axes[:n]


def _plot_model_line(ax, x: np.ndarray, value: np.ndarray, model: str, colors, styles) -> np.ndarray:
    """One model's line over the layers, skipping layers without a value; returns the mask of drawn points."""
    present = ~np.isnan(value)
    ax.plot(x[present], value[present], marker="o", ms=3, color=colors[model], ls=styles[model], label=text(model))
    return present


def _layer_axis(ax: Axes, layers: Sequence[str]) -> None:
    ax.set_xticks(range(len(layers)), [text(layer) for layer in layers], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_xlabel("layer (input → output)")


def _series(table: pd.DataFrame, keys: dict[str, str], measure: str, layers: Sequence[str]) -> np.ndarray:
    """``value`` of ``measure`` at each of ``layers`` for the rows matching ``keys`` (NaN where absent)."""
    chosen = table[table["measure"] == measure]
    for column, value in keys.items():
        chosen = chosen[chosen[column] == value]
    by_layer = dict(zip(chosen["layer"], chosen["value"], strict=True))
    return np.array([by_layer.get(layer, np.nan) for layer in layers], dtype=np.float64)


def _stars(p: float) -> str:
    """The significance marker of a two-sided p value (:data:`STARS`; empty when p ≥ 0.05 or NaN)."""
    return next((mark for threshold, mark in STARS if p < threshold), "")


def plot_proportions(proportions: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Percent of selective units per layer, one line per model with its 95% Wilson band, a panel per category."""
    colors, styles = model_colors(models), model_linestyles(models)
    figure, axes = _panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        for model in models:
            keys = {"model": model, "category": category}
            value = 100 * _series(proportions, keys, "proportion", layers)
            low = 100 * _series(proportions, keys, "ci_low", layers)
            high = 100 * _series(proportions, keys, "ci_high", layers)
            present = _plot_model_line(ax, x, value, model, colors, styles)
            ax.fill_between(x[present], low[present], high[present], color=colors[model], alpha=0.25, lw=0)
        ax.set_title(text(category))
        ax.set_ylabel("selective units (%)")
        ax.set_ylim(bottom=0)
        _layer_axis(ax, layers)
    axes[0].legend(title="model (band: 95% CI)", frameon=False)
    return figure


def plot_specificity(result: LocalizerResult, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Box plots of CSI (top row) and d′ (bottom row) of the selective units, models side by side per layer.

    Boxes span the quartiles with the median marked; whiskers reach the 5th and 95th percentiles; outliers
    are not drawn. Layers where a model has no selective units have no box.
    """
    colors = model_colors(models)
    figure, axes = _panels(2 * len(categories), len(categories))
    width = 0.8 / len(models)
    rows = (("csi", "CSI (unitless, −1…1)"), ("dprime", "d′ (pooled SD units)"))
    for r, (attribute, label) in enumerate(rows):
        for c, category in enumerate(categories):
            ax = axes[r * len(categories) + c]
            for m, model in enumerate(models):
                data, positions = [], []
                for layer in tb.model_layers(result, model):
                    k = layer.categories.index(category)
                    values = np.asarray(getattr(layer, attribute)[k][layer.selective[k]], dtype=np.float64)
                    if values.size:
                        data.append(values)
                        positions.append(layers.index(layer.layer) - 0.4 + width * (m + 0.5))
                if data:
                    boxes = ax.boxplot(
                        data,
                        positions=positions,
                        widths=width * 0.85,
                        whis=(5, 95),
                        showfliers=False,
                        patch_artist=True,
                        manage_ticks=False,
                        medianprops={"color": "black", "lw": 1},
                    )
                    for box in boxes["boxes"]:
                        box.set(facecolor=colors[model], alpha=0.7, lw=0.6)
            ax.set_title(text(category))
            ax.set_ylabel(label)
            _layer_axis(ax, layers)
    handles = [Patch(facecolor=colors[model], alpha=0.7, label=text(model)) for model in models]
    axes[0].legend(handles=handles, title="model", frameon=False)
    return figure


def plot_feature_maps(features: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Channel and spatial distribution measures of the selective units per layer (rows: measures)."""
    colors, styles = model_colors(models), model_linestyles(models)
    measures = [m for m in FEATURE_LABELS if m in set(features["measure"])]
    figure, axes = _panels(len(measures) * len(categories), len(categories))
    x = np.arange(len(layers))
    for r, measure in enumerate(measures):
        for c, category in enumerate(categories):
            ax = axes[r * len(categories) + c]
            for model in models:
                value = _series(features, {"model": model, "category": category}, measure, layers)
                _plot_model_line(ax, x, value, model, colors, styles)
            ax.set_title(text(category))
            ax.set_ylabel(FEATURE_LABELS[measure])
            _layer_axis(ax, layers)
    axes[0].legend(title="model", frameon=False)
    return figure


def plot_density_maps(
    densities: dict[tuple[str, str, str], np.ndarray], models: list[str], layers: list[str], categories: list[str]
) -> Figure:
    """Spatial density of selective units (fraction of channels selective at each location), one row per
    model and convolutional layer, one column per category; each row shares one colour scale."""
    rows = [(model, layer) for model in models for layer in layers if (model, layer, categories[0]) in densities]
    figure = Figure(figsize=(MAP_PANEL[0] * len(categories) + 0.8, MAP_PANEL[1] * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(categories), squeeze=False)
    for r, (model, layer) in enumerate(rows):
        top = max(float(densities[model, layer, category].max()) for category in categories) or 1.0
        for c, category in enumerate(categories):
            ax = grid[r, c]
            image = ax.imshow(densities[model, layer, category], cmap="viridis", vmin=0.0, vmax=top)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(text(category))
            if c == 0:
                ax.set_ylabel(f"{text(model)}\n{text(layer)}")
        figure.colorbar(image, ax=list(grid[r]), label="fraction of\nchannels", shrink=0.9)
    return figure


def plot_overlap(
    overlap: pd.DataFrame, proportions: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]
) -> Figure:
    """Stacked bars: percent of all units whose preferred category (largest mean response) is each category."""
    colors = category_colors(categories)
    figure, axes = _panels(len(models), 2)
    for ax, model in zip(axes, models, strict=True):
        n_units = _series(proportions, {"model": model, "category": categories[0]}, "n_units", layers)
        present = ~np.isnan(n_units)
        x = np.arange(len(layers))[present]
        bottom = np.zeros(x.size)
        for category in categories:
            counts = _series(overlap, {"model": model, "category": category}, "n_preferring", layers)[present]
            share = 100 * counts / n_units[present]
            ax.bar(x, share, bottom=bottom, color=colors[category], width=0.75, label=text(category))
            bottom += share
        ax.set_title(text(model))
        ax.set_ylabel("units preferring category (%)")
        ax.set_ylim(0, 100)
        _layer_axis(ax, layers)
    axes[-1].legend(title="preferred category", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def plot_comparison(comparison: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Difference in percent of selective units (model_a − model_b, percentage points) per layer, with
    two-proportion z-test markers (* p < .05, ** p < .01, *** p < .001, two-sided, uncorrected)."""
    colors = model_colors(models)
    pairs = list(dict.fromkeys(zip(comparison["model_a"], comparison["model_b"], strict=True)))
    figure, axes = _panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        ax.axhline(0.0, color="grey", lw=0.6)
        for i, (model_a, model_b) in enumerate(pairs):
            keys = {"model_a": model_a, "model_b": model_b, "category": category}
            difference = 100 * _series(comparison, keys, "difference", layers)
            p = _series(comparison, keys, "p", layers)
            present = ~np.isnan(difference)
            ax.plot(
                x[present],
                difference[present],
                marker="o",
                ms=3,
                color=colors[model_a],
                ls=LINESTYLES[i % len(LINESTYLES)],
                label=f"{text(model_a)} − {text(model_b)}",
            )
            for xi, d, pi in zip(x[present], difference[present], p[present], strict=True):
                if _stars(pi):
                    ax.annotate(
                        _stars(pi), (xi, d), textcoords="offset points", xytext=(0, 3 if d >= 0 else -9), ha="center"
                    )
        ax.set_title(text(category))
        ax.set_ylabel("difference in selective\nunits (percentage points)")
        ax.margins(y=0.15)
        _layer_axis(ax, layers)
    axes[0].legend(title="model_a − model_b", frameon=False)
    return figure


def plot_consistency(consistency: pd.DataFrame, models: list[str], layer_lists: dict[str, list[str]]) -> Figure:
    """Spearman correlation between the RDMs of every two layers, one heatmap per model (rows) and category."""
    categories = list(dict.fromkeys(consistency["category"]))
    models = [model for model in models if model in set(consistency["model"])]
    figure = Figure(figsize=(2.4 * len(categories) + 0.8, 2.3 * len(models)), layout="constrained")
    grid = figure.subplots(len(models), len(categories), squeeze=False)
    for r, model in enumerate(models):
        layers = layer_lists[model]
        for c, category in enumerate(categories):
            ax = grid[r, c]
            matrix = tb.consistency_matrix(consistency, model, category, layers)
            image = ax.imshow(matrix, cmap="PuOr_r", vmin=-1.0, vmax=1.0)
            ticks = range(len(layers))
            ax.set_xticks(ticks, [text(layer) for layer in layers], rotation=90, fontsize=6)
            ax.set_yticks(ticks, [text(layer) for layer in layers], fontsize=6)
            ax.set_title(f"{text(model)}: {text(category)}")
        figure.colorbar(image, ax=list(grid[r]), label="Spearman ρ", shrink=0.9)
    return figure


def plot_consistency_summary(summary: pd.DataFrame, models: list[str]) -> Figure:
    """Mean off-diagonal Spearman ρ between layers' RDMs, bars per category with models side by side."""
    colors = model_colors(models)
    categories = list(dict.fromkeys(summary["category"]))
    models = [model for model in models if model in set(summary["model"])]
    figure = Figure(figsize=(max(PANEL[0], 0.5 * len(categories) * len(models) + 1.0), PANEL[1]), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(models)
    for m, model in enumerate(models):
        chosen = summary[summary["model"] == model].set_index("category")["mean_off_diagonal"]
        values = [chosen.get(category, np.nan) for category in categories]
        ax.bar(
            np.arange(len(categories)) - 0.4 + width * (m + 0.5), values, width, color=colors[model], label=text(model)
        )
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xticks(range(len(categories)), [text(c) for c in categories], rotation=45, ha="right")
    ax.set_xlabel("category")
    ax.set_ylabel("mean off-diagonal\nSpearman ρ between layers")
    ax.legend(title="model", frameon=False)
    return figure


def plot_replication(crossval: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Percent of the units selected on the training folds that are again selective on the held-out fold
    (pooled over folds), per layer; one line per model, a panel per category."""
    colors, styles = model_colors(models), model_linestyles(models)
    models = [model for model in models if model in set(crossval["model"])]
    figure, axes = _panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        for model in models:
            rate = 100 * _series(crossval, {"model": model, "category": category}, "replication_rate", layers)
            _plot_model_line(ax, x, rate, model, colors, styles)
        ax.set_title(text(category))
        ax.set_ylabel("selected units that replicate\non held-out images (%)")
        ax.set_ylim(0, 105)
        _layer_axis(ax, layers)
    axes[0].legend(title="model", frameon=False)
    return figure


def plot_crossval_inflation(
    crossval: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]
) -> Figure:
    """Mean CSI (top row) and d′ (bottom row) of the selected units, computed on the images that selected them
    (in-sample: solid line, filled markers) and on held-out images (dotted line, open markers)."""
    colors = model_colors(models)
    models = [model for model in models if model in set(crossval["model"])]
    figure, axes = _panels(2 * len(categories), len(categories))
    x = np.arange(len(layers))
    rows = (("csi", "mean CSI (unitless)"), ("dprime", "mean d′ (pooled SD units)"))
    for r, (index, label) in enumerate(rows):
        for c, category in enumerate(categories):
            ax = axes[r * len(categories) + c]
            for model in models:
                keys = {"model": model, "category": category}
                for source, ls, face in (("insample", "-", colors[model]), ("heldout", ":", "white")):
                    value = _series(crossval, keys, f"{source}_mean_{index}", layers)
                    present = ~np.isnan(value)
                    ax.plot(x[present], value[present], marker="o", ms=3.5, color=colors[model], ls=ls, mfc=face)
            ax.set_title(text(category))
            ax.set_ylabel(label)
            _layer_axis(ax, layers)
    handles = [Line2D([], [], color=colors[model], lw=4, label=text(model)) for model in models]
    handles += [
        Line2D([], [], color="black", marker="o", ms=3.5, ls="-", label="in-sample"),
        Line2D([], [], color="black", marker="o", ms=3.5, ls=":", mfc="white", label="held-out"),
    ]
    axes[0].legend(handles=handles, frameon=False)
    return figure


def plot_null(null_summary: pd.DataFrame, models: list[str], layers: list[str]) -> Figure:
    """Percent of units called selective under permuted labels per layer (bar: mean over categories and
    permutations; black tick: maximum), one panel per model, against the run's α (dashed line). Hatched bars
    with a "!" mark the layers flagged ``exceeds_alpha`` (mean > α)."""
    colors = model_colors(models)
    models = [model for model in models if model in set(null_summary["model"])]
    alpha = 100 * float(null_summary["alpha"].iloc[0])
    figure, axes = _panels(len(models), 2)
    for ax, model in zip(axes, models, strict=True):
        rows = null_summary[null_summary["model"] == model].set_index("layer")
        shown = [layer for layer in layers if layer in rows.index]
        x = np.array([layers.index(layer) for layer in shown])
        mean = 100 * rows.loc[shown, "null_proportion_mean"].to_numpy(dtype=np.float64)
        high = 100 * rows.loc[shown, "null_proportion_max"].to_numpy(dtype=np.float64)
        exceeds = rows.loc[shown, "exceeds_alpha"].to_numpy(dtype=bool)
        bars = ax.bar(x, mean, width=0.7, color=colors[model], alpha=0.8)
        for bar, flagged, top in zip(bars, exceeds, np.fmax(mean, high), strict=True):
            if flagged:
                bar.set(hatch="///", edgecolor="black", lw=0.6)
                ax.annotate(
                    "!",
                    (bar.get_x() + bar.get_width() / 2, top),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    fontweight="bold",
                    color="black",
                )
        ax.scatter(x, high, marker="_", s=60, color="black", lw=1.2, zorder=3)
        ax.axhline(alpha, color="black", ls="--", lw=0.8)
        ax.set_title(text(model))
        ax.set_ylabel("units selective under\npermuted labels (%)")
        ax.set_ylim(0, max(2 * alpha, float(np.nanmax(high, initial=0.0)) * 1.2))
        _layer_axis(ax, layers)
    axes[0].legend(
        handles=[
            Patch(facecolor="lightgrey", label="mean"),
            Line2D([], [], color="black", marker="_", ls="", ms=8, label="max"),
            Patch(facecolor="white", edgecolor="black", hatch="///", label="mean > α"),
            Line2D([], [], color="black", ls="--", lw=0.8, label=f"α = {alpha / 100:g}"),
        ],
        frameon=False,
        loc="upper left",
    )
    return figure


def plot_baseline(baseline: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Percent of selective units of each trained model (solid) and its random-weight baseline (dashed,
    lighter) per layer, a panel per category; markers above a layer: pooled two-proportion z test of the
    difference (* p < .05, ** p < .01, *** p < .001, two-sided, uncorrected)."""
    colors, styles = model_colors(models), model_linestyles(models)
    pairs = list(dict.fromkeys(zip(baseline["model_a"], baseline["model_b"], strict=True)))
    figure, axes = _panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        for trained, untrained in pairs:
            keys = {"model_a": trained, "model_b": untrained, "category": category}
            values = {
                model: 100 * _series(baseline, keys, f"proportion_{side}", layers)
                for model, side in ((trained, "a"), (untrained, "b"))
            }
            p = _series(baseline, keys, "p", layers)
            for model, value in values.items():
                _plot_model_line(ax, x, value, model, colors, styles)
            for xi, top, pi in zip(x, np.fmax(*values.values()), p, strict=True):
                if _stars(pi):
                    ax.annotate(
                        _stars(pi),
                        (xi, top),
                        textcoords="offset points",
                        xytext=(0, 3),
                        ha="center",
                        color=colors[trained],
                    )
        ax.set_title(text(category))
        ax.set_ylabel("selective units (%)")
        ax.set_ylim(bottom=0)
        ax.margins(y=0.15)
        _layer_axis(ax, layers)
    axes[0].legend(title="trained vs random weights", frameon=False)
    return figure


def plot_lesion(summary: pd.DataFrame) -> Figure:
    """Per category, the drop in decoding accuracy (percentage points) after silencing the selective units
    (one bar) and after random lesions of as many units (bar: mean, error bar: ± 1 SD over seeds); one panel
    per lesion, the lesioned category on a yellow band with its label in bold."""
    lesions = list(dict.fromkeys(zip(summary["model"], summary["layer"], summary["lesioned_category"], strict=True)))
    figure, axes = _panels(len(lesions), 2, (max(PANEL[0], 0.7 * summary["category"].nunique() + 1.2), PANEL[1]))
    for ax, (model, layer, lesioned) in zip(axes, lesions, strict=True):
        rows = summary[
            (summary["model"] == model) & (summary["layer"] == layer) & (summary["lesioned_category"] == lesioned)
        ]
        categories = list(rows["category"])
        x = np.arange(len(categories))
        ax.axhline(0.0, color="grey", lw=0.6)
        if lesioned in categories:
            ax.axvspan(
                categories.index(lesioned) - 0.5,
                categories.index(lesioned) + 0.5,
                color=LESION_COLORS["highlight"],
                alpha=0.35,
                lw=0,
            )
        ax.bar(
            x - 0.2,
            100 * rows["drop_selective"].to_numpy(dtype=np.float64),
            0.4,
            color=LESION_COLORS["selective"],
            label=f"{text(lesioned)}-selective units",
        )
        ax.bar(
            x + 0.2,
            100 * rows["drop_random_mean"].to_numpy(dtype=np.float64),
            0.4,
            yerr=100 * rows["drop_random_sd"].fillna(0.0).to_numpy(dtype=np.float64),
            color=LESION_COLORS["random"],
            error_kw={"lw": 0.8, "capsize": 2},
            label="random units (mean ± SD)",
        )
        ax.set_xticks(x, [text(category) for category in categories], rotation=45, ha="right")
        for label, category in zip(ax.get_xticklabels(), categories, strict=True):
            if category == lesioned:
                label.set_fontweight("bold")
        ax.set_xlabel("decoded category")
        ax.set_ylabel("drop in decoding accuracy\n(percentage points)")
        ax.set_title(f"{text(model)} {text(layer)}: {text(lesioned)} units silenced")
        ax.legend(title="silenced", frameon=False)
    return figure


def save_figure(figure: Figure, folder: Path, stem: str, title: str, caption: str) -> FigureFile:
    """Write ``folder/stem.png`` (200 dpi) and ``folder/stem.svg``."""
    png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
    figure.savefig(png, dpi=DPI, metadata={"Software": None})
    figure.savefig(svg, metadata={"Date": None})
    return FigureFile(stem, title, caption, png, svg)


def make_figures(
    result: LocalizerResult,
    tables: dict[str, pd.DataFrame],
    densities: dict[tuple[str, str, str], np.ndarray],
    consistency: pd.DataFrame | None,
    folder: Path,
) -> list[FigureFile]:
    """Draw and save every figure that the data allow into ``folder``; returns them in report order.

    The comparison figure needs two or more models, the density maps a ``C×H×W`` layer with element units,
    the consistency figures a ``consistency.csv``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    models, layers, categories = result.models, tb.layer_order(result), tb.categories(result)
    if consistency is not None:
        consistency = consistency[consistency["model"].isin(models)]
    saved = []
    with mpl.rc_context(STYLE):
        saved.append(
            save_figure(
                plot_proportions(tables["proportions"], models, layers, categories),
                folder,
                "proportions",
                "Proportion of selective units across layers",
                "Percent of each layer's units that are selective for each category; bands are 95% Wilson "
                "score intervals.",
            )
        )
        saved.append(
            save_figure(
                plot_specificity(result, models, layers, categories),
                folder,
                "specificity",
                "Specificity of the selective units",
                "CSI (top) and d′ (bottom) of each category's selective units. Boxes: quartiles and median; "
                "whiskers: 5th–95th percentiles; outliers not drawn.",
            )
        )
        saved.append(
            save_figure(
                plot_feature_maps(tables["feature_maps"], models, layers, categories),
                folder,
                "feature_maps",
                "Distribution of selective units over channels and space",
                "Fraction of channels holding at least one selective unit, normalised entropy and Gini "
                "coefficient of the per-channel counts, and (convolutional layers) normalised entropy and "
                "radius of gyration of the spatial density. Vector layers count each unit as its own channel.",
            )
        )
        if densities:
            saved.append(
                save_figure(
                    plot_density_maps(densities, models, layers, categories),
                    folder,
                    "density_maps",
                    "Spatial density of selective units",
                    "At each location of a convolutional layer, the fraction of channels whose unit there is "
                    "selective for the category; one colour scale per row.",
                )
            )
        saved.append(
            save_figure(
                plot_overlap(tables["overlap"], tables["proportions"], models, layers, categories),
                folder,
                "overlap",
                "Preferred category of the units",
                "Percent of all units whose largest mean response is to each category (units with equal "
                "means for all categories have no preferred category and are not counted).",
            )
        )
        if len(models) > 1:
            saved.append(
                save_figure(
                    plot_comparison(tables["comparison"], models, layers, categories),
                    folder,
                    "comparison",
                    "Model comparison",
                    "Difference in the percent of selective units between two models (model_a − model_b, "
                    "percentage points); markers: pooled two-proportion z test, two-sided, uncorrected "
                    "(* p < 0.05, ** p < 0.01, *** p < 0.001).",
                )
            )
        if consistency is not None and not consistency.empty:
            layer_lists = {model: [layer.layer for layer in tb.model_layers(result, model)] for model in models}
            saved.append(
                save_figure(
                    plot_consistency(consistency, models, layer_lists),
                    folder,
                    "consistency",
                    "Representational consistency across layers",
                    "Spearman correlation between the representational dissimilarity matrices of every two "
                    "layers (1 − Pearson r between images' response patterns).",
                )
            )
            saved.append(
                save_figure(
                    plot_consistency_summary(tb.consistency_summary(consistency), models),
                    folder,
                    "consistency_summary",
                    "Mean consistency across layers",
                    "Mean of the off-diagonal Spearman correlations between layers' RDMs, per model and category.",
                )
            )
    return saved


def make_control_figures(
    controls: tb.Controls, models: list[str], layers: list[str], categories: list[str], folder: Path
) -> dict[str, list[FigureFile]]:
    """Draw and save the figures of the validity controls that ``controls`` holds into ``folder``.

    Returns ``section -> figures`` for the sections ``crossval``, ``null``, ``baseline`` and ``lesions``, each
    present only when its control is. A lesion's figure is named after its file: ``lesions/<stem>_summary.csv``
    gives ``lesion_<stem>``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    saved: dict[str, list[FigureFile]] = {}
    with mpl.rc_context(STYLE):
        if controls.crossval is not None:
            saved["crossval"] = [
                save_figure(
                    plot_replication(controls.crossval, models, layers, categories),
                    folder,
                    "crossval_replication",
                    "Replication of the selection on held-out images",
                    "Percent of the units selected on the training folds that are again selective on the held-out "
                    "fold by the run's rule (t > 0 and FDR-corrected q < α against every other category, or "
                    "against the pooled others for --rule pooled/top), pooled over folds.",
                ),
                save_figure(
                    plot_crossval_inflation(controls.crossval, models, layers, categories),
                    folder,
                    "crossval_inflation",
                    "In-sample vs held-out specificity",
                    "Mean CSI (top) and d′ (bottom) of the selected units, computed on the same images that "
                    "selected them (in-sample, solid) and on held-out images only (dotted, open markers); the gap "
                    "is the inflation from selecting and measuring on the same data (double dipping).",
                ),
            ]
        if controls.null_summary is not None:
            saved["null"] = [
                save_figure(
                    plot_null(controls.null_summary, models, layers),
                    folder,
                    "null",
                    "Selection under permuted labels (null control)",
                    "Percent of units called selective when the category labels are permuted across images "
                    "(bars: mean over categories and permutations; ticks: maximum). It should stay below α "
                    "(dashed); hatched bars marked “!” exceed it.",
                )
            ]
        if controls.baseline is not None:
            saved["baseline"] = [
                save_figure(
                    plot_baseline(controls.baseline, models, layers, categories),
                    folder,
                    "baseline",
                    "Trained vs untrained (random weights)",
                    "Percent of selective units of each trained model (solid) and of the same architecture with "
                    "random weights (dashed, lighter); markers: pooled two-proportion z test, two-sided, "
                    "uncorrected (* p < 0.05, ** p < 0.01, *** p < 0.001).",
                )
            ]
        for path, summary in controls.lesions.items():
            lesions = dict.fromkeys(zip(summary["model"], summary["layer"], summary["lesioned_category"], strict=True))
            saved.setdefault("lesions", []).append(
                save_figure(
                    plot_lesion(summary),
                    folder,
                    f"lesion_{Path(path).name.removesuffix('_summary.csv')}",
                    "Lesion of the " + ", ".join(f"{k}-selective units of {m} {layer}" for m, layer, k in lesions),
                    "Drop in held-out category decoding accuracy from the embedding after silencing the selective "
                    "units (coloured) and after silencing as many random units of the same layer (grey: mean ± SD "
                    "over seeds); the lesioned category is highlighted.",
                )
            )
    return saved

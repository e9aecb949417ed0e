"""The report's main figures, drawn with matplotlib's object API (no pyplot, so no global backend or state).

:func:`make_figures` draws them (proportions, specificity, feature maps, density maps, overlap, comparison,
consistency); :mod:`netfloc.report.control_figures` draws those of the validity controls. The look is
:mod:`netfloc.report.style`'s.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from netfloc.analysis import run_tables as rt
from netfloc.analysis import tables as tb
from netfloc.report.style import (
    FEATURE_LABELS,
    LINESTYLES,
    MAP_PANEL,
    PANEL,
    STYLE,
    FigureFile,
    category_colors,
    layer_axis,
    model_colors,
    model_linestyles,
    panels,
    plot_model_line,
    save_figure,
    series,
    stars,
    text,
)
from netfloc.results import LocalizerResult


def plot_proportions(proportions: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Percent of selective units per layer, one line per model with its 95% Wilson band, a panel per category."""
    colors, styles = model_colors(models), model_linestyles(models)
    figure, axes = panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        for model in models:
            keys = {"model": model, "category": category}
            value = 100 * series(proportions, keys, "proportion", layers)
            low = 100 * series(proportions, keys, "ci_low", layers)
            high = 100 * series(proportions, keys, "ci_high", layers)
            present = plot_model_line(ax, x, value, model, colors, styles)
            ax.fill_between(x[present], low[present], high[present], color=colors[model], alpha=0.25, lw=0)
        ax.set_title(text(category))
        ax.set_ylabel("selective units (%)")
        ax.set_ylim(bottom=0)
        layer_axis(ax, layers)
    axes[0].legend(title="model (band: 95% CI)", frameon=False)
    return figure


def plot_specificity(result: LocalizerResult, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Box plots of CSI (top row) and d′ (bottom row) of the selective units, models side by side per layer.

    Boxes span the quartiles with the median marked; whiskers reach the 5th and 95th percentiles; outliers
    are not drawn. Layers where a model has no selective units have no box.
    """
    colors = model_colors(models)
    figure, axes = panels(2 * len(categories), len(categories))
    width = 0.8 / len(models)
    rows = (("csi", "CSI (unitless, −1…1)"), ("dprime", "d′ (pooled SD units)"))
    for r, (attribute, label) in enumerate(rows):
        for c, category in enumerate(categories):
            ax = axes[r * len(categories) + c]
            for m, model in enumerate(models):
                data, positions = [], []
                for layer in result.model_layers(model):
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
            layer_axis(ax, layers)
    handles = [Patch(facecolor=colors[model], alpha=0.7, label=text(model)) for model in models]
    axes[0].legend(handles=handles, title="model", frameon=False)
    return figure


def plot_feature_maps(features: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Channel and spatial distribution measures of the selective units per layer (rows: measures)."""
    colors, styles = model_colors(models), model_linestyles(models)
    measures = [m for m in FEATURE_LABELS if m in set(features["measure"])]
    figure, axes = panels(len(measures) * len(categories), len(categories))
    x = np.arange(len(layers))
    for r, measure in enumerate(measures):
        for c, category in enumerate(categories):
            ax = axes[r * len(categories) + c]
            for model in models:
                value = series(features, {"model": model, "category": category}, measure, layers)
                plot_model_line(ax, x, value, model, colors, styles)
            ax.set_title(text(category))
            ax.set_ylabel(FEATURE_LABELS[measure])
            layer_axis(ax, layers)
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
    figure, axes = panels(len(models), 2)
    for ax, model in zip(axes, models, strict=True):
        n_units = series(proportions, {"model": model, "category": categories[0]}, "n_units", layers)
        present = ~np.isnan(n_units)
        x = np.arange(len(layers))[present]
        bottom = np.zeros(x.size)
        for category in categories:
            counts = series(overlap, {"model": model, "category": category}, "n_preferring", layers)[present]
            share = 100 * counts / n_units[present]
            ax.bar(x, share, bottom=bottom, color=colors[category], width=0.75, label=text(category))
            bottom += share
        ax.set_title(text(model))
        ax.set_ylabel("units preferring category (%)")
        ax.set_ylim(0, 100)
        layer_axis(ax, layers)
    axes[-1].legend(title="preferred category", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def plot_comparison(comparison: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Difference in percent of selective units (model_a − model_b, percentage points) per layer, with
    two-proportion z-test markers (* p < .05, ** p < .01, *** p < .001, two-sided, uncorrected)."""
    colors = model_colors(models)
    pairs = list(dict.fromkeys(zip(comparison["model_a"], comparison["model_b"], strict=True)))
    figure, axes = panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        ax.axhline(0.0, color="grey", lw=0.6)
        for i, (model_a, model_b) in enumerate(pairs):
            keys = {"model_a": model_a, "model_b": model_b, "category": category}
            difference = 100 * series(comparison, keys, "difference", layers)
            p = series(comparison, keys, "p", layers)
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
                if stars(pi):
                    ax.annotate(
                        stars(pi), (xi, d), textcoords="offset points", xytext=(0, 3 if d >= 0 else -9), ha="center"
                    )
        ax.set_title(text(category))
        ax.set_ylabel("difference in selective\nunits (percentage points)")
        ax.margins(y=0.15)
        layer_axis(ax, layers)
    axes[0].legend(title="model_a − model_b", frameon=False)
    return figure


SELECTIONS = ("in-sample", "held-out")


def consistency_panels(consistency: pd.DataFrame, models: list[str]) -> list[tuple[str, str]]:
    """The (model, selection) pairs that ``consistency`` lists, models in ``models`` order and ``in-sample``
    before ``held-out`` (:mod:`netfloc.analysis.consistency`); selections of another name follow in table order."""
    listed = set(zip(consistency["model"], consistency["selection"], strict=True))
    order = list(SELECTIONS) + [s for s in dict.fromkeys(consistency["selection"]) if s not in SELECTIONS]
    return [(model, selection) for model in models for selection in order if (model, selection) in listed]


def plot_consistency(consistency: pd.DataFrame, models: list[str], layer_lists: dict[str, list[str]]) -> Figure:
    """Spearman correlation between the RDMs of every two layers: one heatmap per category (columns) and per
    model and selection (rows: in-sample, then held-out where the run cross-validated)."""
    categories = list(dict.fromkeys(consistency["category"]))
    rows = consistency_panels(consistency, models)
    figure = Figure(figsize=(2.4 * len(categories) + 0.8, 2.3 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(categories), squeeze=False)
    for r, (model, selection) in enumerate(rows):
        layers = layer_lists[model]
        for c, category in enumerate(categories):
            ax = grid[r, c]
            matrix = rt.consistency_matrix(consistency, model, category, layers, selection)
            image = ax.imshow(matrix, cmap="PuOr_r", vmin=-1.0, vmax=1.0)
            ticks = range(len(layers))
            ax.set_xticks(ticks, [text(layer) for layer in layers], rotation=90, fontsize=6)
            ax.set_yticks(ticks, [text(layer) for layer in layers], fontsize=6)
            ax.set_title(f"{text(model)} ({selection}): {text(category)}")
        figure.colorbar(image, ax=list(grid[r]), label="Spearman ρ", shrink=0.9)
    return figure


def plot_consistency_summary(summary: pd.DataFrame, models: list[str]) -> Figure:
    """Mean off-diagonal Spearman ρ between layers' RDMs: bars per category, one bar per model and selection
    (colour: model; hatched: held-out selection)."""
    colors = model_colors(models)
    categories = list(dict.fromkeys(summary["category"]))
    bars = consistency_panels(summary, models)
    figure = Figure(figsize=(max(PANEL[0], 0.5 * len(categories) * len(bars) + 1.0), PANEL[1]), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / max(len(bars), 1)
    for b, (model, selection) in enumerate(bars):
        chosen = summary[(summary["model"] == model) & (summary["selection"] == selection)]
        by_category = chosen.set_index("category")["mean_off_diagonal"]
        values = [float(by_category.get(category, np.nan)) for category in categories]
        ax.bar(
            np.arange(len(categories)) - 0.4 + width * (b + 0.5),
            values,
            width,
            color=colors[model],
            hatch="//" if selection != "in-sample" else None,
            edgecolor="white" if selection != "in-sample" else None,
            label=f"{text(model)} ({selection})",
        )
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xticks(range(len(categories)), [text(c) for c in categories], rotation=45, ha="right")
    ax.set_xlabel("category")
    ax.set_ylabel("mean off-diagonal\nSpearman ρ between layers")
    ax.legend(title="model (selection)", frameon=False)
    return figure


def make_figures(
    result: LocalizerResult,
    tables: dict[str, pd.DataFrame],
    densities: dict[tuple[str, str, str], np.ndarray],
    consistency: pd.DataFrame | None,
    folder: Path,
) -> list[FigureFile]:
    """Draw and save every figure that the data allow into ``folder``; returns them in report order.

    The comparison figure needs a pair of models to compare (two checkpoints of one series are no such pair,
    :func:`~netfloc.analysis.tables.model_pairs`), the density maps a ``C×H×W`` layer with element units,
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
        if not tables["comparison"].empty:
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
            layer_lists = {model: [layer.layer for layer in result.model_layers(model)] for model in models}
            saved.append(
                save_figure(
                    plot_consistency(consistency, models, layer_lists),
                    folder,
                    "consistency",
                    "Representational consistency across layers",
                    "Spearman correlation between the representational dissimilarity matrices of every two "
                    "layers (1 − Pearson r between images' response patterns); in-sample: populations selected on "
                    "all images, held-out: selected on the other folds, RDMs on each fold's images.",
                )
            )
            saved.append(
                save_figure(
                    plot_consistency_summary(rt.consistency_summary(consistency), models),
                    folder,
                    "consistency_summary",
                    "Mean consistency across layers",
                    "Mean of the off-diagonal Spearman correlations between layers' RDMs, per model, selection "
                    "and category (hatched: populations selected without the images their RDMs are built on).",
                )
            )
    return saved

"""Figures of the validity controls: held-out localizer, null control, trained vs untrained, lesions."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from netfloc.analysis import run_tables as rt
from netfloc.report.style import (
    LESION_COLORS,
    PANEL,
    STYLE,
    FigureFile,
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


def plot_replication(crossval: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]) -> Figure:
    """Percent of the units selected on the training folds that are again selective on the held-out fold
    (pooled over folds), per layer; one line per model, a panel per category."""
    colors, styles = model_colors(models), model_linestyles(models)
    models = [model for model in models if model in set(crossval["model"])]
    figure, axes = panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        for model in models:
            rate = 100 * series(crossval, {"model": model, "category": category}, "replication_rate", layers)
            plot_model_line(ax, x, rate, model, colors, styles)
        ax.set_title(text(category))
        ax.set_ylabel("selected units that replicate\non held-out images (%)")
        ax.set_ylim(0, 105)
        layer_axis(ax, layers)
    axes[0].legend(title="model", frameon=False)
    return figure


def plot_crossval_inflation(
    crossval: pd.DataFrame, models: list[str], layers: list[str], categories: list[str]
) -> Figure:
    """Mean CSI (top row) and d′ (bottom row) of the selected units, computed on the images that selected them
    (in-sample: solid line, filled markers) and on held-out images (dotted line, open markers)."""
    colors = model_colors(models)
    models = [model for model in models if model in set(crossval["model"])]
    figure, axes = panels(2 * len(categories), len(categories))
    x = np.arange(len(layers))
    rows = (("csi", "mean CSI (unitless)"), ("dprime", "mean d′ (pooled SD units)"))
    for r, (index, label) in enumerate(rows):
        for c, category in enumerate(categories):
            ax = axes[r * len(categories) + c]
            for model in models:
                keys = {"model": model, "category": category}
                for source, ls, face in (("insample", "-", colors[model]), ("heldout", ":", "white")):
                    value = series(crossval, keys, f"{source}_mean_{index}", layers)
                    present = ~np.isnan(value)
                    ax.plot(x[present], value[present], marker="o", ms=3.5, color=colors[model], ls=ls, mfc=face)
            ax.set_title(text(category))
            ax.set_ylabel(label)
            layer_axis(ax, layers)
    handles = [Line2D([], [], color=colors[model], lw=4, label=text(model)) for model in models]
    handles += [
        Line2D([], [], color="black", marker="o", ms=3.5, ls="-", label="in-sample"),
        Line2D([], [], color="black", marker="o", ms=3.5, ls=":", mfc="white", label="held-out"),
    ]
    axes[0].legend(handles=handles, frameon=False)
    return figure


def plot_null(null_summary: pd.DataFrame, models: list[str], layers: list[str]) -> Figure:
    """Family-wise null rate per layer (bar: percent of permutation × category cells with any selective unit;
    black tick: one-sided 95% Clopper–Pearson upper bound), one panel per model, against the run's α (dashed).
    Hatched bars with a "!" mark the layers flagged ``exceeds_alpha`` (lower bound > α)."""
    colors = model_colors(models)
    models = [model for model in models if model in set(null_summary["model"])]
    alpha = 100 * float(null_summary["alpha"].iloc[0])
    figure, axes = panels(len(models), 2)
    for ax, model in zip(axes, models, strict=True):
        rows = null_summary[null_summary["model"] == model].set_index("layer")
        shown = [layer for layer in layers if layer in rows.index]
        x = np.array([layers.index(layer) for layer in shown])
        rate = 100 * rows.loc[shown, "familywise_rate"].to_numpy(dtype=np.float64)
        high = 100 * rows.loc[shown, "familywise_ci_high"].to_numpy(dtype=np.float64)
        exceeds = rows.loc[shown, "exceeds_alpha"].to_numpy(dtype=bool)
        bars = ax.bar(x, rate, width=0.7, color=colors[model], alpha=0.8)
        for bar, flagged, top in zip(bars, exceeds, np.fmax(rate, high), strict=True):
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
        ax.set_ylabel("cells with any selective unit\nunder permuted labels (%)")
        ax.set_ylim(0, min(105.0, max(2 * alpha, float(np.nanmax(high, initial=0.0)) * 1.2)))
        layer_axis(ax, layers)
    axes[0].legend(
        handles=[
            Patch(facecolor="lightgrey", label="family-wise rate"),
            Line2D([], [], color="black", marker="_", ls="", ms=8, label="95% upper bound"),
            Patch(facecolor="white", edgecolor="black", hatch="///", label="significantly > α"),
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
    figure, axes = panels(len(categories), 3)
    x = np.arange(len(layers))
    for ax, category in zip(axes, categories, strict=True):
        for trained, untrained in pairs:
            keys = {"model_a": trained, "model_b": untrained, "category": category}
            values = {
                model: 100 * series(baseline, keys, f"proportion_{side}", layers)
                for model, side in ((trained, "a"), (untrained, "b"))
            }
            p = series(baseline, keys, "p", layers)
            for model, value in values.items():
                plot_model_line(ax, x, value, model, colors, styles)
            for xi, top, pi in zip(x, np.fmax(*values.values()), p, strict=True):
                if stars(pi):
                    ax.annotate(
                        stars(pi),
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
        layer_axis(ax, layers)
    axes[0].legend(title="trained vs random weights", frameon=False)
    return figure


def plot_lesion(summary: pd.DataFrame) -> Figure:
    """Per category, the drop in decoding accuracy (percentage points) after silencing the selective units
    (one bar) and after random lesions of as many units (bar: mean, error bar: ± 1 SD over seeds); one panel
    per lesion, the lesioned category on a yellow band with its label in bold."""
    lesions = list(dict.fromkeys(zip(summary["model"], summary["layer"], summary["lesioned_category"], strict=True)))
    figure, axes = panels(len(lesions), 2, (max(PANEL[0], 0.7 * summary["category"].nunique() + 1.2), PANEL[1]))
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


def make_control_figures(
    controls: rt.Controls, models: list[str], layers: list[str], categories: list[str], folder: Path
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
                    "Percent of (permutation, category) cells in which any unit is called selective when the "
                    "category labels are permuted across images — the family-wise error that FDR control bounds by "
                    "α (dashed); ticks: one-sided 95% Clopper–Pearson upper bounds. Hatched bars marked “!” are "
                    "significantly above α (lower bound > α).",
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

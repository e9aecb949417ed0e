"""The look of the report's figures: palettes, panel sizes, shared axes helpers and saving.

Every figure is saved as PNG (200 dpi) and SVG (text kept as text) into ``OUT/figures/``. Panels are about
3.5 × 2.6 in, the width of one paper column, with 7–9 pt text. Colours are colour-blind safe: models take
the Okabe–Ito palette (Okabe & Ito 2008, *Color Universal Design*), categories Paul Tol's "muted" palette
(Tol 2021, *Colour Schemes*, SRON/EPS/TN/09-002), maps viridis (sequential) and PuOr (diverging); a model
has the same colour in every figure (:func:`model_colors`). A random-weight baseline ``X-random`` of a model
``X`` of the same run (``--baseline random``) takes a lighter tint of ``X``'s colour and, in line plots, a
dashed line (:func:`model_linestyles`), so that trained and untrained versions read as a pair. The checkpoints
``LABEL@STEP`` of a series (``netfloc run --series``) share one colour, from a light tint at the first step to the
full colour at the last (:data:`SERIES_TINT`), so that training reads as a gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from netfloc.analysis import tables as tb

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
#: How far the first checkpoint of a series is mixed towards white (the last takes the full colour).
SERIES_TINT = 0.75
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


def tint(color: str, amount: float) -> str:
    """``color`` mixed towards white: ``rgb' = rgb + amount · (1 − rgb)``."""
    rgb = np.array(to_rgb(color))
    return to_hex(rgb + amount * (1.0 - rgb))


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """Colour of each model: Okabe–Ito by position among the models that are not a baseline (cycles after 8), the
    checkpoints of a series counting as one, tinted from :data:`SERIES_TINT` (first step) to 0 (last step); a
    baseline ``X-random`` of a model ``X`` in ``models`` gets ``X``'s colour tinted by :data:`BASELINE_TINT`."""
    trained_of = {untrained: trained for trained, untrained in tb.baseline_pairs(models)}
    own = [model for model in models if model not in trained_of]
    family = {model: (tb.checkpoint_of(model) or (model,))[0] for model in own}
    base = {key: OKABE_ITO[i % len(OKABE_ITO)] for i, key in enumerate(dict.fromkeys(family.values()))}
    steps: dict[str, list[int]] = {}
    for model in own:
        if (checkpoint := tb.checkpoint_of(model)) is not None:
            steps.setdefault(checkpoint[0], []).append(checkpoint[1])
    colors = {}
    for model in own:
        checkpoint = tb.checkpoint_of(model)
        if checkpoint is None:
            colors[model] = base[model]
        else:
            order = sorted(steps[checkpoint[0]])
            rank = order.index(checkpoint[1]) / max(1, len(order) - 1)
            colors[model] = tint(base[checkpoint[0]], SERIES_TINT * (1.0 - rank) if len(order) > 1 else 0.0)

    def color(model: str) -> str:
        return colors[model] if model in colors else tint(color(trained_of[model]), BASELINE_TINT)

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


def panels(n: int, ncols: int, size: tuple[float, float] = PANEL) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` panels on a grid ``ncols`` wide; unused panels hidden."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    figure = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = list(figure.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure, axes[:n]


def plot_model_line(ax, x: np.ndarray, value: np.ndarray, model: str, colors, styles) -> np.ndarray:
    """One model's line over the layers, skipping layers without a value; returns the mask of drawn points."""
    present = ~np.isnan(value)
    ax.plot(x[present], value[present], marker="o", ms=3, color=colors[model], ls=styles[model], label=text(model))
    return present


def layer_axis(ax: Axes, layers: Sequence[str]) -> None:
    ax.set_xticks(range(len(layers)), [text(layer) for layer in layers], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_xlabel("layer (input → output)")


def series(table: pd.DataFrame, keys: dict[str, str], measure: str, layers: Sequence[str]) -> np.ndarray:
    """``value`` of ``measure`` at each of ``layers`` for the rows matching ``keys`` (NaN where absent)."""
    chosen = table[table["measure"] == measure]
    for column, value in keys.items():
        chosen = chosen[chosen[column] == value]
    by_layer = dict(zip(chosen["layer"], chosen["value"], strict=True))
    return np.array([by_layer.get(layer, np.nan) for layer in layers], dtype=np.float64)


def stars(p: float) -> str:
    """The significance marker of a two-sided p value (:data:`STARS`; empty when p ≥ 0.05 or NaN)."""
    return next((mark for threshold, mark in STARS if p < threshold), "")


def save_figure(figure: Figure, folder: Path, stem: str, title: str, caption: str) -> FigureFile:
    """Write ``folder/stem.png`` (200 dpi) and ``folder/stem.svg``."""
    png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
    figure.savefig(png, dpi=DPI, metadata={"Software": None})
    figure.savefig(svg, metadata={"Date": None})
    return FigureFile(stem, title, caption, png, svg)

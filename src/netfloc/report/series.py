"""The report's training-dynamics section: selectivity over the checkpoints of a series (``netfloc run --series``).

Figures (from the tables of :mod:`netfloc.analysis.series`): per series and category a layer × step heatmap of the
percent of selective units, with each layer's emergence step framed, and the same as lines over steps, one line
per layer (colour: depth, viridis), the emergence step marked. Checkpoints are columns in step order; the line
plot's step axis is logarithmic (symlog, linear below the first positive step) when the steps span two decades
or more, as checkpoints saved at exponentially spaced steps do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from netfloc.report.findings import percent
from netfloc.report.html import Section
from netfloc.report.style import STYLE, FigureFile, save_figure, text

#: At most this many step labels on an axis (every n-th checkpoint is labelled beyond it).
MAX_STEP_TICKS = 10
#: Steps spanning this ratio (last / first positive step) or more get a logarithmic (symlog) axis.
LOG_SPAN = 100
NULL_WORDS = {
    "permutation": "the largest proportion over the run's label permutations (--null) at each step",
    "first_step": "the proportion at the series' first checkpoint",
}
INTRO = (
    "Each checkpoint of a series was localized like any model of the run (label SERIES@STEP). The heatmaps show the "
    "percent of each layer's units selective for each category at every checkpoint, the lines the same over "
    "steps. A layer's emergence step (framed, or a large marker) is the first step from which its proportion stays "
    "above the null at every later checkpoint; the null is the largest proportion over the run's label permutations "
    "at each step when the run has --null, else the proportion at the series' first checkpoint (step 0, the "
    "initialisation, when the series has it). Stability: the Jaccard index |S ∩ S′| / |S ∪ S′| of the selective "
    "units of consecutive checkpoints (empty when both sets are empty)."
)


def _order(series: pd.DataFrame, name: str) -> tuple[list[int], list[str]]:
    """Steps (ascending) and layers (depth order, as the table lists them) of one series."""
    chosen = series[series["series"] == name]
    return sorted({int(step) for step in chosen["step"]}), list(dict.fromkeys(chosen["layer"]))


def _matrix(series: pd.DataFrame, name: str, category: str, steps: list[int], layers: list[str]) -> np.ndarray:
    """Percent of selective units, layers × steps (NaN where a checkpoint lacks the layer)."""
    chosen = series[(series["series"] == name) & (series["category"] == category)]
    values = {(row.layer, int(row.step)): 100 * float(row.proportion) for row in chosen.itertuples(index=False)}
    return np.array([[values.get((layer, step), np.nan) for step in steps] for layer in layers])


def _emerged(emergence: pd.DataFrame, name: str, category: str) -> dict[str, int]:
    """Layer -> emergence step of one series and category (layers without emergence left out)."""
    chosen = emergence[(emergence["series"] == name) & (emergence["category"] == category)]
    return {
        row.layer: int(row.emergence_step) for row in chosen.itertuples(index=False) if pd.notna(row.emergence_step)
    }


def _step_ticks(steps: Sequence[int]) -> list[int]:
    """Indices of the steps to label: all, or every n-th (first and last included) beyond :data:`MAX_STEP_TICKS`."""
    if len(steps) <= MAX_STEP_TICKS:
        return list(range(len(steps)))
    stride = -(-len(steps) // MAX_STEP_TICKS)
    return sorted({*range(0, len(steps), stride), len(steps) - 1})


def layer_colors(layers: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Viridis by depth: the first layer dark blue, the last yellow-green."""
    cmap = mpl.colormaps["viridis"]
    return {layer: cmap(0.9 * i / max(1, len(layers) - 1)) for i, layer in enumerate(layers)}


def plot_series_heatmaps(
    series: pd.DataFrame, emergence: pd.DataFrame, names: list[str], categories: list[str]
) -> Figure:
    """Percent of selective units per layer (rows, first layer at the bottom) and checkpoint (columns, in step
    order), a row of panels per series and a panel per category, one colour scale; frames: emergence steps."""
    steps_of = {name: _order(series, name) for name in names}
    n_steps = max(len(steps) for steps, _ in steps_of.values())
    n_layers = max(len(layers) for _, layers in steps_of.values())
    size = (max(1.9, 0.16 * n_steps + 1.0), max(1.5, 0.22 * n_layers + 0.9))
    figure = Figure(figsize=(size[0] * len(categories) + 0.9, size[1] * len(names)), layout="constrained")
    grid = figure.subplots(len(names), len(categories), squeeze=False)
    top = max(float(np.nanmax(100 * series["proportion"].to_numpy(dtype=np.float64), initial=0.0)), 1e-9)
    for r, name in enumerate(names):
        steps, layers = steps_of[name]
        for c, category in enumerate(categories):
            ax = grid[r, c]
            image = ax.imshow(
                _matrix(series, name, category, steps, layers),
                cmap="viridis",
                vmin=0.0,
                vmax=top,
                origin="lower",
                aspect="auto",
                interpolation="nearest",
            )
            for layer, step in _emerged(emergence, name, category).items():
                xy = (steps.index(step) - 0.5, layers.index(layer) - 0.5)
                ax.add_patch(Rectangle(xy, 1, 1, fill=False, edgecolor="#D55E00", lw=1.4))
            ticks = _step_ticks(steps)
            ax.set_xticks(ticks, [str(steps[i]) for i in ticks], rotation=90)
            ax.set_yticks(range(len(layers)), [text(layer) for layer in layers] if c == 0 else [])
            ax.set_xlabel("step")
            ax.set_title(f"{text(name)}: {text(category)}")
    figure.colorbar(image, ax=list(grid.ravel()), label="selective units (%)", shrink=0.9)
    return figure


def plot_series_lines(series: pd.DataFrame, emergence: pd.DataFrame, names: list[str], categories: list[str]) -> Figure:
    """Percent of selective units over steps, one line per layer (viridis by depth), a panel per series (rows)
    and category, one y scale per series; a large marker with a black edge at each layer's emergence step."""
    figure = Figure(figsize=(2.6 * len(categories) + 1.2, 2.2 * len(names)), layout="constrained")
    grid = figure.subplots(len(names), len(categories), squeeze=False)
    for r, name in enumerate(names):
        steps, layers = _order(series, name)
        colors = layer_colors(layers)
        x = np.array(steps, dtype=np.float64)
        matrices = [_matrix(series, name, category, steps, layers) for category in categories]
        top = max(float(np.nanmax(values, initial=0.0)) for values in matrices) or 1.0
        for c, (category, values) in enumerate(zip(categories, matrices, strict=True)):
            ax = grid[r, c]
            emerged = _emerged(emergence, name, category)
            for layer, row in zip(layers, values, strict=True):
                present = ~np.isnan(row)
                ax.plot(x[present], row[present], marker="o", ms=2.5, lw=1.1, color=colors[layer], label=text(layer))
                if layer in emerged:
                    i = steps.index(emerged[layer])
                    ax.plot(x[i], row[i], marker="o", ms=6.5, mfc=colors[layer], mec="black", mew=1.0, ls="")
            positive = [step for step in steps if step > 0]
            if positive and steps[-1] >= LOG_SPAN * positive[0]:
                ax.set_xscale("symlog", linthresh=positive[0])
            ax.set_ylim(0, 1.08 * top)
            ax.set_xlabel("step")
            ax.set_title(f"{text(name)}: {text(category)}")
            if c == 0:
                ax.set_ylabel("selective units (%)")
    handles = [Line2D([], [], marker="o", ms=6.5, mfc="white", mec="black", ls="", label="emergence")]
    handles = grid[0, 0].get_legend_handles_labels()[0] + handles
    figure.legend(handles=handles, title="layer", loc="outside right upper", frameon=False)
    return figure


def make_series_figures(tables: dict[str, pd.DataFrame], categories: list[str], folder: Path) -> list[FigureFile]:
    """Draw and save the heatmaps and the lines of every series of ``tables`` (:func:`series_tables`) into
    ``folder``; none without series."""
    if not tables:
        return []
    series, emergence = tables["series"], tables["series_emergence"]
    names = list(dict.fromkeys(series["series"]))
    folder.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(STYLE):
        return [
            save_figure(
                plot_series_heatmaps(series, emergence, names, categories),
                folder,
                "series_heatmap",
                "Selective units over training: layer × step",
                "Percent of each layer's units selective for each category at every checkpoint (columns in step "
                "order; first layer at the bottom). Orange frames: the layer's emergence step, from which its "
                "proportion stays above the null.",
            ),
            save_figure(
                plot_series_lines(series, emergence, names, categories),
                folder,
                "series_lines",
                "Selective units over training, per layer",
                "Percent of selective units at each checkpoint, one line per layer (dark: early, light: late); "
                "large markers with a black edge: emergence steps.",
            ),
        ]


def series_section(tables: dict[str, pd.DataFrame], figures: list[FigureFile]) -> list[Section]:
    """The "Training dynamics" section (empty list without series)."""
    if not tables:
        return []
    files = {f"{name}.csv": tables[name] for name in ("series_emergence", "series_stability", "series")}
    return [Section("series", "Training dynamics", INTRO, figures, files)]


def series_findings(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Per series: its checkpoints and null, then per category the layers in order of emergence."""
    if not tables:
        return []
    series, emergence = tables["series"], tables["series_emergence"]
    sentences = []
    for name in dict.fromkeys(series["series"]):
        steps, _ = _order(series, name)
        rows = emergence[emergence["series"] == name]
        nulls = " / ".join(NULL_WORDS[kind] for kind in dict.fromkeys(rows["null"]))
        sentences.append(
            f"Series {name}: {len(steps)} checkpoints, steps {steps[0]}–{steps[-1]}; a layer's selectivity emerges at "
            f"the first step from which its proportion of selective units stays above {nulls}."
        )
        last = series[(series["series"] == name) & (series["step"] == steps[-1])].set_index(["layer", "category"])
        for category, group in rows.groupby("category", sort=False):
            emerged = group[group["emergence_step"].notna()].sort_values("emergence_step", kind="stable")
            parts = []
            for row in emerged.itertuples(index=False):
                final = last.loc[(row.layer, category)]
                parts.append(
                    f"{row.layer} from step {int(row.emergence_step)} ({int(final['n_selective'])} of "
                    f"{int(final['n_units'])} units, {percent(row.final_proportion)}, at step {row.final_step})"
                )
            never = [str(layer) for layer in group.loc[group["emergence_step"].isna(), "layer"]]
            if never:
                parts.append(f"not above the null by the last step in {', '.join(never)}")
            sentences.append(f"Series {name}, {category}-selective units: " + "; ".join(parts) + ".")
    return sentences

"""The brain comparison's folder, figures and report section.

``netfloc brain`` writes its folder (default ``RUN_DIR/brain``) atomically with :func:`save_brain`:
``brain.csv`` (the contract, :data:`~netfloc.analysis.brain.BRAIN_COLUMNS`), ``brain_rsa_corr.csv`` (the same rsa
rows with Pearson r as the RDM comparison), ``brain.json`` (what was compared; it marks the folder as netfloc's, so
``--force`` replaces only such a folder) and ``figures/brain_<method>_matrix`` and ``figures/brain_<method>_layers``
(PNG + SVG). ``netfloc report RUN_DIR`` adds a "Brain comparison" section when ``RUN_DIR/brain/brain.csv`` exists
(:func:`brain_section`), drawing the same figures into the report's ``figures/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from netfloc.analysis.brain import BRAIN_COLUMNS, METHODS, BrainResult
from netfloc.analysis.brain_data import ALL
from netfloc.errors import NetflocError
from netfloc.files import atomic_directory, marker_owner
from netfloc.report.html import Section
from netfloc.report.style import STYLE, FigureFile, category_colors, layer_axis, panels, save_figure, text
from netfloc.results.run import BRAIN_DIR, read_table, write_json

BRAIN_TABLE = "brain.csv"
BRAIN_CORR_TABLE = "brain_rsa_corr.csv"
BRAIN_MANIFEST = "brain.json"
SCORE_LABELS = {"rsa": "RSA: Spearman ρ_a between RDMs", "encoding": "encoding: held-out Pearson r"}
INTRO = (
    "Each population of a layer (its units selective for a category, and all of its units) is compared with each "
    "region of interest of each subject on the images they share. RSA: Spearman ρ_a between the population's and the "
    "ROI's representational dissimilarity matrices (1 − Pearson r between images' patterns); the ceiling is the noise "
    "ceiling across subjects (lower bound: each subject against the others' mean RDM; upper: against all subjects' "
    "mean). Encoding: cross-validated ridge regression from the population's responses to each voxel, mean held-out "
    "Pearson r over the ROI's voxels; the ceiling is √ of the Spearman–Brown split-half reliability of the repeats. "
    "Intervals: 95% bootstrap over images; p_random: share of random unit sets of the same size from the same layer "
    "scoring at least as high (+1 corrected). Values below are averaged over subjects; brain.csv has every subject."
)


def save_brain(result: BrainResult, out: Path, force: bool) -> Path:
    """Write the brain folder ``out`` atomically (module docstring); returns ``out``."""
    with atomic_directory(Path(out), force, marker_owner(BRAIN_MANIFEST)) as staging:
        result.table.to_csv(staging / BRAIN_TABLE, index=False)
        if not result.rsa_corr.empty:
            result.rsa_corr.to_csv(staging / BRAIN_CORR_TABLE, index=False)
        make_brain_figures(result.table, staging / "figures")
        write_json(staging / BRAIN_MANIFEST, result.manifest)
    return Path(out)


def read_brain(folder: Path) -> tuple[pd.DataFrame, list[str]] | None:
    """``folder/brain.csv`` (columns checked, names as text) and the notes of ``brain.json``; None without a table."""
    path = folder / BRAIN_TABLE
    if not path.is_file():
        return None
    names = ("model", "layer", "population", "roi", "subject", "method")
    table = read_table(path, dtype={column: str for column in names}, keep_default_na=False, na_values=[""])
    problem = f"{path} is not a netfloc brain table (columns {', '.join(BRAIN_COLUMNS)}); rerun netfloc brain"
    if any(column not in table.columns for column in BRAIN_COLUMNS) or not set(table["method"]) <= set(METHODS):
        raise NetflocError(problem)
    numbers = [column for column in BRAIN_COLUMNS if column not in names]
    try:
        table[numbers] = table[numbers].apply(pd.to_numeric)
    except (ValueError, TypeError):
        raise NetflocError(problem) from None
    if not np.isfinite(table["score"].to_numpy(dtype=np.float64)).all():
        raise NetflocError(problem)
    try:
        notes = json.loads((folder / BRAIN_MANIFEST).read_text(encoding="utf-8")).get("notes", [])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        notes = None
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise NetflocError(f"{folder / BRAIN_MANIFEST} is missing or damaged; rerun netfloc brain")
    return table[BRAIN_COLUMNS], notes


def subject_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, layer, population, ROI and method: mean over subjects of score, ceiling and normalized score, the
    largest p_random, and ``best`` (the population with the highest mean score for that model, layer, ROI, method)."""
    keys = ["model", "layer", "roi", "method", "population", "n_units"]
    grouped = table.groupby(keys, sort=False)
    means = grouped[["score", "ceiling_high", "normalized"]].mean()
    means["p_random_max"] = grouped["p_random"].max()
    means["subjects"] = grouped.size()
    means = means.reset_index()
    top = means.groupby(["model", "layer", "roi", "method"], sort=False)["score"].transform("max")
    means["best"] = means["score"] == top
    return means


def _order(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values))


def _populations(table: pd.DataFrame) -> list[str]:
    return [name for name in _order(table["population"]) if name != ALL] + [ALL]


def plot_matrix(table: pd.DataFrame, method: str) -> Figure:
    """Population × ROI matrix of the subject-mean score, a panel per model and layer; a box marks each ROI's best
    population."""
    chosen = subject_means(table[table["method"] == method])
    groups = _order(zip(chosen["model"], chosen["layer"], strict=True))
    populations, rois = _populations(chosen), _order(chosen["roi"])
    lowest, highest = float(np.nanmin(chosen["score"])), float(np.nanmax(chosen["score"]))
    figure, axes = panels(len(groups), 3, (0.9 + 0.55 * len(rois), 0.9 + 0.3 * len(populations)))
    for ax, (model, layer) in zip(axes, groups, strict=True):
        panel = chosen[(chosen["model"] == model) & (chosen["layer"] == layer)]
        scores = panel.pivot_table(index="population", columns="roi", values="score").reindex(
            index=populations, columns=rois
        )
        image = ax.imshow(scores.to_numpy(), cmap="viridis", vmin=lowest, vmax=highest, aspect="auto")
        for column in range(len(rois)):
            values = scores.iloc[:, column].to_numpy()
            if np.isfinite(values).any():
                row = int(np.nanargmax(values))
                ax.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, ec="white", lw=1.5))
        ax.set_xticks(range(len(rois)), [text(roi) for roi in rois], rotation=45, ha="right")
        ax.set_yticks(range(len(populations)), [text(name) for name in populations])
        ax.set_title(text(f"{model} · {layer}"))
        ax.spines[:].set_visible(False)
    figure.colorbar(image, ax=axes, label=SCORE_LABELS[method], shrink=0.8)
    return figure


def plot_layers(table: pd.DataFrame, method: str) -> Figure:
    """Subject-mean score of each population across layers, a panel per model and ROI, over the ROI's ceiling band
    (mean ceiling_low to ceiling_high over subjects)."""
    chosen = table[table["method"] == method]
    means = subject_means(chosen)
    groups = _order(zip(means["model"], means["roi"], strict=True))
    populations = _populations(means)
    colors = category_colors([name for name in populations if name != ALL])
    figure, axes = panels(len(groups), 3)
    for ax, (model, roi) in zip(axes, groups, strict=True):
        layers = _order(means.loc[means["model"] == model, "layer"])
        rows = chosen[(chosen["model"] == model) & (chosen["roi"] == roi)]
        low, high = rows["ceiling_low"].mean(), rows["ceiling_high"].mean()
        if np.isfinite(high):
            ax.axhspan(low, high, color="0.85", lw=0, label="noise ceiling")
        for name in populations:
            panel = means[(means["model"] == model) & (means["roi"] == roi) & (means["population"] == name)]
            by_layer = dict(zip(panel["layer"], panel["score"], strict=True))
            value = np.array([by_layer.get(layer, np.nan) for layer in layers], dtype=np.float64)
            present = np.isfinite(value)
            style = {"color": "black", "ls": "--"} if name == ALL else {"color": colors[name], "ls": "-"}
            ax.plot(np.flatnonzero(present), value[present], marker="o", ms=3, label=text(name), **style)
        ax.set_title(text(f"{model} · ROI {roi}"))
        ax.set_ylabel(SCORE_LABELS[method])
        layer_axis(ax, layers)
    axes[0].legend(title="population", frameon=False)
    return figure


def make_brain_figures(table: pd.DataFrame, folder: Path) -> list[FigureFile]:
    """Save the matrix and across-layers figures of each method in the table into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for method in (method for method in METHODS if (table["method"] == method).any()):
        with mpl.rc_context(STYLE):
            matrix, layers = plot_matrix(table, method), plot_layers(table, method)
        saved.append(
            save_figure(
                matrix,
                folder,
                f"brain_{method}_matrix",
                f"Populations × ROIs ({method})",
                f"Mean over subjects of the {SCORE_LABELS[method]} of each population (rows) with each ROI "
                "(columns), a panel per layer; white box: the best population for the ROI.",
            )
        )
        saved.append(
            save_figure(
                layers,
                folder,
                f"brain_{method}_layers",
                f"Populations across layers ({method})",
                f"Mean over subjects of the {SCORE_LABELS[method]}, per ROI; grey band: the noise ceiling (mean over "
                "subjects of its lower to upper bound; encoding: one value), absent without repeats or a second "
                "subject; dashed: all units of the layer.",
            )
        )
    return saved


def brain_section(run_dir: Path, figures: Path) -> Section | None:
    """The report section of ``RUN_DIR/brain`` (figures drawn into ``figures``), or None when there is none."""
    found = read_brain(Path(run_dir) / BRAIN_DIR)
    if found is None or found[0].empty:
        return None
    table, notes = found
    intro = INTRO + (f" Notes: {'; '.join(notes)}." if notes else "")
    return Section(
        "brain",
        "Brain comparison",
        intro,
        make_brain_figures(table, figures),
        {f"{BRAIN_DIR}/{BRAIN_TABLE}": subject_means(table)},
    )
